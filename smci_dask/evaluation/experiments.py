"""The year-to-year and station-to-station experiments: splits and per-experiment targets.

Splits (each a boolean mask over the rows of the training table):

year
    Test: every row in ``test_years`` (setting ``experiments.year.test_years``;
    null = the last year of the period, the paper: 2018-2020); training: every
    other row. No test year is in training.
station
    The 1 km station cells (``cell_id``, the group of grouped cross-validation:
    stations averaged into one cell stay together) are shuffled with
    ``numpy.random.default_rng(seed)`` in ``cell_id`` order and the first
    ``round(train_fraction * n_cells)`` train (the paper: 2/3), the rest test;
    all years. No test cell is in training.

Targets of an experiment (:func:`rematch`): the ERA5-Land mean/std matching
of :mod:`smci_dask.insitu.matching` recomputed with the experiment's training
rows only, so nothing of the test part reaches the targets the model is
trained on. Rows are then matched with their (cell, depth) statistics, test
rows included. A (cell, depth) with no training row at all (the station
experiment's test cells, or a cell whose data are all in the test years) has
no training part to match on: its statistics come from its own rows. That
defines its observation only (the model never sees that cell), and it is how
the SMCI1.0 paper's "adjusted in-situ" test observations are defined.

The training table already holds ``sm_raw`` per row, so an experiment
re-matches the table's rows directly (one grouped pass over the table, no
feature extraction again): the cheapest honest route, and the same numbers as
re-matching ``insitu/daily``, since matching statistics only use days that
ERA5-Land has, and the table holds every such day with a target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import ConfigError, InputError
from smci_dask.grid.spec import GridSpec
from smci_dask.insitu.matching import MIN_MATCH_DAYS, SWVL, apply_matching, era5_at_cells, era5_table, matching_stats

__all__ = [
    "EXPERIMENTS",
    "ExperimentName",
    "Split",
    "era5_at_table",
    "era5_baseline",
    "rematch",
    "resolve_test_years",
    "station_split",
    "year_split",
]

ExperimentName = Literal["year", "station"]
#: The experiments, in report order.
EXPERIMENTS: Final[tuple[ExperimentName, ...]] = ("year", "station")


@dataclass(frozen=True)
class Split:
    """One experiment's rows: ``train`` and ``test`` are boolean masks over the table's rows (disjoint)."""

    name: ExperimentName
    train: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]
    description: str

    def counts(self, table: pd.DataFrame) -> dict[str, int]:
        """Rows and station cells on each side."""
        cells = table["cell_id"].to_numpy()
        return {
            "train_rows": int(self.train.sum()),
            "test_rows": int(self.test.sum()),
            "train_cells": int(np.unique(cells[self.train]).size),
            "test_cells": int(np.unique(cells[self.test]).size),
        }


def _need(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{what}: the training table lacks {missing} (columns {list(table.columns)}); rebuild it with `smci table`")


def resolve_test_years(test_years: Sequence[int] | None, years: Sequence[int], period: tuple[int, int] | None = None) -> list[int]:
    """The test years: the setting, or the last year of ``period`` (default: of ``years`` present).

    Raises
    ------
    ConfigError
        A test year has no rows, or every year would be a test year (nothing to train on).
    """
    present = sorted({int(y) for y in years})
    if not present:
        raise InputError("year experiment: the training table has no rows")
    if test_years is None:
        chosen = [int(period[1]) if period is not None else present[-1]]
    else:
        chosen = sorted({int(y) for y in test_years})
    absent = [y for y in chosen if y not in present]
    if absent:
        raise ConfigError(
            f"experiments.year.test_years {chosen}: no rows in {absent} (the table holds {present}); "
            "set test years within the period, or null for its last year"
        )
    if set(present) <= set(chosen):
        raise ConfigError(
            f"experiments.year.test_years {chosen} leave no year to train on (the table holds {present}); hold out fewer years"
        )
    return chosen


def year_split(table: pd.DataFrame, test_years: Sequence[int] | None = None, period: tuple[int, int] | None = None) -> Split:
    """Train on every year but the test years, test on those (see the module docstring)."""
    _need(table, ("year",), "year experiment")
    years = table["year"].to_numpy(dtype=np.int64)
    chosen = resolve_test_years(test_years, np.unique(years).tolist(), period)
    test = np.isin(years, chosen)
    train_years = sorted(set(np.unique(years).tolist()) - set(chosen))
    text = f"train on {_years_text(train_years)}, test on {_years_text(chosen)} (all station cells)"
    return Split("year", ~test, test, text)


def _years_text(years: Sequence[int]) -> str:
    ys = sorted(int(y) for y in years)
    if len(ys) > 1 and ys == list(range(ys[0], ys[-1] + 1)):
        return f"{ys[0]}-{ys[-1]}"
    return ", ".join(map(str, ys))


def station_split(table: pd.DataFrame, train_fraction: float = 0.6667, seed: int = 42) -> Split:
    """A seeded random ``train_fraction`` of the station cells train, the rest test, all years."""
    _need(table, ("cell_id",), "station experiment")
    if not 0 < train_fraction < 1:
        raise ConfigError(f"experiments.station.train_fraction {train_fraction} must lie strictly between 0 and 1")
    ids = table["cell_id"].to_numpy(dtype=np.int64)
    cells = np.unique(ids)
    if cells.size < 2:
        raise InputError(f"station experiment: the training table has {cells.size} station cell(s); it needs at least 2")
    n_train = min(max(int(round(train_fraction * cells.size)), 1), cells.size - 1)
    order = np.random.default_rng(seed).permutation(cells.size)
    train_cells = np.sort(cells[order[:n_train]])
    train = np.isin(ids, train_cells)
    text = (
        f"{n_train} of {cells.size} station cells train ({train_fraction:.0%}, seed {seed}), "
        f"the other {cells.size - n_train} test; all years"
    )
    return Split("station", train, ~train, text)


# ------------------------------------------------------------------ ERA5-Land at the rows
def era5_at_table(era5_daily: xr.Dataset, grid: GridSpec, table: pd.DataFrame, layers: Mapping[int, int]) -> pd.DataFrame:
    """ERA5-Land soil moisture of the matched layers at the table's cells (coast rule), long form.

    Returns
    -------
    pandas.DataFrame
        :func:`~smci_dask.insitu.matching.era5_table`: ``row``, ``col``,
        ``time`` and ``swvl<k>`` (m3/m3) for every layer a depth of the table
        is matched to.
    """
    _need(table, ("row", "col", "depth_cm", cv.TIME), "ERA5-Land at the table")
    depths = {int(d) for d in np.unique(table["depth_cm"].to_numpy())}
    wanted = sorted({SWVL.format(int(k)) for d, k in layers.items() if int(d) in depths})
    if not wanted:
        raise ConfigError(f"matching.layers {dict(layers)} name no layer for the table's depths {sorted(depths)}; add them")
    cells = table[["row", "col"]].drop_duplicates()
    at = era5_at_cells(era5_daily, grid, cells["row"].to_numpy(), cells["col"].to_numpy(), variables=wanted)
    return era5_table(at)


def era5_baseline(table: pd.DataFrame, era5_rows: pd.DataFrame, layers: Mapping[int, int]) -> npt.NDArray[np.float64]:
    """ERA5-Land soil moisture (m3/m3) of each row's matched layer, cell and day: the baseline estimate.

    NaN where the day or the layer is missing.
    """
    keys = ["row", "col", cv.TIME]
    left = table[keys].copy()
    left["row"] = left["row"].astype(np.int64)
    left["col"] = left["col"].astype(np.int64)
    left[cv.TIME] = left[cv.TIME].to_numpy(dtype="datetime64[ns]")
    right = era5_rows.copy()
    right["row"] = right["row"].astype(np.int64)
    right["col"] = right["col"].astype(np.int64)
    right[cv.TIME] = right[cv.TIME].to_numpy(dtype="datetime64[ns]")
    pos = pd.MultiIndex.from_frame(right[keys]).get_indexer(pd.MultiIndex.from_frame(left[keys]))
    depth = table["depth_cm"].to_numpy(dtype=np.int64)
    out = np.full(len(table), np.nan)
    hit = pos >= 0
    for d in np.unique(depth):
        k = layers.get(int(d))
        name = SWVL.format(int(k)) if k is not None else None
        if name is None or name not in right.columns:
            continue
        sel = hit & (depth == d)
        out[sel] = right[name].to_numpy(dtype=np.float64)[pos[sel]]
    return out


def rematch(
    table: pd.DataFrame,
    era5_rows: pd.DataFrame,
    train: npt.ArrayLike,
    *,
    layers: Mapping[int, int],
    min_days: int = MIN_MATCH_DAYS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table with ``sm_matched`` recomputed from matching statistics of the training rows only.

    Parameters
    ----------
    table : pandas.DataFrame
        The training table (``row``, ``col``, ``depth_cm``, ``time``,
        ``sm_raw`` in m3/m3, ...).
    era5_rows : pandas.DataFrame
        :func:`era5_at_table` of the table.
    train : array_like of bool
        The experiment's training rows (:attr:`Split.train`).
    layers : mapping
        Product depth (cm) -> ERA5-Land layer (``matching.layers``).
    min_days : int
        Fewest common days for a valid match.

    Returns
    -------
    table, stats : pandas.DataFrame
        A copy of the table (same row order) with the experiment's
        ``sm_matched`` (m3/m3, NaN where unmatched), and the statistics with a
        column ``from_training`` (False where the (cell, depth) had no
        training row and its own rows were used; see the module docstring).
    """
    _need(table, ("row", "col", "depth_cm", cv.TIME, "sm_raw"), "matching")
    mask = np.asarray(train, dtype=bool).ravel()
    if mask.shape != (len(table),):
        raise InputError(f"rematch: {mask.size} training flags for {len(table)} rows")
    series = table[["row", "col", "depth_cm"]].astype(np.int64)
    key = pd.MultiIndex.from_frame(series)
    has_train = pd.Series(mask, index=key).groupby(level=[0, 1, 2]).any()
    own = ~has_train.reindex(key).to_numpy(dtype=bool)  # series without any training row: matched on their own rows
    cell_daily = pd.DataFrame(
        {
            "row": series["row"].to_numpy(),
            "col": series["col"].to_numpy(),
            "depth_cm": series["depth_cm"].to_numpy(),
            cv.TIME: table[cv.TIME].to_numpy(dtype="datetime64[ns]"),
            "sm_raw": table["sm_raw"].to_numpy(dtype=np.float64),
        }
    )
    stats = matching_stats(cell_daily, era5_rows, layers=dict(layers), train_mask=mask | own, min_days=min_days)
    own_keys = pd.MultiIndex.from_frame(series[own]).unique()
    stats["from_training"] = ~pd.MultiIndex.from_frame(stats[["row", "col", "depth_cm"]]).isin(own_keys)
    matched = apply_matching(cell_daily, stats)["sm_matched"].to_numpy()
    out = table.copy()
    out["sm_matched"] = matched
    return out, stats
