"""Experiment splits and per-experiment matching: no test cell or year in training, no test value in the training targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smci_dask.errors import ConfigError
from smci_dask.evaluation.experiments import era5_at_table, era5_baseline, rematch, station_split, year_split

LAYERS = {10: 2, 40: 3}


def _frame(seed: int = 0, n_cells: int = 9, years: tuple[int, ...] = (2018, 2019, 2020)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table of daily rows for a few cells and two depths with a made-up ERA5-Land, and that ERA5-Land in long form."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-31", freq="D")
    rows = []
    era = []
    for c in range(n_cells):
        e2 = 0.25 + 0.05 * np.sin(np.arange(len(days)) / 30 + c) + rng.normal(0, 0.01, len(days))
        e3 = 0.28 + 0.03 * np.sin(np.arange(len(days)) / 60 + c)
        era.append(pd.DataFrame({"row": c, "col": 2 * c, "time": days, "swvl2": e2, "swvl3": e3}))
        for depth in (10, 40):
            raw = 0.1 + 0.5 * (e2 if depth == 10 else e3) + rng.normal(0, 0.02, len(days))
            rows.append(
                pd.DataFrame(
                    {"row": c, "col": 2 * c, "cell_id": c * 1000 + 2 * c, "depth_cm": depth, "time": days, "year": days.year, "sm_raw": raw}
                )
            )
    return pd.concat(rows, ignore_index=True), pd.concat(era, ignore_index=True)


def test_year_split_holds_out_the_test_years() -> None:
    table, _ = _frame()
    split = year_split(table)  # null: the last year
    assert set(table.loc[split.test, "year"]) == {2020}
    assert 2020 not in set(table.loc[split.train, "year"])
    assert (split.train ^ split.test).all()
    two = year_split(table, [2019, 2020])
    assert set(table.loc[two.train, "year"]) == {2018}
    assert year_split(table, None, period=(2018, 2019)).test.sum() == (table["year"] == 2019).sum()
    with pytest.raises(ConfigError, match="no rows in"):
        year_split(table, [2017])
    with pytest.raises(ConfigError, match="no year to train on"):
        year_split(table, [2018, 2019, 2020])


def test_station_split_keeps_cells_apart_and_is_seeded() -> None:
    table, _ = _frame(n_cells=12)
    split = station_split(table, 0.6667, seed=42)
    train_cells = set(table.loc[split.train, "cell_id"])
    test_cells = set(table.loc[split.test, "cell_id"])
    assert not train_cells & test_cells
    assert len(train_cells) == 8 and len(test_cells) == 4
    assert set(table.loc[split.test, "year"]) == {2018, 2019, 2020}  # all years
    again = station_split(table.sample(frac=1.0, random_state=1).sort_index(), 0.6667, seed=42)
    assert np.array_equal(again.train, split.train)
    other = station_split(table, 0.6667, seed=7)
    assert not np.array_equal(other.train, split.train)


def test_rematch_uses_only_training_rows() -> None:
    table, era = _frame()
    split = year_split(table)
    matched, stats = rematch(table, era, split.train, layers=LAYERS)
    assert stats["valid"].all() and stats["from_training"].all()
    # the statistics are exactly those of the training rows: matched training targets have ERA5-Land's mean/std there
    base = era5_baseline(table, era, LAYERS)
    for (_, _, depth), idx in matched[split.train].groupby(["row", "col", "depth_cm"]).groups.items():
        m = matched.loc[idx, "sm_matched"].to_numpy()
        assert m.mean() == pytest.approx(base[idx].mean(), abs=1e-12), depth
        assert m.std() == pytest.approx(base[idx].std(), rel=1e-9)
    # changing test-year values changes no training target (and no statistic) ...
    changed = table.copy()
    test_rows = np.flatnonzero(split.test)
    changed.loc[test_rows[::3], "sm_raw"] += 0.2
    again, stats2 = rematch(changed, era, split.train, layers=LAYERS)
    np.testing.assert_array_equal(again.loc[split.train, "sm_matched"].to_numpy(), matched.loc[split.train, "sm_matched"].to_numpy())
    pd.testing.assert_frame_equal(stats2, stats)
    # ... while changing a training value does (so the check above could fail)
    moved = table.copy()
    moved.loc[np.flatnonzero(split.train)[0], "sm_raw"] += 0.2
    third, _ = rematch(moved, era, split.train, layers=LAYERS)
    assert not np.array_equal(third.loc[split.train, "sm_matched"].to_numpy(), matched.loc[split.train, "sm_matched"].to_numpy())


def test_rematch_matches_held_out_cells_on_their_own_rows() -> None:
    table, era = _frame(n_cells=6)
    split = station_split(table, 0.5, seed=3)
    matched, stats = rematch(table, era, split.train, layers=LAYERS)
    test_cells = set(table.loc[split.test, "cell_id"])
    own = stats[~stats["from_training"]]
    assert {r * 1000 + c for r, c in zip(own["row"], own["col"], strict=True)} == test_cells
    assert np.isfinite(matched.loc[split.test, "sm_matched"]).all()
    # a held-out cell's values never move a training target
    changed = table.copy()
    changed.loc[split.test, "sm_raw"] *= 1.5
    again, _ = rematch(changed, era, split.train, layers=LAYERS)
    np.testing.assert_array_equal(again.loc[split.train, "sm_matched"].to_numpy(), matched.loc[split.train, "sm_matched"].to_numpy())


def test_rematch_with_every_row_equals_the_ingest_matching(eval_store) -> None:  # noqa: ANN001 - fixture
    """All rows as training part: the same sm_matched as `match_targets` wrote to insitu/daily (an independent run of the stage)."""
    from smci_dask.covariates.era5land_store import open_era5land_daily

    table = eval_store.table
    layers = {d: (2 if d <= 30 else 3) for d in (10, 40, 100)}
    era = era5_at_table(open_era5land_daily(eval_store.store, "covariates/era5land"), eval_store.grid, table, layers)
    matched, _ = rematch(table, era, np.ones(len(table), bool), layers=layers)
    np.testing.assert_allclose(matched["sm_matched"].to_numpy(), table["sm_matched"].to_numpy(), rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isfinite(matched["sm_matched"]).mean() > 0.9
    # and the baseline is ERA5-Land's layer at the cell and day (independent lookup through insitu/daily's cells)
    base = era5_baseline(table, era, layers)
    one = table.index[(table["depth_cm"] == 40)][100]
    r, c, t = table.loc[one, ["row", "col", "time"]]
    want = era[(era["row"] == r) & (era["col"] == c) & (era["time"] == t)]["swvl3"].item()
    assert base[one] == want
