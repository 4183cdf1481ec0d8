"""Hyper-parameter search over max_features x min_samples_leaf with K-fold CV, as Dask tasks.

One task per (candidate, fold, member): it fits one random-forest-mode model
on the fold's training rows (single-threaded) and returns its validation
predictions. The training arrays and the fold indices are scattered to every
worker once (``client.scatter(..., broadcast=True)``) so no task graph embeds
them. Without a client the same function runs the same tasks in order, so
a cluster run and a sequential run with the same seeds give the same table.

Two engines (``model.search.engine``) give the same table:

- ``'tasks'`` (default): the above. It keeps the best candidate's
  out-of-fold predictions (needed by ``model.ensemble='weights'``) and fits
  each member in its own task.
- ``'dask-ml'``: :class:`dask_ml.model_selection.GridSearchCV` (or
  ``RandomizedSearchCV`` when ``n_iter`` is set) over
  :class:`ForestEnsembleRegressor`, a scikit-learn estimator wrapping the
  members, with one scorer per (member, statistic) (multimetric,
  ``refit=False``). One task fits all members of a (candidate, fold), the
  data travels in the graph, and no out-of-fold predictions come back.
  Checked with dask-ml 2025.1 and scikit-learn 1.9: ``cv`` given as a list of
  (train, validation) pairs, ``iid=False`` (plain mean over folds, as the
  tasks engine), ``return_train_score=False``.

Random search (``n_iter``): both engines draw the same candidates, with
scikit-learn's :class:`~sklearn.model_selection.ParameterSampler` over the
grid and the search seed.
"""

from __future__ import annotations

import itertools
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from smci_dask.errors import ConfigError, InputError
from smci_dask.models.cv import Split
from smci_dask.models.estimators import Ensemble, Member, fit_member, make_ensemble, predict_member

#: The name of the members' mean in the tables.
ENSEMBLE = "ensemble"
Progress = Callable[[int, int], None]
#: ``model.search.engine``.
SearchEngine = Literal["tasks", "dask-ml"]
SEARCH_ENGINES: Final[tuple[str, ...]] = ("tasks", "dask-ml")
#: Statistics per (member, candidate, fold) in :attr:`SearchResult.folds`.
STATS: Final[tuple[str, ...]] = ("rmse", "ubrmse", "r", "bias")


@dataclass(frozen=True)
class Candidate:
    """One cell of the search grid."""

    max_features: int
    min_samples_leaf: int


def candidate_grid(max_features: Sequence[int], min_samples_leaf: Sequence[int], n_features: int) -> list[Candidate]:
    """The grid ``max_features x min_samples_leaf``; values above ``n_features`` are clipped to it (duplicates dropped)."""
    mfs = sorted({min(int(m), n_features) for m in max_features})
    msls = sorted({int(m) for m in min_samples_leaf})
    if not mfs or not msls or mfs[0] < 1 or msls[0] < 1:
        raise ConfigError("model.search.max_features and min_samples_leaf must be non-empty lists of integers >= 1")
    return [Candidate(a, b) for a, b in itertools.product(mfs, msls)]


def sample_candidates(cands: Sequence[Candidate], n_iter: int | None, seed: int) -> list[Candidate]:
    """``n_iter`` candidates of the grid drawn without replacement (seeded); all of them when ``n_iter`` is None or larger.

    Uses scikit-learn's ``ParameterSampler`` on the grid's value lists, as
    dask-ml's ``RandomizedSearchCV`` does, so both engines draw the same cells.
    """
    if n_iter is None or n_iter >= len(cands):
        return list(cands)
    if n_iter < 1:
        raise ConfigError(f"model.search.n_iter={n_iter} must be >= 1 (or null for the whole grid)")
    from sklearn.model_selection import ParameterSampler

    drawn = ParameterSampler(_param_lists(cands), n_iter, random_state=seed)
    return [Candidate(int(p["max_features"]), int(p["min_samples_leaf"])) for p in drawn]


