"""Hyper-parameter search over max_features x min_samples_leaf with K-fold CV, as Dask tasks.

One task per (candidate, fold, member): it fits one random-forest-mode model
on the fold's training rows (single-threaded) and returns its validation
predictions. The training arrays and the fold indices are scattered to every
worker once (``client.scatter(..., broadcast=True)``) so no task graph embeds
them. Without a client the same function runs the same tasks in order, so
a cluster run and a sequential run with the same seeds give the same table.

Why not dask-ml's GridSearchCV: it works in this environment (dask-ml
2025.1 with scikit-learn 1.9 and pandas 3; checked on a LocalCluster), but it
scores one estimator per candidate, so the ensemble's out-of-fold
predictions, ubRMSE and R per member, and the per-member tasks would need a
meta-estimator around it; and it puts the data in the graph instead of
broadcasting it. ``client.submit`` over a scattered array does all of that in
~100 lines.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from smci_dask.errors import ConfigError, InputError
from smci_dask.models.cv import Split
from smci_dask.models.estimators import Ensemble, Member, fit_member, make_ensemble, predict_member

#: The name of the members' mean in the tables.
ENSEMBLE = "ensemble"
Progress = Callable[[int, int], None]


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
    predictions per member, aligned with ``y_oof``/``oof_index``.
    """

    folds: pd.DataFrame
    table: pd.DataFrame
    best: dict[str, int]
    selected_by: str
    oof: dict[str, np.ndarray] = field(repr=False)
    y_oof: np.ndarray = field(repr=False)
    oof_index: np.ndarray = field(repr=False)
    fixed: dict[str, Any] = field(default_factory=dict)

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
    client: Any = None,
    progress: Progress | None = None,
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
    max_leaves
        Optional leaf cap per tree (a model-size control), fixed for every fit.
    client
        A :class:`distributed.Client`; ``None`` runs the tasks here, in order.
    progress
        Called as ``progress(done, total)`` after each finished task.

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
    cands = candidate_grid(max_features, min_samples_leaf, X.shape[1])
    fixed = {"n_estimators": n_estimators, "subsample": subsample, "max_depth": max_depth, "seed": seed, "max_leaves": max_leaves}
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
    return _summarise(preds, y, folds, cands, list(members), fixed)


def _summarise(
    preds: Mapping[tuple[Candidate, int, str], np.ndarray],
    y: np.ndarray,
    folds: Sequence[Split],
    cands: list[Candidate],
    members: list[str],
    fixed: dict[str, Any],
) -> SearchResult:
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
    fold_df = pd.DataFrame(rows)
    keys = ["member", "max_features", "min_samples_leaf"]
    g = fold_df.groupby(keys, sort=True)
    table = g[["rmse", "ubrmse", "r", "bias"]].mean().add_suffix("_mean")
    table = table.join(g[["rmse", "ubrmse", "r"]].std(ddof=0).add_suffix("_std")).reset_index()
    table["rank"] = table.groupby("member")["rmse_mean"].rank(method="min").astype(int)
    selected_by = ENSEMBLE if len(members) > 1 else members[0]
    sel = table[table["member"] == selected_by].sort_values(["rmse_mean", "max_features", "min_samples_leaf"])
    best_row = sel.iloc[0]
    best = Candidate(int(best_row["max_features"]), int(best_row["min_samples_leaf"]))
    oof_index = np.concatenate([valid for _, valid in folds])
    oof = {m: np.concatenate([preds[(best, k, m)] for k in range(len(folds))]) for m in members}
    return SearchResult(
        folds=fold_df,
        table=table,
        best={"max_features": best.max_features, "min_samples_leaf": best.min_samples_leaf},
        selected_by=selected_by,
        oof=oof,
        y_oof=y[oof_index],
        oof_index=oof_index,
        fixed=dict(fixed),
    )


def search_from_config(
    X: np.ndarray, y: np.ndarray, folds: Sequence[Split], model_cfg: Any, *, client: Any = None, progress: Progress | None = None
) -> SearchResult:
    """:func:`search_hyperparameters` with the grid and fixed settings of ``config.model``."""
    s = model_cfg.search
    return search_hyperparameters(
        X,
        y,
        folds,
        members=list(model_cfg.members),
        max_features=s.max_features,
        min_samples_leaf=s.min_samples_leaf,
        n_estimators=model_cfg.n_estimators,
        subsample=model_cfg.subsample,
        max_depth=model_cfg.max_depth,
        seed=s.seed,
        client=client,
        progress=progress,
    )


def _fit_all(X: np.ndarray, y: np.ndarray, member: Member, hyper: Mapping[str, Any]) -> Any:
    return fit_member(member, X, y, **hyper)


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
    predictions of the best candidate; ``'mean'`` averages the members.
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if len(feature_names) != X.shape[1]:
        raise InputError(f"refit: {len(feature_names)} feature names for {X.shape[1]} columns")
    names = list(members) if members is not None else list(result.oof)
    hyper = {**result.fixed, **result.best}
    if client is None:
        fitted = {m: _fit_all(X, y, m, hyper) for m in names}
    else:
        X_f, y_f = client.scatter([X, y], hash=False)
        futs = {m: client.submit(_fit_all, X_f, y_f, m, hyper, key=f"smci-refit-{uuid.uuid4().hex[:8]}-{m}") for m in names}
        fitted = {m: f.result() for m, f in futs.items()}
        client.cancel([*futs.values(), X_f, y_f])
    return make_ensemble(
        fitted,
        feature_names,
        method="weights" if ensemble == "weights" else "mean",
        oof_predictions=result.oof,
        y_oof=result.y_oof,
        params=hyper,
    )
