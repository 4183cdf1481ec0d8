"""Random-forest-mode estimators built from random-forest hyper-parameters, and their ensemble.

SMCI1.0 tunes a scikit-learn random forest on ``max_features`` (covariates
tried per split) and ``min_samples_leaf``. Here the same numbers drive three
libraries so that they mean the same thing in each:

- ``max_features`` (features tried per split): LightGBM
  ``feature_fraction_bynode = max_features / n_features``; XGBoost
  ``colsample_bynode = (max_features + 0.5) / n_features``; scikit-learn
  ``max_features``.
- ``min_samples_leaf``: LightGBM ``min_child_samples`` (``min_data_in_leaf``,
  with ``min_child_weight`` ~0); XGBoost ``min_child_weight`` (squared error
  has hessian 1 per row, so the leaf cover is its row count); scikit-learn
  ``min_samples_leaf``.
- ``n_estimators``: LightGBM trees; XGBoost ``num_parallel_tree`` in one round;
  scikit-learn trees.
- rows per tree (``subsample``, optionally capped at ``max_samples`` rows):
  ``rows_per_tree(n, subsample, max_samples) = min(ceil(subsample * n),
  max_samples)`` in all three. LightGBM ``subsample`` (= rows_per_tree / n)
  with ``subsample_freq=1``; XGBoost ``subsample`` (both without
  replacement); scikit-learn a bootstrap of ``max_samples = rows_per_tree``
  rows with replacement.
- fully grown trees: LightGBM ``max_depth=-1`` with ``num_leaves`` = rows in
  the bag // min_samples_leaf; XGBoost ``max_depth=0`` (``hist``) and
  ``max_leaves=0``; scikit-learn ``max_depth=None``.

Size controls (a full-scale depth has ~7 million rows: a fully grown forest
is gigabytes; see benchmarks/README.md, "Model size at full scale"), each the
same in the three libraries:

- ``max_samples``: rows drawn per tree (above). A tree can never have more
  leaves than ``rows_per_tree // min_samples_leaf``, so this caps the leaves
  and the fit time together, and keeps trees fully grown on their sample.
- ``max_leaves``: leaves per tree, grown best-first (the split with the
  largest loss reduction next): LightGBM ``num_leaves`` (leaf-wise is its
  only growth), XGBoost ``max_leaves`` with ``grow_policy='lossguide'``,
  scikit-learn ``max_leaf_nodes`` (best-first when set).
- ``max_depth``: edges from the root to the deepest leaf (1 = a stump) in all
  three; LightGBM's ``num_leaves`` is then also bounded by ``2**max_depth``.
- ``max_bin``: histogram bins per feature (LightGBM ``max_bin``, XGBoost
  ``max_bin``); scikit-learn searches exact thresholds and ignores it. Fewer
  bins fit faster (63 instead of 255: ~2x for LightGBM with many leaves) but
  cost accuracy on large tables (measured +3 % RMSE at 1 million rows), so
  the default stays 255.

Library notes (checked against the current docs):

- LightGBM's rf mode needs bagging: ``bagging_freq > 0`` and
  ``0 < bagging_fraction < 1`` (or a per-tree feature fraction < 1), else it
  stops with a check failure; ``feature_fraction_bynode`` samples per node, as
  a random forest does. https://lightgbm.readthedocs.io/en/latest/Parameters.html
- LightGBM counts features per node as ``round(n_features * fraction)`` (at
  least 1), so ``max_features / n_features`` gives exactly ``max_features``.
  XGBoost truncates (``int(colsample * n_features)`` in float32), so its
  fraction gets half a feature of head-room to land on the same count.
- LightGBM caps trees at 131072 leaves and allocates per-leaf state up to
  ``num_leaves``: a large ``num_leaves`` makes small fits ~10-20x slower
  (measured: 100k rows, 30 trees, 59 s with 131072 against 6 s with the
  bound). A tree can never have more leaves than rows-in-bag //
  min_samples_leaf, so that bound (given ``n_rows``) grows trees fully at no
  cost. Its histogram cache holds one histogram per leaf (bins x features x
  16 bytes, ~100 kB) unless ``histogram_pool_size`` caps it: at 1 million
  rows (31,600 leaves) a fit peaked at 3.9 GB without a cap and 1.2 GB with
  512 MB, in the same time; at full scale (131072 leaves) uncapped it would be
  ~14 GB. ``force_col_wise`` skips LightGBM's per-fit timing test of row- vs
  column-wise histograms (column-wise is as fast here, single-threaded).
- XGBoost random forests: ``learning_rate`` must be 1 (the XGBRF classes set it)
  and one boosting round of ``num_parallel_tree`` trees; ``max_depth=0`` means
  no depth limit with ``tree_method='hist'`` (``exact`` needs a depth).
  https://xgboost.readthedocs.io/en/stable/tutorials/rf.html,
  https://xgboost.readthedocs.io/en/stable/parameter.html
- L2 regularisation is 0 in both so a leaf's value is the mean of its rows,
  as in a random forest (XGBRFRegressor defaults ``reg_lambda=1e-5``).

Everything runs single-threaded by default (``n_jobs=1``): parallelism comes
from Dask tasks, one fit per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from smci_dask.errors import ConfigError, InputError

Member = Literal["lightgbm", "xgboost", "sklearn"]
EnsembleMethod = Literal["mean", "weights"]

MEMBERS: Final[tuple[str, ...]] = ("lightgbm", "xgboost", "sklearn")
#: LightGBM's own cap on leaves per tree.
LIGHTGBM_MAX_LEAVES: Final[int] = 131072
#: LightGBM's histogram cache per fit (MB): bounds a fit's memory whatever the number of leaves (see the module docstring).
LIGHTGBM_HISTOGRAM_POOL_MB: Final[int] = 512
#: Histogram bins per feature (LightGBM's default; XGBoost's is 256, set to the same).
DEFAULT_MAX_BIN: Final[int] = 255


def _check_hyper(member: str, n_features: int, max_features: int, min_samples_leaf: int, n_estimators: int, subsample: float) -> None:
    if member not in MEMBERS:
        raise ConfigError(f"model member {member!r} is unknown; use one of {', '.join(MEMBERS)}")
    if n_features < 1:
        raise InputError(f"a {member} forest needs at least one feature, got n_features={n_features}")
    if not 1 <= max_features <= n_features:
        raise ConfigError(f"max_features={max_features} must lie in 1..n_features ({n_features}); fix model.search.max_features")
    if min_samples_leaf < 1:
        raise ConfigError(f"min_samples_leaf={min_samples_leaf} must be >= 1; fix model.search.min_samples_leaf")
    if n_estimators < 1:
        raise ConfigError(f"n_estimators={n_estimators} must be >= 1; fix model.n_estimators")
    if not 0 < subsample <= 1:
        raise ConfigError(f"subsample={subsample} must lie in (0, 1]; fix model.subsample")


def _check_size(max_depth: int | None, max_leaves: int | None, max_samples: int | None, max_bin: int) -> None:
    if max_depth is not None and max_depth < 1:
        raise ConfigError(f"max_depth={max_depth} must be >= 1 or None (fully grown); fix model.max_depth")
    if max_leaves is not None and max_leaves < 2:
        raise ConfigError(f"max_leaves={max_leaves} must be >= 2 or None (no cap); fix model.max_leaves")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"max_samples={max_samples} must be >= 1 row or None (no cap); fix model.max_samples")
    if not 2 <= max_bin <= 65535:
        raise ConfigError(f"max_bin={max_bin} must lie in 2..65535; fix model.max_bin")


def rows_per_tree(n_rows: int, subsample: float, max_samples: int | None = None) -> int:
    """Rows drawn for each tree: ``ceil(subsample * n_rows)``, at most ``max_samples``, at least 1."""
    rows = int(np.ceil(n_rows * subsample))
    if max_samples is not None:
        rows = min(rows, int(max_samples))
    return max(1, rows)


def lightgbm_num_leaves(
    n_rows: int | None, subsample: float, min_samples_leaf: int, max_leaves: int | None = None, max_depth: int | None = None
) -> int:
    """Leaves a LightGBM tree can reach: rows in the bag // min_samples_leaf, ``max_leaves``, ``2**max_depth``, 131072."""
    bound = LIGHTGBM_MAX_LEAVES if n_rows is None else max(2, int(np.ceil(n_rows * subsample)) // min_samples_leaf)
    if max_leaves is not None:
        bound = min(bound, max_leaves)
    if max_depth is not None and max_depth < 17:
        bound = min(bound, 2**max_depth)
    return int(max(2, min(bound, LIGHTGBM_MAX_LEAVES)))


def make_estimator(
    member: Member,
    *,
    n_features: int,
    max_features: int,
    min_samples_leaf: int,
    n_estimators: int,
    subsample: float,
    max_depth: int | None,
    seed: int,
    n_jobs: int = 1,
    n_rows: int | None = None,
    max_leaves: int | None = None,
    max_samples: int | None = None,
    max_bin: int = DEFAULT_MAX_BIN,
) -> Any:
    """An unfitted random-forest-mode regressor of ``member`` (scikit-learn API).

    Parameters
    ----------
    member
        ``'lightgbm'`` (LGBMRegressor, ``boosting_type='rf'``), ``'xgboost'``
        (XGBRFRegressor) or ``'sklearn'`` (RandomForestRegressor, the reference).
    n_features
        Number of columns the model will be fitted on.
    max_features
        Features tried at each split (1..n_features), as in scikit-learn.
    min_samples_leaf
        Minimum training rows (of the tree's sample) in every leaf.
    n_estimators
        Trees in the forest.
    subsample
        Fraction of rows drawn for each tree (0, 1]. LightGBM and XGBoost draw
        without replacement; scikit-learn bootstraps ``subsample * n`` rows with
        replacement (``max_samples``). LightGBM's rf mode needs ``subsample < 1``.
    max_depth
        Depth cap (edges from root to leaf); ``None`` grows trees fully.
    seed
        Random seed of bagging and feature sampling.
    n_jobs
        Threads inside the fit (1: parallelism comes from Dask tasks).
    n_rows
        Training rows, if known: bounds LightGBM's ``num_leaves`` by
        ``rows_per_tree // min_samples_leaf``, which is what a fully grown tree
        can reach, and keeps small fits fast; needed with ``max_samples``.
        :func:`fit_member` sets it.
    max_leaves
        Leaf cap per tree, grown best-first (a model-size control); ``None``: no cap.
    max_samples
        Cap on the rows drawn per tree (a model-size control): each tree
        draws ``min(ceil(subsample * n_rows), max_samples)`` rows; ``None``: no cap.
    max_bin
        Histogram bins per feature of LightGBM and XGBoost (scikit-learn: exact splits).

    Raises
    ------
    ConfigError
        A hyper-parameter outside its range, or LightGBM drawing every row per tree.
    """
    _check_hyper(member, n_features, max_features, min_samples_leaf, n_estimators, subsample)
    _check_size(max_depth, max_leaves, max_samples, max_bin)
    fraction = subsample
    if max_samples is not None:
        if n_rows is None:
            raise InputError("max_samples (rows per tree) needs the number of training rows: pass n_rows or use fit_member")
        if rows_per_tree(n_rows, subsample, max_samples) < rows_per_tree(n_rows, subsample):
            fraction = rows_per_tree(n_rows, subsample, max_samples) / n_rows
        else:  # a cap above the rows drawn anyway changes nothing: the same model as without it
            max_samples = None
    if member == "lightgbm":
        import lightgbm as lgb

        if fraction >= 1:
            raise ConfigError(
                "LightGBM's random-forest mode needs row bagging: model.subsample must be < 1 "
                "(e.g. 0.632, the share of distinct rows in a bootstrap), or model.max_samples below the number of rows"
            )
        return lgb.LGBMRegressor(
            boosting_type="rf",
            objective="regression",
            n_estimators=n_estimators,
            num_leaves=lightgbm_num_leaves(n_rows, fraction, min_samples_leaf, max_leaves, max_depth),
            max_depth=-1 if max_depth is None else max_depth,
            min_child_samples=min_samples_leaf,
            min_child_weight=1e-12,
            min_split_gain=0.0,
            subsample=fraction,
            subsample_freq=1,
            colsample_bytree=1.0,
            feature_fraction_bynode=max_features / n_features,
            reg_alpha=0.0,
            reg_lambda=0.0,
            max_bin=max_bin,
            histogram_pool_size=LIGHTGBM_HISTOGRAM_POOL_MB,
            force_col_wise=True,
            random_state=seed,
            n_jobs=n_jobs,
            verbose=-1,
        )
    if member == "xgboost":
        import xgboost as xgb

        colsample = 1.0 if max_features >= n_features else min(1.0, (max_features + 0.5) / n_features)
        return xgb.XGBRFRegressor(
            n_estimators=n_estimators,
            learning_rate=1.0,
            objective="reg:squarederror",
            tree_method="hist",
            # best-first growth when leaves are capped, as LightGBM and scikit-learn's max_leaf_nodes grow
            grow_policy="depthwise" if max_leaves is None else "lossguide",
            max_depth=0 if max_depth is None else max_depth,
            max_leaves=0 if max_leaves is None else max_leaves,
            max_bin=max_bin,
            min_child_weight=float(min_samples_leaf),
            gamma=0.0,
            subsample=fraction,
            colsample_bynode=colsample,
            colsample_bytree=1.0,
            colsample_bylevel=1.0,
            reg_lambda=0.0,
            reg_alpha=0.0,
            random_state=seed,
            n_jobs=n_jobs,
        )
    from sklearn.ensemble import RandomForestRegressor

    draws: int | float | None = None
    if max_samples is not None:
        draws = rows_per_tree(int(n_rows or 0), subsample, max_samples)
    elif subsample < 1:
        draws = subsample
    return RandomForestRegressor(
        n_estimators=n_estimators,
        max_features=max_features,
        min_samples_leaf=min_samples_leaf,
        max_depth=max_depth,
        max_leaf_nodes=max_leaves,
        bootstrap=True,
        max_samples=draws,
        random_state=seed,
        n_jobs=n_jobs,
    )


@dataclass(frozen=True)
class OffsetModel:
    """A fitted member that learned ``y - X[:, column]``: its predictions add that column back.

    The residual form of the target (``model.residual``): the forest learns
    the departure of the matched target from ERA5-Land's soil moisture of the
    matching layer, a feature of every row, and :func:`predict_member` adds
    the feature back, so predictions and every score are in target units.
    ``model`` is the library's own fitted object (stored natively as usual;
    the card names the offset feature). Code that needs the library's object
    (sizes, trees) takes ``.model``; :func:`_booster` unwraps it.
    """

    model: Any
    column: int


def fit_member(member: Member, X: np.ndarray, y: np.ndarray, *, n_jobs: int = 1, offset_column: int | None = None, **hyper: Any) -> Any:
    """Build :func:`make_estimator` for ``X`` (n_rows, n_features) and fit it on ``y``.

    ``hyper``: ``max_features``, ``min_samples_leaf``, ``n_estimators``,
    ``subsample``, ``max_depth``, ``seed`` and optionally the size controls
    ``max_leaves``, ``max_samples`` and ``max_bin`` (``None`` values mean the default).
    ``offset_column``: fit on ``y - X[:, offset_column]`` and return an
    :class:`OffsetModel` that adds the column back when it predicts.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise InputError(f"fit {member}: X must be 2-D with one row per target; got X {X.shape}, y {y.shape}")
    if len(X) == 0:
        raise InputError(f"fit {member}: no training rows")
    if hyper.get("max_bin", 0) is None:
        hyper = {k: v for k, v in hyper.items() if k != "max_bin"}
    est = make_estimator(member, n_features=X.shape[1], n_rows=len(X), n_jobs=n_jobs, **hyper)
    if offset_column is None:
        return est.fit(X, y)
    if not 0 <= int(offset_column) < X.shape[1]:
        raise InputError(f"fit {member}: offset column {offset_column} is not one of the {X.shape[1]} features")
    base = X[:, int(offset_column)].astype(np.float64)
    if not np.isfinite(base).all():
        raise InputError(f"fit {member}: the offset feature (column {offset_column}) has {int((~np.isfinite(base)).sum())} missing values")
    return OffsetModel(est.fit(X, y - base), int(offset_column))


def predict_member(model: Any, X: np.ndarray) -> np.ndarray:
    """Predictions (float64) of one fitted member: a scikit-learn-API model or a native LightGBM/XGBoost booster.

    ``X`` is passed in its own dtype: float32 features (what the feature
    function builds) are not copied to float64. That is exact, not an
    approximation: a float32 value widened to float64 is the same number, so
    every split goes the same way. XGBoost always predicts through
    ``inplace_predict`` (no DMatrix); one 512 x 512 block predicts ~1.6x faster
    from float32 than from float64 (benchmarks/README.md, "Predict speed").
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if isinstance(model, OffsetModel):
        return predict_member(model.model, X) + X[:, model.column].astype(np.float64)
    lib, booster = _booster(model)
    if lib == "xgboost":
        return np.asarray(booster.inplace_predict(X), dtype=np.float64)
    if lib == "lightgbm" and booster is model:
        return np.asarray(model.predict(X, num_threads=int(model.params.get("num_threads", 1))), dtype=np.float64)
    return np.asarray(model.predict(X), dtype=np.float64)


def _booster(model: Any) -> tuple[str, Any]:
    """``(library, native booster)`` of a fitted member: ``'lightgbm'``, ``'xgboost'`` or ``'sklearn'`` (the estimator itself)."""
    if isinstance(model, OffsetModel):
        model = model.model
    mod = type(model).__module__
    if mod.startswith("lightgbm"):
        return "lightgbm", getattr(model, "booster_", model)
    if mod.startswith("xgboost"):
        return "xgboost", model.get_booster() if hasattr(model, "get_booster") else model
    if mod.startswith("sklearn"):
        return "sklearn", model
    raise InputError(f"not a fitted LightGBM, XGBoost or scikit-learn model: {type(model).__name__}")


def model_bytes(model: Any) -> bytes:
    """The serialized model of a fitted member in its library's native format (what the model store writes).

    LightGBM: the text model (``Booster.model_to_string``); XGBoost: UBJSON
    (``Booster.save_raw('ubj')``). scikit-learn has no format but pickle: its
    pickle is returned so sizes can be compared, and is never written to a store.
    """
    lib, booster = _booster(model)
    if lib == "lightgbm":
        return booster.model_to_string().encode("utf-8")
    if lib == "xgboost":
        return bytes(booster.save_raw(raw_format="ubj"))
    import pickle

    return pickle.dumps(booster, protocol=pickle.HIGHEST_PROTOCOL)


def tree_leaves(model: Any) -> np.ndarray:
    """Leaves of every tree of a fitted member (int64, one entry per tree)."""
    lib, booster = _booster(model)
    if lib == "lightgbm":
        import re

        text = booster.model_to_string()
        return np.array([int(v) for v in re.findall(r"^num_leaves=(\d+)$", text, flags=re.MULTILINE)], dtype=np.int64)
    if lib == "xgboost":
        import json

        trees = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]["gradient_booster"]["model"]["trees"]
        # binary trees: leaves = (nodes + 1) / 2
        return np.array([(int(t["tree_param"]["num_nodes"]) + 1) // 2 for t in trees], dtype=np.int64)
    return np.array([est.tree_.n_leaves for est in booster.estimators_], dtype=np.int64)


# ================================================================== the trees one by one
#: Rows per pass of :meth:`Ensemble.predict_spread` (bounds the leaf-index matrix: rows x trees int32).
SPREAD_CHUNK_ROWS: Final[int] = 16384


def leaf_values(model: Any) -> list[np.ndarray]:
    """Leaf values of every tree of a fitted member, as one array per tree indexed as the library's ``pred_leaf`` output.

    LightGBM: ``leaf_value`` of each tree in the text model (indexed by leaf
    index). XGBoost: ``split_conditions`` of each tree in the JSON model
    (indexed by node id; at a leaf it holds the leaf's value, already scaled
    by the forest's ``1 / num_parallel_tree``), then one more array holding
    the model's intercept (``base_score``: the margin every prediction starts
    from, the prediction itself for squared error). scikit-learn: not used
    (its trees predict one by one).
    """
    lib, booster = _booster(model)
    if lib == "lightgbm":
        import re

        text = booster.model_to_string()
        return [np.array(v.split(), dtype=np.float64) for v in re.findall(r"^leaf_value=(.*)$", text, flags=re.MULTILINE)]
    if lib == "xgboost":
        import json

        learner = json.loads(bytes(booster.save_raw(raw_format="json")))["learner"]
        intercept = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))  # "[2.9E-1]" (XGBoost 3) or "2.9E-1"
        trees = [np.asarray(t["split_conditions"], dtype=np.float64) for t in learner["gradient_booster"]["model"]["trees"]]
        return [*trees, np.array([intercept])]
    raise InputError("leaf_values: scikit-learn forests predict tree by tree (tree_predictions)")