def _param_lists(cands: Sequence[Candidate]) -> dict[str, list[int]]:
    return {
        "max_features": sorted({c.max_features for c in cands}),
        "min_samples_leaf": sorted({c.min_samples_leaf for c in cands}),
    }


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, ubRMSE (RMSE after removing the mean bias) and Pearson R, in the target's units (m3/m3)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    diff = y_pred - y_true
    rmse = float(np.sqrt(np.mean(diff**2)))
    bias = float(np.mean(diff))
    ubrmse = float(np.sqrt(max(rmse**2 - bias**2, 0.0)))
    r = float(np.corrcoef(y_true, y_pred)[0, 1]) if np.std(y_true) > 0 and np.std(y_pred) > 0 else float("nan")
    return {"rmse": rmse, "ubrmse": ubrmse, "r": r, "bias": bias}


def _fit_predict_fold(
    X: np.ndarray, y: np.ndarray, folds: Sequence[Split], fold: int, member: Member, cand: Candidate, fixed: Mapping[str, Any]
) -> np.ndarray:
    """One search task: fit ``member`` with ``cand`` on fold ``fold``'s training rows; its validation predictions (float64)."""
    train, valid = folds[fold]
    model = fit_member(member, X[train], y[train], max_features=cand.max_features, min_samples_leaf=cand.min_samples_leaf, **fixed)
    return predict_member(model, X[valid])


@dataclass
class SearchResult:
    """What a search found.

    ``folds``: one row per (member incl. ``'ensemble'``, candidate, fold) with
    rmse, ubrmse, r, bias, n. ``table``: one row per (member, candidate) with
    the mean and std over folds (the paper's Table 2, in long form; see
    :meth:`table_2`). ``best``: the chosen candidate's parameters (lowest
    mean RMSE of ``selected_by``). ``oof``: the best candidate's out-of-fold
    predictions per member, aligned with ``y_oof``/``oof_index``; ``None``
    from the ``'dask-ml'`` engine. ``members``: the searched members.
    """

    folds: pd.DataFrame
    table: pd.DataFrame
    best: dict[str, int]
    selected_by: str
    oof: dict[str, np.ndarray] | None = field(repr=False)
    y_oof: np.ndarray | None = field(repr=False)
    oof_index: np.ndarray | None = field(repr=False)
    fixed: dict[str, Any] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    engine: str = "tasks"

    def table_2(self, member: str = ENSEMBLE, stat: str = "rmse_mean") -> pd.DataFrame:
        """``stat`` of ``member`` as a grid: rows min_samples_leaf, columns max_features (the paper's Table 2)."""
        sub = self.table[self.table["member"] == member]
        if sub.empty:
            raise InputError(f"no search results for member {member!r}; have {sorted(self.table['member'].unique())}")
        return sub.pivot(index="min_samples_leaf", columns="max_features", values=stat)

    def cv_scores(self, member: str = ENSEMBLE) -> dict[str, Any]:
        """The best candidate's fold scores of ``member`` and their means, for a model card."""
        f = self.folds
        sel = f[
            (f["member"] == member)
            & (f["max_features"] == self.best["max_features"])
            & (f["min_samples_leaf"] == self.best["min_samples_leaf"])
        ]
        out: dict[str, Any] = {k: [float(v) for v in sel[k]] for k in ("rmse", "ubrmse", "r")}
        out.update({f"{k}_mean": float(sel[k].mean()) for k in ("rmse", "ubrmse", "r")})
        out["n_folds"] = len(sel)
        out["member"] = member
        return out


