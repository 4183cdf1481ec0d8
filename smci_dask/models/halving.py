"""Successive halving over the (max_features x min_samples_leaf) grid, built on :func:`search_hyperparameters`.

The exhaustive search fits every candidate with every tree on every fold.
Successive halving (Jamieson & Talwalkar 2016; scikit-learn's
``HalvingGridSearchCV``) scores all candidates cheaply first and spends the
full budget only on the best: round 0 fits every candidate with few trees on
a random share of each fold's training rows; each round keeps the best
``1/eta`` of the candidates (by mean validation RMSE) and gives the survivors
``eta`` times the resource (trees x training rows); the last round runs the
survivors with the full settings (``n_estimators`` trees, all training rows),
so its table is an ordinary search result and its best cell is the choice.

Validation rows are never subsampled: every round scores candidates on the
same held-out rows as the exhaustive search would. Rows are subsampled per
fold, with one seeded draw per round shared by all candidates, so candidates
of a round are compared on identical data.

Why not dask-ml's ``SuccessiveHalvingSearchCV``: it needs ``partial_fit``,
which random forests do not have, and fails on current dask; scikit-learn's
``HalvingGridSearchCV`` runs one estimator with joblib and knows neither our
members' out-of-fold predictions nor the Dask tasks. Each round here is one
(or a few) calls of :func:`search_hyperparameters`, so rounds run on the
cluster like the grid search does.

Cost is counted as fitted trees x training rows (summed over members,
candidates, folds and rounds): it does not depend on the machine's load.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from smci_dask.errors import ConfigError, InputError
from smci_dask.models.cv import Split
from smci_dask.models.estimators import Member
from smci_dask.models.search import Candidate, Progress, SearchResult, candidate_grid, search_hyperparameters


@dataclass(frozen=True)
class Round:
    """One round of the schedule: how many candidates enter, trees per fit, share of each fold's training rows."""

    index: int
    n_candidates: int
    n_estimators: int
    rows_fraction: float


def halving_schedule(
    n_candidates: int,
    *,
    n_estimators: int,
    eta: int = 3,
    min_trees: int = 10,
    min_rows_fraction: float = 0.1,
    final_candidates: int = 2,
) -> list[Round]:
    """The rounds of successive halving for ``n_candidates`` candidates.

    Rounds are added until at most ``final_candidates`` enter the last one.
    Round ``i`` of ``R`` gets the resource share ``b = eta**(i - R + 1)`` of a
    full fit, split evenly between trees and rows: ``n_estimators * sqrt(b)``
    trees (at least ``min_trees``) on ``sqrt(b)`` of the training rows (at
    least ``min_rows_fraction``). The last round is always the full setting.
    """
    if eta < 2:
        raise ConfigError(f"successive halving: eta={eta} must be >= 2 (the share of candidates kept each round is 1/eta)")
    if n_candidates < 1 or final_candidates < 1:
        raise ConfigError("successive halving needs at least one candidate and final_candidates >= 1")
    if not 0 < min_rows_fraction <= 1:
        raise ConfigError(f"successive halving: min_rows_fraction={min_rows_fraction} must lie in (0, 1]")
    counts = [n_candidates]
    while counts[-1] > final_candidates:
        counts.append(math.ceil(counts[-1] / eta))
    last = len(counts) - 1
    rounds = []
    for i, n in enumerate(counts):
        share = math.sqrt(float(eta) ** (i - last))
        trees = n_estimators if i == last else min(n_estimators, max(min_trees, math.ceil(n_estimators * share)))
        rows = 1.0 if i == last else min(1.0, max(min_rows_fraction, share))
        rounds.append(Round(i, n, trees, rows))
    return rounds


def _subsample_folds(folds: Sequence[Split], fraction: float, seed: int) -> list[Split]:
    """Each fold's training rows reduced to ``fraction`` (seeded, sorted); validation rows unchanged."""
    if fraction >= 1:
        return [(np.asarray(t), np.asarray(v)) for t, v in folds]
    rng = np.random.default_rng(seed)
    out = []
    for train, valid in folds:
        k = max(1, int(round(len(train) * fraction)))
        out.append((np.sort(rng.choice(np.asarray(train), size=k, replace=False)), np.asarray(valid)))
    return out


def _merge(parts: list[SearchResult]) -> SearchResult:
    """One result from searches over disjoint candidate sets with the same folds and members."""
    table = pd.concat([p.table for p in parts], ignore_index=True)
    if "rank" in table:
        table["rank"] = table.groupby("member")["rmse_mean"].rank(method="min").astype(int)
    sel = parts[0].selected_by
    key = table[table["member"] == sel].sort_values(["rmse_mean", "max_features", "min_samples_leaf"]).iloc[0]
    best = {"max_features": int(key["max_features"]), "min_samples_leaf": int(key["min_samples_leaf"])}
    holder = next(p for p in parts if p.best == best)
    folds = pd.concat([p.folds for p in parts], ignore_index=True)
    return dataclasses.replace(holder, table=table, folds=folds)


