"""Cross-validation splits: grouped by station cell (default), random k-fold (the paper's), grouped by year.

A 1 km cell holds one or more stations and one row per day; grouping by the
cell ``(row, col)`` keeps every day of a cell on one side of a split, so the
validation rows are cells the model has not seen. Grouping by year keeps
whole years apart (validation on years the model has not seen). Random
k-fold puts days of the same cell on both sides, which is what SMCI1.0 did
and is optimistic for new places. Splits are seeded and deterministic.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np

from smci_dask.errors import InputError

Split = tuple[np.ndarray, np.ndarray]
#: ``model.search.cv``; ``'grouped'`` is kept as another name of ``'grouped_station'``.
CVStrategy = Literal["grouped_station", "random", "grouped_year", "grouped"]
CV_STRATEGIES: Final[tuple[str, ...]] = ("grouped_station", "random", "grouped_year")


def cell_groups(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """One integer id per row for its 1 km cell ``(row, col)`` (grid indices); equal cells get equal ids."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise InputError(f"cell_groups: rows {rows.shape} and cols {cols.shape} must be 1-D and of equal length")
    _, ids = np.unique(np.stack([rows, cols], axis=1), axis=0, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def grouped_kfold(groups: np.ndarray, n_folds: int, seed: int) -> list[Split]:
    """``n_folds`` (train, validation) index pairs with no group on both sides.

    Groups are visited in a seeded random order and each goes, whole, to the
    fold with the fewest rows so far, so folds are balanced in rows and
    differ between seeds.

    Parameters
    ----------
    groups
        One group id per row (e.g. :func:`cell_groups`).
    n_folds
        Number of folds (>= 2, at most the number of groups).
    seed
        Seed of the group order.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise InputError(f"grouped_kfold: groups must be 1-D, got shape {groups.shape}")
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if n_folds < 2:
        raise InputError(f"grouped_kfold: n_folds={n_folds}; use at least 2 (model.search.n_folds)")
    if len(uniq) < n_folds:
        raise InputError(
            f"grouped_kfold: {len(uniq)} station cells cannot fill {n_folds} folds; lower model.search.n_folds to <= {len(uniq)}"
        )
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    for g in order:
        k = int(np.argmin(load))
        fold_of_group[g] = k
        load[k] += counts[g]
    fold_of_row = fold_of_group[inverse]
    idx = np.arange(len(groups))
    return [(idx[fold_of_row != k], idx[fold_of_row == k]) for k in range(n_folds)]


def random_kfold(n_rows: int, n_folds: int, seed: int) -> list[Split]:
    """Shuffled k-fold over rows, ignoring cells (what SMCI1.0 did; optimistic for new places)."""
    if n_folds < 2 or n_rows < n_folds:
        raise InputError(f"random_kfold: cannot split {n_rows} rows into {n_folds} folds")
    perm = np.random.default_rng(seed).permutation(n_rows)
    parts = np.array_split(perm, n_folds)
    return [(np.sort(np.concatenate(parts[:k] + parts[k + 1 :])), np.sort(parts[k])) for k in range(n_folds)]


def grouped_year_kfold(years: np.ndarray, n_folds: int, seed: int) -> list[Split]:
    """Folds of whole years: with ``n_folds`` or fewer distinct years, one fold per year (leave one year out).

    With more years than ``n_folds`` the years are spread over ``n_folds``
    folds as :func:`grouped_kfold` does with cells. Needs at least two years.
    """
    years = np.asarray(years)
    n_years = len(np.unique(years))
    if n_years < 2:
        raise InputError(
            f"grouped_year CV: the table holds {n_years} year(s); it needs at least 2; use model.search.cv=grouped_station or random"
        )
    return grouped_kfold(years, min(int(n_folds), n_years), seed)


def make_folds(
    strategy: CVStrategy,
    n_rows: int,
    n_folds: int,
    seed: int,
    groups: np.ndarray | None = None,
    years: np.ndarray | None = None,
) -> list[Split]:
    """Splits of ``strategy``.

    Parameters
    ----------
    strategy
        ``'grouped_station'`` (alias ``'grouped'``; needs ``groups``, one
        station-cell id per row), ``'random'`` or ``'grouped_year'`` (needs
        ``years``, one year per row; at most one fold per year).
    n_rows, n_folds, seed
        Rows to split, folds wanted, seed of the assignment.
    """
    if strategy in ("grouped_station", "grouped"):
        if groups is None:
            raise InputError("grouped_station CV needs one group (station cell) per row")
        if len(groups) != n_rows:
            raise InputError(f"grouped_station CV: {len(groups)} groups for {n_rows} rows")
        return grouped_kfold(groups, n_folds, seed)
    if strategy == "grouped_year":
        if years is None or len(years) != n_rows:
            raise InputError(f"grouped_year CV needs one year per row ({n_rows} rows)")
        return grouped_year_kfold(years, n_folds, seed)
    if strategy == "random":
        return random_kfold(n_rows, n_folds, seed)
    raise InputError(f"unknown CV strategy {strategy!r}; use one of {', '.join(CV_STRATEGIES)} (model.search.cv)")