def tree_predictions(model: Any, X: np.ndarray, *, leaves: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Each tree's own prediction, ``(n_rows, n_trees)`` float64 in target units (m3/m3): the forest is their mean.

    A tree's own prediction is what the tree would predict as a forest of
    one: LightGBM (rf mode averages its trees) the leaf value; XGBoost (one
    round of ``num_parallel_tree`` trees whose leaves carry ``1 /
    num_parallel_tree``) the model's intercept plus ``num_parallel_tree`` x
    the leaf value; scikit-learn each estimator's ``predict``. An
    :class:`OffsetModel` adds its offset column to every tree. The mean over
    trees equals :func:`predict_member` (to rounding).

    ``leaves``: :func:`leaf_values` of ``model`` if already computed (it parses the model).
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if isinstance(model, OffsetModel):
        return tree_predictions(model.model, X, leaves=leaves) + X[:, model.column].astype(np.float64)[:, None]
    lib, booster = _booster(model)
    if lib == "sklearn":
        return np.stack([est.predict(X) for est in booster.estimators_], axis=1).astype(np.float64)
    values = list(leaves) if leaves is not None else leaf_values(model)
    if lib == "lightgbm":
        index = np.asarray(booster.predict(X, pred_leaf=True, num_threads=int(booster.params.get("num_threads", 1))), dtype=np.int64)
        return np.stack([values[t][index[:, t]] for t in range(index.shape[1])], axis=1)
    import xgboost as xgb

    nthread = int(getattr(model, "n_jobs", None) or 1)
    index = np.asarray(booster.predict(xgb.DMatrix(X, nthread=nthread), pred_leaf=True), dtype=np.int64).reshape(len(X), -1)
    rounds = booster.num_boosted_rounds()
    if rounds != 1 or len(values) != index.shape[1] + 1:
        raise InputError(f"tree_predictions: an XGBoost random forest has one boosting round; this model has {rounds}")
    raw = np.stack([values[t][index[:, t]] for t in range(index.shape[1])], axis=1)
    return float(values[-1][0]) + raw.shape[1] * raw


def fit_weights(member_predictions: Mapping[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Non-negative weights summing to 1 that best combine out-of-fold predictions (least squares).

    Solves NNLS on the members' predictions and scales the result to sum 1;
    if every weight comes out 0 (degenerate), falls back to equal weights.
    """
    from scipy.optimize import nnls

    names = list(member_predictions)
    if not names:
        raise InputError("fit_weights: no member predictions given")
    A = np.column_stack([np.asarray(member_predictions[n], dtype=np.float64) for n in names])
    y = np.asarray(y, dtype=np.float64)
    if A.shape[0] != len(y):
        raise InputError(f"fit_weights: {A.shape[0]} predictions per member but {len(y)} targets")
    w, _ = nnls(A, y)
    total = float(w.sum())
    if not np.isfinite(total) or total <= 0:
        return {n: 1.0 / len(names) for n in names}
    return {n: float(v / total) for n, v in zip(names, w, strict=True)}


@dataclass
class Ensemble:
    """Fitted members of one depth and how they are combined.

    ``members``: name -> fitted model (scikit-learn API or native booster);
    ``weights``: name -> weight (sums to 1; equal weights for ``'mean'``);
    ``feature_names``: the columns, in order, that ``predict`` expects.
    """

    members: dict[str, Any]
    feature_names: list[str]
    method: EnsembleMethod = "mean"
    weights: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    _leaves: dict[str, list[np.ndarray]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise InputError("an ensemble needs at least one fitted member")
        if not self.weights or self.method == "mean":
            self.weights = {n: 1.0 / len(self.members) for n in self.members}
        missing = set(self.members) ^ set(self.weights)
        if missing:
            raise InputError(f"ensemble weights name {sorted(self.weights)} but the members are {sorted(self.members)}")

    def _matrix(self, X: Any) -> np.ndarray:
        if hasattr(X, "columns"):
            cols = [str(c) for c in X.columns]
            absent = [f for f in self.feature_names if f not in cols]
            if absent:
                raise InputError(f"predict: the table lacks the model's features {absent}; it has {cols}")
            sub = X[self.feature_names]
            # float32 features stay float32 (exact and faster to predict, see predict_member)
            X = sub.to_numpy(dtype=np.float32 if all(dt == np.float32 for dt in sub.dtypes) else np.float64)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise InputError(f"predict: X has shape {X.shape}; the model expects {len(self.feature_names)} columns {self.feature_names}")
        return X

    def predict_members(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's predictions (same units as the target, m3/m3)."""
        X = self._matrix(X)
        return {n: predict_member(m, X) for n, m in self.members.items()}

    def predict(self, X: Any) -> np.ndarray:
        """The weighted mean of the members' predictions."""
        preds = self.predict_members(X)
        return np.sum([self.weights[n] * p for n, p in preds.items()], axis=0)

    def predict_spread(self, X: Any, *, chunk_rows: int = SPREAD_CHUNK_ROWS) -> np.ndarray:
        """Spread of the trees (m3/m3): the weighted standard deviation of every tree's own prediction.

        The trees of all members are pooled, each tree weighted by its
        member's ensemble weight divided by the member's number of trees, so
        the weighted mean of the trees is :meth:`predict`; the spread is the
        square root of the weighted mean squared departure from it (a
        population standard deviation). It measures how much the forests'
        trees disagree for that row (a row far from the training data, or
        where the training targets scatter, spreads more); it is not a
        calibrated error bar. Rows are taken ``chunk_rows`` at a time so the
        per-tree matrix stays small.
        """
        X = self._matrix(X)
        out = np.empty(len(X), dtype=np.float64)
        for a in range(0, len(X), max(1, int(chunk_rows))):
            part = X[a : a + max(1, int(chunk_rows))]
            total = np.zeros(len(part))
            square = np.zeros(len(part))
            for name, model in self.members.items():
                if name not in self._leaves and _booster(model)[0] != "sklearn":
                    self._leaves[name] = leaf_values(model)
                trees = tree_predictions(model, part, leaves=self._leaves.get(name))
                w = self.weights[name] / trees.shape[1]
                total += w * trees.sum(axis=1)
                square += w * np.square(trees).sum(axis=1)
            out[a : a + len(part)] = np.sqrt(np.maximum(square - np.square(total), 0.0))
        return out


def make_ensemble(
    members: Mapping[str, Any],
    feature_names: Sequence[str],
    *,
    method: EnsembleMethod = "mean",
    oof_predictions: Mapping[str, np.ndarray] | None = None,
    y_oof: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
) -> Ensemble:
    """An :class:`Ensemble`; ``method='weights'`` fits NNLS weights on out-of-fold predictions."""
    weights: dict[str, float] = {}
    if method == "weights":
        if oof_predictions is None or y_oof is None:
            raise InputError("ensemble method 'weights' needs out-of-fold predictions and their targets (from the search)")
        weights = fit_weights({n: oof_predictions[n] for n in members}, y_oof)
    return Ensemble(dict(members), [str(f) for f in feature_names], method, weights, dict(params or {}))