def search_hyperparameters(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Split],
    *,
    members: Sequence[Member],
    max_features: Sequence[int],
    min_samples_leaf: Sequence[int],
    n_estimators: int,
    subsample: float,
    max_depth: int | None,
    seed: int,
    max_leaves: int | None = None,
    max_samples: int | None = None,
    offset_column: int | None = None,
    client: Any = None,
    progress: Progress | None = None,
    engine: SearchEngine = "tasks",
    n_iter: int | None = None,
) -> SearchResult:
    """Score every (candidate, member) by K-fold CV; one Dask task per (candidate, fold, member).

    Parameters
    ----------
    X, y
        Training features (rows x features, float) and targets (m3/m3).
    folds
        (train, validation) index pairs, e.g. :func:`smci_dask.models.cv.grouped_kfold`.
    members
        Libraries to search; the ``'ensemble'`` rows are their mean.
    max_features, min_samples_leaf
        The grid (``model.search``); max_features above the number of
        columns is clipped.
    n_estimators, subsample, max_depth, seed
        Fixed for every fit (``model``); the seed is the same for every task.
    max_leaves, max_samples
        Optional leaf cap and rows-per-tree cap (model-size controls), fixed for every fit.
    offset_column
        The residual form (``model.residual``): every fit learns ``y - X[:, offset_column]``
        and adds it back (:class:`~smci_dask.models.estimators.OffsetModel`); scores stay in target units.
    client
        A :class:`distributed.Client`; ``None`` runs the tasks here, in order.
    progress
        Called as ``progress(done, total)`` after each finished task
        (engine ``'dask-ml'``: at the start and the end only).
    engine
        ``'tasks'`` (one task per candidate x fold x member) or ``'dask-ml'``
        (dask-ml's GridSearchCV / RandomizedSearchCV); same table, see the module docstring.
    n_iter
        Random search: score only ``n_iter`` cells of the grid, drawn with the seed.

    Returns
    -------
    SearchResult
        The best candidate minimises the mean validation RMSE of the ensemble
        (of the single member when only one is searched).
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise InputError(f"search: X must be 2-D with one row per target; got X {X.shape}, y {y.shape}")
    if not members:
        raise ConfigError("search: no model members given (model.members)")
    if not folds:
        raise InputError("search: no CV folds given")
    grid = candidate_grid(max_features, min_samples_leaf, X.shape[1])
    cands = sample_candidates(grid, n_iter, seed)
    fixed = {
        "n_estimators": n_estimators,
        "subsample": subsample,
        "max_depth": max_depth,
        "seed": seed,
        "max_leaves": max_leaves,
        "max_samples": max_samples,
    }
    if offset_column is not None:
        fixed["offset_column"] = int(offset_column)
    if engine == "dask-ml":
        return _search_dask_ml(X, y, folds, cands, list(members), fixed, grid=grid, n_iter=n_iter, client=client, progress=progress)
    if engine != "tasks":
        raise ConfigError(f"model.search.engine {engine!r} is unknown; use one of {', '.join(SEARCH_ENGINES)}")
    jobs = [(c, k, m) for c in cands for k in range(len(folds)) for m in members]
    preds: dict[tuple[Candidate, int, str], np.ndarray] = {}
    total = len(jobs)
    if client is None:
        for i, (c, k, m) in enumerate(jobs, 1):
            preds[(c, k, m)] = _fit_predict_fold(X, y, folds, k, m, c, fixed)
            if progress:
                progress(i, total)
    else:
        from distributed import as_completed

        X_f, y_f, folds_f = client.scatter([X, y, list(folds)], broadcast=True, hash=False)
        token = uuid.uuid4().hex[:8]
        futures = {}
        for c, k, m in jobs:
            fut = client.submit(
                _fit_predict_fold,
                X_f,
                y_f,
                folds_f,
                k,
                m,
                c,
                fixed,
                key=f"smci-search-{token}-{m}-mf{c.max_features}-msl{c.min_samples_leaf}-f{k}",
            )
            futures[fut] = (c, k, m)
        try:
            for i, fut in enumerate(as_completed(futures), 1):
                preds[futures[fut]] = fut.result()
                if progress:
                    progress(i, total)
        finally:
            client.cancel(list(futures) + [X_f, y_f, folds_f])
    return _summarise(_fold_rows(preds, y, folds, cands, list(members)), y, folds, list(members), fixed, preds=preds)


def _fold_rows(
    preds: Mapping[tuple[Candidate, int, str], np.ndarray],
    y: np.ndarray,
    folds: Sequence[Split],
    cands: list[Candidate],
    members: list[str],
) -> pd.DataFrame:
    rows = []
    for c in cands:
        for k, (_, valid) in enumerate(folds):
            per = {m: preds[(c, k, m)] for m in members}
            if len(members) > 1:
                per[ENSEMBLE] = np.mean([per[m] for m in members], axis=0)
            for m, p in per.items():
                rows.append(
                    {
                        "member": m,
                        "max_features": c.max_features,
                        "min_samples_leaf": c.min_samples_leaf,
                        "fold": k,
                        "n": len(valid),
                        **scores(y[valid], p),
                    }
                )
    return pd.DataFrame(rows)


def _summarise(
    fold_df: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[Split],
    members: list[str],
    fixed: dict[str, Any],
    *,
    preds: Mapping[tuple[Candidate, int, str], np.ndarray] | None,
    engine: str = "tasks",
) -> SearchResult:
    """The fold table -> mean/std per (member, candidate), ranks, the best candidate and its out-of-fold predictions."""
    keys = ["member", "max_features", "min_samples_leaf"]
    g = fold_df.groupby(keys, sort=True)
    table = g[["rmse", "ubrmse", "r", "bias"]].mean().add_suffix("_mean")
    table = table.join(g[["rmse", "ubrmse", "r"]].std(ddof=0).add_suffix("_std")).reset_index()
    table["rank"] = table.groupby("member")["rmse_mean"].rank(method="min").astype(int)
    selected_by = ENSEMBLE if len(members) > 1 else members[0]
    sel = table[table["member"] == selected_by].sort_values(["rmse_mean", "max_features", "min_samples_leaf"])
    best_row = sel.iloc[0]
    best = Candidate(int(best_row["max_features"]), int(best_row["min_samples_leaf"]))
    oof = y_oof = oof_index = None
    if preds is not None:
        oof_index = np.concatenate([valid for _, valid in folds])
        oof = {m: np.concatenate([preds[(best, k, m)] for k in range(len(folds))]) for m in members}
        y_oof = y[oof_index]
    return SearchResult(
        folds=fold_df,
        table=table,
        best={"max_features": best.max_features, "min_samples_leaf": best.min_samples_leaf},
        selected_by=selected_by,
        oof=oof,
        y_oof=y_oof,
        oof_index=oof_index,
        fixed=dict(fixed),
        members=list(members),
        engine=engine,
    )


class ForestEnsembleRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A scikit-learn regressor: the mean of random-forest-mode members fitted with the same hyper-parameters.

    What dask-ml's searches (and scikit-learn's) fit per (candidate, fold):
    ``fit`` fits every member with :func:`fit_member` (the same call, seeds
    and single thread as the tasks engine), ``predict`` averages them and
    :meth:`predict_members` gives each (plus ``'ensemble'``). The last
    predictions are kept for the same ``X`` object, so the search's many
    scorers predict once per fold. ``max_features`` above the number of
    columns is clipped to it, as in :func:`candidate_grid`.
    """

    def __init__(
        self,
        members: tuple[str, ...] = ("lightgbm", "xgboost"),
        max_features: int = 1,
        min_samples_leaf: int = 20,
        n_estimators: int = 200,
        subsample: float = 0.632,
        max_depth: int | None = None,
        max_leaves: int | None = None,
        seed: int = 0,
        max_samples: int | None = None,
        offset_column: int | None = None,
    ) -> None:
        self.members = members
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.n_estimators = n_estimators
        self.subsample = subsample
        self.max_depth = max_depth
        self.max_leaves = max_leaves
        self.seed = seed
        self.max_samples = max_samples
        self.offset_column = offset_column

    def fit(self, X: Any, y: Any) -> ForestEnsembleRegressor:
        """Fit every member on ``X`` (rows x features) and ``y`` (m3/m3)."""
        X = np.asarray(X)
        hyper = {
            "max_features": min(int(self.max_features), X.shape[1]),
            "min_samples_leaf": int(self.min_samples_leaf),
            "n_estimators": int(self.n_estimators),
            "subsample": float(self.subsample),
            "max_depth": self.max_depth,
            "seed": int(self.seed),
            "max_leaves": self.max_leaves,
            "max_samples": self.max_samples,
            "offset_column": self.offset_column,
        }
        self.fitted_ = {m: fit_member(m, X, y, **hyper) for m in self.members}
        self._last: tuple[Any, dict[str, np.ndarray]] | None = None
        return self

    def predict_members(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's predictions and, with two or more members, their mean as ``'ensemble'``."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is X:
            return last[1]
        preds = {m: predict_member(model, np.asarray(X)) for m, model in self.fitted_.items()}
        if len(preds) > 1:
            preds[ENSEMBLE] = np.mean([preds[m] for m in self.members], axis=0)
        self._last = (X, preds)
        return preds

    def predict(self, X: Any) -> np.ndarray:
        """The members' mean (m3/m3)."""
        preds = self.predict_members(X)
        return preds[ENSEMBLE] if ENSEMBLE in preds else preds[self.members[0]]


class _Scorer:
    """One multimetric scorer of the dask-ml engine: ``stat`` of ``member``'s predictions (RMSE-like ones negated)."""

    def __init__(self, member: str, stat: str) -> None:
        self.member, self.stat = member, stat

    def __call__(self, est: Any, X: Any, y: Any) -> float:
        value = scores(y, est.predict_members(X)[self.member])[self.stat]
        return -value if self.stat in ("rmse", "ubrmse") else value


def _scorer_name(member: str, stat: str) -> str:
    return f"{'neg_' if stat in ('rmse', 'ubrmse') else ''}{stat}_{member}"


def _search_dask_ml(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Split],
    cands: list[Candidate],
    members: list[str],
    fixed: dict[str, Any],
    *,
    grid: list[Candidate],
    n_iter: int | None,
    client: Any,
    progress: Progress | None,
) -> SearchResult:
    """The ``'dask-ml'`` engine: GridSearchCV (RandomizedSearchCV with ``n_iter``) over :class:`ForestEnsembleRegressor`."""
    from dask_ml.model_selection import GridSearchCV, RandomizedSearchCV

    names = [*members, ENSEMBLE] if len(members) > 1 else list(members)
    scoring = {_scorer_name(m, st): _Scorer(m, st) for m in names for st in STATS}
    base = ForestEnsembleRegressor(members=tuple(members), **fixed)
    common = {
        "scoring": scoring,
        "cv": [(np.asarray(t), np.asarray(v)) for t, v in folds],
        "refit": False,
        "iid": False,
        "return_train_score": False,
        "error_score": "raise",
        "scheduler": client if client is not None else "synchronous",
    }
    if n_iter is not None and n_iter < len(grid):
        search = RandomizedSearchCV(base, _param_lists(grid), n_iter=n_iter, random_state=fixed["seed"], **common)
    else:
        search = GridSearchCV(base, _param_lists(cands), **common)
    total = len(cands) * len(folds) * len(members)
    if progress:
        progress(0, total)
    with warnings.catch_warnings():
        # dask-ml ranks every metric; R is NaN for a constant prediction (a leaf size no split can meet),
        # and casting its NaN rank to int warns. We rank ourselves (_summarise), so the warning says nothing.
        warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
        search.fit(X, y)
    if progress:
        progress(total, total)
    res = search.cv_results_
    rows = []
    for i, params in enumerate(res["params"]):
        for k, (_, valid) in enumerate(folds):
            for m in names:
                vals = {st: float(res[f"split{k}_test_{_scorer_name(m, st)}"][i]) for st in STATS}
                vals["rmse"], vals["ubrmse"] = -vals["rmse"], -vals["ubrmse"]
                rows.append(
                    {
                        "member": m,
                        "max_features": int(params["max_features"]),
                        "min_samples_leaf": int(params["min_samples_leaf"]),
                        "fold": k,
                        "n": len(valid),
                        **{st: vals[st] for st in ("rmse", "ubrmse", "r", "bias")},
                    }
                )
    fold_df = pd.DataFrame(rows).sort_values(["max_features", "min_samples_leaf", "fold"], kind="stable").reset_index(drop=True)
    return _summarise(fold_df, y, folds, members, fixed, preds=None, engine="dask-ml")


