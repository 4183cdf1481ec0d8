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
- rows per tree (``subsample``): LightGBM ``subsample`` with ``subsample_freq=1``;
  XGBoost ``subsample`` (both without replacement); scikit-learn bootstrap of
  ``max_samples = subsample * n`` rows with replacement.
- fully grown trees: LightGBM ``max_depth=-1`` with ``num_leaves`` = rows in
  the bag // min_samples_leaf; XGBoost ``max_depth=0`` (``hist``) and
  ``max_leaves=0``; scikit-learn ``max_depth=None``.

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
  ``num_leaves``: a large ``num_leaves`` makes small fits ~20x slower. A tree
  can never have more leaves than rows-in-bag // min_samples_leaf, so that
  bound (given ``n_rows``) grows trees fully at no cost.
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


def lightgbm_num_leaves(n_rows: int | None, subsample: float, min_samples_leaf: int, max_leaves: int | None = None) -> int:
    """Leaves a fully grown LightGBM tree can reach: rows in the bag // min_samples_leaf, capped at 131072."""
    bound = LIGHTGBM_MAX_LEAVES if n_rows is None else max(2, int(np.ceil(n_rows * subsample)) // min_samples_leaf)
    if max_leaves is not None:
        bound = min(bound, max_leaves)
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
        Depth cap; ``None`` grows trees fully.
    seed
        Random seed of bagging and feature sampling.
    n_jobs
        Threads inside the fit (1: parallelism comes from Dask tasks).
    n_rows
        Training rows, if known: bounds LightGBM's ``num_leaves`` by
        ``ceil(n_rows * subsample) // min_samples_leaf``, which is what a fully
        grown tree can reach, and keeps small fits fast. :func:`fit_member` sets it.
    max_leaves
        Optional leaf cap per tree (a model-size control); ``None``: no cap.

    Raises
    ------
    ConfigError
        A hyper-parameter outside its range, or LightGBM with ``subsample == 1``.
    """
    _check_hyper(member, n_features, max_features, min_samples_leaf, n_estimators, subsample)
    if max_depth is not None and max_depth < 1:
        raise ConfigError(f"max_depth={max_depth} must be >= 1 or None (fully grown); fix model.max_depth")
    if member == "lightgbm":
        import lightgbm as lgb

        if subsample >= 1:
            raise ConfigError(
                "LightGBM's random-forest mode needs row bagging: model.subsample must be < 1 "
                "(e.g. 0.632, the share of distinct rows in a bootstrap)"
            )
        return lgb.LGBMRegressor(
            boosting_type="rf",
            objective="regression",
            n_estimators=n_estimators,
            num_leaves=lightgbm_num_leaves(n_rows, subsample, min_samples_leaf, max_leaves),
            max_depth=-1 if max_depth is None else max_depth,
            min_child_samples=min_samples_leaf,
            min_child_weight=1e-12,
            min_split_gain=0.0,
            subsample=subsample,
            subsample_freq=1,
            colsample_bytree=1.0,
            feature_fraction_bynode=max_features / n_features,
            reg_alpha=0.0,
            reg_lambda=0.0,
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
            grow_policy="depthwise",
            max_depth=0 if max_depth is None else max_depth,
            max_leaves=0 if max_leaves is None else max_leaves,
            min_child_weight=float(min_samples_leaf),
            gamma=0.0,
            subsample=subsample,
            colsample_bynode=colsample,
            colsample_bytree=1.0,
            colsample_bylevel=1.0,
            reg_lambda=0.0,
            reg_alpha=0.0,
            random_state=seed,
            n_jobs=n_jobs,
        )
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=n_estimators,
        max_features=max_features,
        min_samples_leaf=min_samples_leaf,
        max_depth=max_depth,
        max_leaf_nodes=max_leaves,
        bootstrap=True,
        max_samples=None if subsample >= 1 else subsample,
        random_state=seed,
        n_jobs=n_jobs,
    )


def fit_member(member: Member, X: np.ndarray, y: np.ndarray, *, n_jobs: int = 1, **hyper: Any) -> Any:
    """Build :func:`make_estimator` for ``X`` (n_rows, n_features) and fit it on ``y``.

    ``hyper``: ``max_features``, ``min_samples_leaf``, ``n_estimators``,
    ``subsample``, ``max_depth``, ``seed`` and optionally ``max_leaves``.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise InputError(f"fit {member}: X must be 2-D with one row per target; got X {X.shape}, y {y.shape}")
    if len(X) == 0:
        raise InputError(f"fit {member}: no training rows")
    est = make_estimator(member, n_features=X.shape[1], n_rows=len(X), n_jobs=n_jobs, **hyper)
    return est.fit(X, y)


def predict_member(model: Any, X: np.ndarray) -> np.ndarray:
    """Predictions (float64) of one fitted member: a scikit-learn-API model or a native LightGBM/XGBoost booster."""
    mod, cls = type(model).__module__, type(model).__name__
    if mod.startswith("xgboost") and cls == "Booster":
        return np.asarray(model.inplace_predict(np.asarray(X)), dtype=np.float64)
    if mod.startswith("lightgbm") and cls == "Booster":
        return np.asarray(model.predict(np.asarray(X), num_threads=int(model.params.get("num_threads", 1))), dtype=np.float64)
    return np.asarray(model.predict(np.asarray(X)), dtype=np.float64)


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
            X = X[self.feature_names].to_numpy(dtype=np.float64)
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