@dataclass
class HalvingResult:
    """What successive halving found: the last round's search result plus every round's table.

    Attribute access falls through to :attr:`final` (a :class:`SearchResult`
    with the full settings), so ``best``, ``table``, ``fixed``, ``oof`` ... and
    :func:`~smci_dask.models.search.refit_best` work on it as on a grid search.

    ``rounds``: one row per (round, member, candidate): the round's trees,
    rows fraction, ``rmse_mean``/``rmse_std`` and whether the candidate went
    on (``kept``). ``cost``: fitted trees x training rows over all rounds;
    ``exhaustive_cost``: the same count for the full grid at full settings.
    """

    final: SearchResult
    rounds: pd.DataFrame
    schedule: list[Round]
    cost: float
    exhaustive_cost: float
    round_results: list[SearchResult] = field(default_factory=list, repr=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "final":
            raise AttributeError(name)
        return getattr(self.final, name)

    @property
    def cost_ratio(self) -> float:
        """Exhaustive cost / halving cost (how many times cheaper)."""
        return self.exhaustive_cost / self.cost if self.cost else float("inf")


def _round_search(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[Split],
    cands: list[Candidate],
    *,
    members: Sequence[Member],
    n_estimators: int,
    fixed: dict[str, Any],
    client: Any,
    progress: Progress | None,
) -> SearchResult:
    """Search exactly ``cands`` (one call per max_features value, whose min_samples_leaf list is then exact)."""
    by_mf: dict[int, list[int]] = {}
    for c in cands:
        by_mf.setdefault(c.max_features, []).append(c.min_samples_leaf)
    parts = [
        search_hyperparameters(
            X,
            y,
            folds,
            members=members,
            max_features=[mf],
            min_samples_leaf=sorted(msls),
            n_estimators=n_estimators,
            client=client,
            progress=progress,
            **fixed,
        )
        for mf, msls in sorted(by_mf.items())
    ]
    return parts[0] if len(parts) == 1 else _merge(parts)


def search_halving(
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
    eta: int = 3,
    min_trees: int = 10,
    min_rows_fraction: float = 0.1,
    final_candidates: int = 2,
    screen_members: Sequence[Member] | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> HalvingResult:
    """Successive halving over ``max_features x min_samples_leaf`` (module docstring); same arguments as the grid search.

    Parameters
    ----------
    X, y, folds, members, max_features, min_samples_leaf, n_estimators, subsample, max_depth, seed, max_leaves, max_samples,
    offset_column, client, progress
        As :func:`~smci_dask.models.search.search_hyperparameters`;
        ``n_estimators`` is the last round's (full) number of trees.
    eta
        Each round keeps ``ceil(n / eta)`` candidates and multiplies the resource by ``eta``.
    min_trees, min_rows_fraction
        Floor of the first rounds' trees and share of training rows.
    final_candidates
        Rounds are added until at most this many candidates reach the full setting.
    screen_members
        Members fitted in the rounds before the last (default: ``members``):
        one RF-mode member ranks the candidates as the ensemble does (same
        hyper-parameters, same meaning) at half the cost; the last round
        always fits every member of ``members``.

    Returns
    -------
    HalvingResult
        ``best`` is the last round's best candidate (lowest mean validation
        RMSE of the ensemble, or of the single member).
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise InputError(f"successive halving: X must be 2-D with one row per target; got X {X.shape}, y {y.shape}")
    if not folds:
        raise InputError("successive halving: no CV folds given")
    cands = candidate_grid(max_features, min_samples_leaf, X.shape[1])
    schedule = halving_schedule(
        len(cands),
        n_estimators=n_estimators,
        eta=eta,
        min_trees=min_trees,
        min_rows_fraction=min_rows_fraction,
        final_candidates=final_candidates,
    )
    fixed = {"subsample": subsample, "max_depth": max_depth, "seed": seed, "max_leaves": max_leaves, "max_samples": max_samples}
    if offset_column is not None:
        fixed["offset_column"] = offset_column
    screen = list(screen_members) if screen_members else list(members)
    train_rows = sum(len(t) for t, _ in folds)
    tables, results = [], []
    cost = 0.0
    alive = cands
    for rnd in schedule:
        alive = alive[: rnd.n_candidates] if len(alive) > rnd.n_candidates else alive
        round_folds = _subsample_folds(folds, rnd.rows_fraction, seed + 1000 * (rnd.index + 1))
        last = rnd.index == len(schedule) - 1
        round_members = list(members) if last else screen
        res = _round_search(
            X, y, round_folds, alive, members=round_members, n_estimators=rnd.n_estimators, fixed=fixed, client=client, progress=progress
        )
        results.append(res)
        cost += float(rnd.n_estimators) * sum(len(t) for t, _ in round_folds) * len(alive) * len(round_members)
        sel = res.table[res.table["member"] == res.selected_by].sort_values(["rmse_mean", "max_features", "min_samples_leaf"])
        order = [Candidate(int(a), int(b)) for a, b in zip(sel["max_features"], sel["min_samples_leaf"], strict=True)]
        keep_n = schedule[rnd.index + 1].n_candidates if rnd.index + 1 < len(schedule) else 1
        kept = set(order[:keep_n])
        t = res.table.copy()
        t.insert(0, "round", rnd.index)
        t.insert(1, "n_estimators", rnd.n_estimators)
        t.insert(2, "rows_fraction", rnd.rows_fraction)
        t["kept"] = [Candidate(int(a), int(b)) in kept for a, b in zip(t["max_features"], t["min_samples_leaf"], strict=True)]
        tables.append(t)
        alive = order
    exhaustive = float(n_estimators) * train_rows * len(cands) * len(members)
    return HalvingResult(
        final=results[-1],
        rounds=pd.concat(tables, ignore_index=True),
        schedule=schedule,
        cost=cost,
        exhaustive_cost=exhaustive,
        round_results=results,
    )