def fixed_from_config(model_cfg: Any, offset_column: int | None = None) -> dict[str, Any]:
    """The settings every fit shares (``model``): n_estimators, subsample, max_depth, seed (``model.search.seed``), size caps.

    ``offset_column``: the column of the depth's ERA5-Land layer when the
    target is learned as a residual (``model.residual``; see
    :func:`smci_dask.pipeline.train.offset_column`); included only when set.
    """
    fixed = {
        "n_estimators": int(model_cfg.n_estimators),
        "subsample": float(model_cfg.subsample),
        "max_depth": model_cfg.max_depth,
        "seed": int(model_cfg.search.seed),
        "max_leaves": getattr(model_cfg, "max_leaves", None),
        "max_samples": getattr(model_cfg, "max_samples", None),
    }
    if offset_column is not None:
        fixed["offset_column"] = int(offset_column)
    return fixed


def search_from_config(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Split],
    model_cfg: Any,
    *,
    client: Any = None,
    progress: Progress | None = None,
    candidates: Sequence[Candidate] | None = None,
    engine: SearchEngine | None = None,
    offset_column: int | None = None,
) -> SearchResult:
    """:func:`search_hyperparameters` with the grid and fixed settings of ``config.model``.

    ``candidates``: score only these cells (no random draw) instead of the
    configured grid; ``engine``: instead of ``model.search.engine``;
    ``offset_column``: learn the residual of that column (:func:`fixed_from_config`).
    """
    s = model_cfg.search
    if candidates is not None:
        mfs, msls, n_iter = [c.max_features for c in candidates], [c.min_samples_leaf for c in candidates], None
        if len(candidates) != len(set(mfs)) * len(set(msls)):
            raise InputError("search_from_config: candidates must form a full grid of max_features x min_samples_leaf")
    else:
        mfs, msls, n_iter = list(s.max_features), list(s.min_samples_leaf), s.n_iter
    if getattr(s, "strategy", "grid") == "halving" and candidates is None:
        from smci_dask.models.halving import search_halving

        if (engine or s.engine) != "tasks" or n_iter is not None:
            raise ConfigError("model.search.strategy halving runs on engine tasks over the whole grid: set engine: tasks and n_iter: null")
        return search_halving(  # type: ignore[return-value]  # a SearchResult with the rounds beside
            X,
            y,
            folds,
            members=list(model_cfg.members),
            max_features=mfs,
            min_samples_leaf=msls,
            client=client,
            progress=progress,
            eta=int(getattr(s, "eta", 3)),
            **fixed_from_config(model_cfg, offset_column),
        )
    return search_hyperparameters(
        X,
        y,
        folds,
        members=list(model_cfg.members),
        max_features=mfs,
        min_samples_leaf=msls,
        client=client,
        progress=progress,
        engine=engine or s.engine,
        n_iter=n_iter,
        **fixed_from_config(model_cfg, offset_column),
    )


def _fit_all(X: np.ndarray, y: np.ndarray, member: Member, hyper: Mapping[str, Any]) -> Any:
    return fit_member(member, X, y, **hyper)


def refit_members(
    X: np.ndarray,
    y: np.ndarray,
    *,
    members: Sequence[Member],
    hyper: Mapping[str, Any],
    feature_names: Sequence[str],
    ensemble: str = "mean",
    oof: Mapping[str, np.ndarray] | None = None,
    y_oof: np.ndarray | None = None,
    client: Any = None,
) -> Ensemble:
    """Fit every member with ``hyper`` (max_features, min_samples_leaf and the fixed settings) on all rows.

    One task per member on ``client`` (data scattered once), in order here
    without one. ``ensemble='weights'`` needs ``oof``/``y_oof`` (out-of-fold
    predictions per member and their targets); ``'mean'`` averages the members.
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if len(feature_names) != X.shape[1]:
        raise InputError(f"refit: {len(feature_names)} feature names for {X.shape[1]} columns")
    hyper = dict(hyper)
    hyper["max_features"] = min(int(hyper["max_features"]), X.shape[1])
    names = list(members)
    if client is None:
        fitted = {m: _fit_all(X, y, m, hyper) for m in names}
    else:
        X_f, y_f = client.scatter([X, y], hash=False)
        futs = {m: client.submit(_fit_all, X_f, y_f, m, hyper, key=f"smci-refit-{uuid.uuid4().hex[:8]}-{m}") for m in names}
        try:
            fitted = {m: f.result() for m, f in futs.items()}
        finally:
            client.cancel([*futs.values(), X_f, y_f])
    return make_ensemble(
        fitted,
        feature_names,
        method="weights" if ensemble == "weights" else "mean",
        oof_predictions=oof,
        y_oof=y_oof,
        params=hyper,
    )


def refit_best(
    X: np.ndarray,
    y: np.ndarray,
    result: SearchResult,
    *,
    feature_names: Sequence[str],
    members: Sequence[Member] | None = None,
    ensemble: str = "mean",
    client: Any = None,
) -> Ensemble:
    """Fit every member with the best parameters on all rows; one task per member on ``client``.

    ``ensemble='weights'`` fits NNLS weights on the search's out-of-fold
    predictions of the best candidate (engine ``'tasks'`` only); ``'mean'``
    averages the members.
    """
    names = list(members) if members is not None else list(result.members or (result.oof or {}))
    if ensemble == "weights" and result.oof is None:
        raise ConfigError(
            f"model.ensemble 'weights' needs the search's out-of-fold predictions; engine {result.engine!r} does not keep them: "
            "use model.search.engine 'tasks' or model.ensemble 'mean'"
        )
    return refit_members(
        X,
        y,
        members=names,
        hyper={**result.fixed, **result.best},
        feature_names=feature_names,
        ensemble=ensemble,
        oof=result.oof,
        y_oof=result.y_oof,
        client=client,
    )
