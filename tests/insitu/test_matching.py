"""Mean/std matching to ERA5-Land: exact statistics, no test leakage, the coast rule, and the synthetic truth."""

from __future__ import annotations

from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.config import MatchingConfig
from smci_dask.covariates import daily_from_hourly, open_era5land_hourly, subset_to_grid
from smci_dask.errors import GridError, InputError
from smci_dask.grid import fine_coarse_index, grid_for
from smci_dask.insitu.daily import daily_means, fill_gaps, to_cells
from smci_dask.insitu.matching import STATS_COLUMNS, apply_matching, era5_at_cells, era5_table, matching_stats
from smci_dask.io import Store, open_zarr, read_parquet

GRID = grid_for("tiny")
LAYERS = MatchingConfig().layers
DAYS = pd.date_range("2019-01-01", periods=120, freq="D")


def _series(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two cells x two depths x 120 days of in-situ values, and ERA5-Land swvl2/swvl3 at the two cells."""
    rng = np.random.default_rng(seed)
    rows = []
    era = []
    for row, col in ((10, 12), (40, 33)):
        for layer in (2, 3):
            era.append(pd.DataFrame({"row": row, "col": col, "time": DAYS, "layer": layer, "v": 0.25 + 0.05 * rng.standard_normal(120)}))
        for depth in (10, 50):
            sm = 0.30 + 0.08 * rng.standard_normal(120) + rng.uniform(-0.05, 0.05)
            rows.append(pd.DataFrame({"row": row, "col": col, "depth_cm": depth, "time": DAYS, "sm_raw": sm}))
    cells = pd.concat(rows, ignore_index=True)
    e = pd.concat(era, ignore_index=True).pivot_table(index=["row", "col", "time"], columns="layer", values="v").reset_index()
    e.columns = ["row", "col", "time", "swvl2", "swvl3"]
    return cells, e


def test_matched_series_has_era5_mean_and_std_over_the_training_days() -> None:
    cells, era = _series(1)
    # gaps on both sides: the statistics must use the common days only
    cells.loc[cells["time"].isin(DAYS[5:9]), "sm_raw"] = np.nan
    era.loc[era["time"].isin(DAYS[20:26]), ["swvl2", "swvl3"]] = np.nan
    train = (cells["time"] < DAYS[80]).to_numpy()
    stats = matching_stats(cells, era, layers=LAYERS, train_mask=train)
    assert tuple(stats.columns) == STATS_COLUMNS and len(stats) == 4 and stats["valid"].all()
    out = apply_matching(cells, stats)
    assert out.index.equals(cells.index) and out["sm_matched"].notna().sum() == cells["sm_raw"].notna().sum()

    for (row, col, depth), g in out.groupby(["row", "col", "depth_cm"]):
        layer = 2 if depth <= 30 else 3
        e = era[(era["row"] == row) & (era["col"] == col)].set_index("time")[f"swvl{layer}"].reindex(g["time"]).to_numpy()
        x = g["sm_raw"].to_numpy()
        m = g["sm_matched"].to_numpy()
        common = (g["time"] < DAYS[80]).to_numpy() & np.isfinite(x) & np.isfinite(e)
        assert common.sum() == 80 - 4 - 6
        # independent check with plain numpy (population std)
        assert np.mean(m[common]) == pytest.approx(np.mean(e[common]), abs=1e-12)
        assert np.std(m[common]) == pytest.approx(np.std(e[common]), abs=1e-12)
        s = stats[(stats["row"] == row) & (stats["col"] == col) & (stats["depth_cm"] == depth)].iloc[0]
        assert s["layer"] == layer and s["n_days"] == 70
        assert s["mean_insitu"] == pytest.approx(np.mean(x[common]), abs=1e-12)
        assert s["mean_insitu"] != pytest.approx(np.nanmean(x[(g["time"] < DAYS[80]).to_numpy()]), abs=1e-9)  # not all train days
        assert s["first_day"] == DAYS[0] and s["last_day"] == DAYS[79]
        # the daily variations are kept: matched is a positive linear function of raw
        ok = np.isfinite(x)
        assert np.corrcoef(x[ok], m[ok])[0, 1] == pytest.approx(1.0)


def test_test_rows_do_not_influence_the_statistics() -> None:
    cells, era = _series(2)
    train = (cells["time"] < DAYS[90]).to_numpy()
    stats = matching_stats(cells, era, layers=LAYERS, train_mask=train)
    changed = cells.copy()
    changed.loc[~train, "sm_raw"] += 1.0
    era_changed = era.copy()
    era_changed.loc[era_changed["time"] >= DAYS[90], ["swvl2", "swvl3"]] *= 3.0
    pd.testing.assert_frame_equal(matching_stats(changed, era_changed, layers=LAYERS, train_mask=train), stats)
    # without the mask they do
    assert not matching_stats(changed, era_changed, layers=LAYERS)["mean_insitu"].equals(stats["mean_insitu"])
    # test rows still get matched values, with the training statistics
    out = apply_matching(changed, stats)
    assert out.loc[~train, "sm_matched"].notna().all()
    with pytest.raises(InputError, match="train_mask"):
        matching_stats(cells, era, layers=LAYERS, train_mask=train[:-1])


def test_too_few_days_constant_series_and_depths_without_layer_get_no_matched_value() -> None:
    cells, era = _series(3)
    cells.loc[(cells["row"] == 10) & (cells["depth_cm"] == 10) & (cells["time"] >= DAYS[29]), "sm_raw"] = np.nan  # 29 days left
    cells.loc[(cells["row"] == 40) & (cells["depth_cm"] == 10), "sm_raw"] = 0.3  # constant sensor
    stats = matching_stats(cells, era, layers={10: 2, 20: 2}, min_days=30)  # 50 cm has no layer here
    reasons = dict(zip(zip(stats["row"], stats["depth_cm"], strict=True), stats["reason"], strict=True))
    assert reasons[(10, 10)] == "fewer than 30 common days"
    assert reasons[(40, 10)] == "constant in-situ series"
    assert reasons[(10, 50)] == reasons[(40, 50)] == "no ERA5-Land layer for this depth"
    assert not stats["valid"].any()
    assert apply_matching(cells, stats)["sm_matched"].isna().all()
    assert matching_stats(cells, era, layers={10: 2, 20: 2}, min_days=29).set_index(["row", "depth_cm"]).loc[(10, 10), "valid"]
    flat = era.assign(swvl3=0.2)
    assert set(matching_stats(cells, flat, layers=LAYERS)["reason"]) >= {"constant ERA5-Land series"}
    with pytest.raises(InputError, match="swvl3"):
        matching_stats(cells, era.drop(columns="swvl3"), layers=LAYERS)
    with pytest.raises(InputError, match="layers"):
        matching_stats(cells, era, layers={10: 5})


# ------------------------------------------------------------------ ERA5-Land at cells
def _era5_cube(nan_cell: tuple[int, int]) -> xr.Dataset:
    ny, nx = GRID.coarse_shape
    times = pd.date_range("2019-01-01", periods=4, freq="D")
    base = np.arange(ny * nx, dtype=np.float64).reshape(ny, nx) / 100.0
    data = base[None] + np.arange(4)[:, None, None] / 1000.0
    data[:, nan_cell[0], nan_cell[1]] = np.nan
    coords = {cv.TIME: times, cv.LAT: GRID.coarse_lat, cv.LON: GRID.coarse_lon}
    dims = (cv.TIME, cv.LAT, cv.LON)
    return xr.Dataset({"swvl2": (dims, data), "swvl3": (dims, data + 1.0)}, coords=coords)


def test_era5_at_cells_uses_the_nearest_land_cell_where_the_coarse_cell_is_nan() -> None:
    nan_cell = (2, 2)
    ds = _era5_cube(nan_cell)
    fine_rows, fine_cols = GRID.fine_to_coarse_rows(), GRID.fine_to_coarse_cols()
    r_in = int(np.flatnonzero(fine_rows == nan_cell[0])[3])
    c_in = int(np.flatnonzero(fine_cols == nan_cell[1])[5])
    r_ok, c_ok = int(np.flatnonzero(fine_rows == 0)[0]), int(np.flatnonzero(fine_cols == 4)[0])
    at = era5_at_cells(ds, GRID, [r_in, r_ok], [c_in, c_ok])
    assert at["swvl2"].dims == (cv.TIME, "cell")
    assert list(at["substituted"].values) == [True, False]
    valid = np.isfinite(ds["swvl2"].isel(time=0).values)
    idx_r, idx_c = fine_coarse_index(GRID, valid)
    want = (int(idx_r[r_in, c_in]), int(idx_c[r_in, c_in]))
    assert want != nan_cell and abs(want[0] - 2) + abs(want[1] - 2) == 1  # a direct neighbour
    assert (int(at["coarse_row"][0]), int(at["coarse_col"][0])) == want
    np.testing.assert_array_equal(at["swvl2"].values[:, 0], ds["swvl2"].values[:, want[0], want[1]])
    np.testing.assert_array_equal(at["swvl3"].values[:, 1], ds["swvl3"].values[:, 0, 4])
    assert np.isfinite(at["swvl2"].values).all()
    assert float(at["era5_lat"][1]) == pytest.approx(GRID.coarse_lat[0]) and float(at["era5_lon"][1]) == pytest.approx(GRID.coarse_lon[4])
    table = era5_table(at)
    assert list(table.columns) == ["row", "col", "time", "swvl2", "swvl3"] and len(table) == 8
    assert table.loc[(table["row"] == r_ok) & (table["col"] == c_ok), "swvl2"].tolist() == list(ds["swvl2"].values[:, 0, 4])


def test_era5_at_cells_stays_lazy_and_checks_its_inputs() -> None:
    ds = _era5_cube((0, 0))
    lazy = ds.chunk({cv.TIME: 2})
    valid = np.isfinite(ds["swvl2"].isel(time=0).values)

    def forbid(*_a: Any, **_k: Any) -> None:
        raise AssertionError("era5_at_cells computed something")

    import dask

    with dask.config.set(scheduler=forbid):
        at = era5_at_cells(lazy, GRID, np.arange(0, 60, 7), np.arange(0, 60, 7), coarse_valid=valid)
    assert isinstance(at["swvl2"].data, dsa.Array)
    np.testing.assert_array_equal(at["swvl2"].values, era5_at_cells(ds, GRID, np.arange(0, 60, 7), np.arange(0, 60, 7))["swvl2"].values)
    with pytest.raises(InputError, match="coarse grid"):
        era5_at_cells(ds.isel(lat=slice(1, None)), GRID, [0], [0])
    with pytest.raises(InputError, match="swvl4"):
        era5_at_cells(ds, GRID, [0], [0], variables=["swvl4"])
    with pytest.raises(GridError, match="off the grid"):
        era5_at_cells(ds, GRID, [60], [0])


# ------------------------------------------------------------------ the synthetic truth
def _world_soil_moisture(store: Store, manifest: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The world's station CSV as hourly soil-moisture rows in the readers' layout, and the station table.

    Read with pyarrow directly (a few seconds instead of the full reader's ~15 s for 2.8 M rows); the
    readers themselves are exercised by tests/pipeline/test_stations_pipeline.py.
    """
    cols = ["station", "lat", "lon", "depth_from_cm", "depth_to_cm", "time", "sm"]
    convert = pacsv.ConvertOptions(include_columns=cols, column_types={"station": pa.dictionary(pa.int32(), pa.string())})
    df = pacsv.read_csv(store.join(manifest["files"]["station_csv"]), convert_options=convert).to_pandas()
    sm = pd.DataFrame(
        {
            "station_id": df["station"].cat.rename_categories(lambda name: f"SYNTH/{name}"),
            "time": df["time"].dt.tz_convert(None).astype("datetime64[ns]"),
            "variable": "sm",
            "depth_from_m": df["depth_from_cm"].to_numpy() / 100.0,
            "depth_to_m": df["depth_to_cm"].to_numpy() / 100.0,
            "sensor": "",
            "value": df["sm"].to_numpy(dtype=np.float64),
        }
    )
    first = ~sm["station_id"].duplicated().to_numpy()
    stations = pd.DataFrame({"station_id": sm["station_id"].astype(str)[first], "lat": df["lat"][first], "lon": df["lon"][first]})
    return sm, stations


def _oracle_qc(sm: pd.DataFrame, faults: pd.DataFrame) -> pd.DataFrame:
    """``qc_good`` from the world's fault record: a perfect QC, so the test is about matching alone."""
    station = sm["station_id"].cat.rename_categories(lambda sid: sid.split("/")[1])
    names = pd.Index(sorted(set(faults["station"].astype(str)) | set(station.cat.categories)))

    def key(codes: np.ndarray, depth_cm: np.ndarray, time: pd.Series) -> np.ndarray:
        hours = time.to_numpy(dtype="datetime64[h]").astype(np.int64)
        return (codes.astype(np.int64) * 1000 + depth_cm.astype(np.int64)) * 10**7 + hours

    obs_codes = names.get_indexer(station.cat.categories)[station.cat.codes.to_numpy()]
    obs_key = key(obs_codes, np.round(sm["depth_to_m"].to_numpy() * 100), sm["time"])
    bad_key = key(names.get_indexer(faults["station"].astype(str)), faults["depth_cm"].to_numpy(), faults["time"])
    return sm.assign(qc_good=~np.isin(obs_key, bad_key))


def test_matched_targets_are_closer_to_the_truth_than_the_raw_station_series(tiny_world: tuple[Store, dict[str, Any]]) -> None:
    """Sensors carry a bias of U(-0.05, 0.05) m3/m3; ERA5-Land keeps the coarse truth's mean and std over the
    world's whole period, so matching over all days (the final-model targets) removes most of the bias."""
    store, manifest = tiny_world
    sm, stations = _world_soil_moisture(store, manifest)
    faults = read_parquet(store, manifest["files"]["faults"], columns=["station", "depth_cm", "time"])
    checked = _oracle_qc(sm, faults)
    assert 0.02 < 1 - checked["qc_good"].mean() < 0.3
    cells = to_cells(fill_gaps(daily_means(checked)), stations, GRID)
    files = sorted(store.join(p) for p in manifest["files"]["era5land"])
    with open_era5land_hourly(files) as hourly:
        era5, _ = daily_from_hourly(subset_to_grid(hourly[["swvl2", "swvl3"]], GRID))
        era5 = era5.load()
    uc = cells[["row", "col"]].drop_duplicates()
    at = era5_at_cells(era5, GRID, uc["row"], uc["col"])
    stats = matching_stats(cells, at, layers=LAYERS)
    assert stats["valid"].all()
    out = apply_matching(cells, stats)

    truth = open_zarr(store, manifest["files"]["truth"])[cv.SM_TRUTH]
    k = "k"
    point = {
        cv.TIME: xr.DataArray(truth.indexes[cv.TIME].get_indexer(out["time"]), dims=k),
        cv.DEPTH: xr.DataArray(truth.indexes[cv.DEPTH].get_indexer(out["depth_cm"].astype(np.int64)), dims=k),
        cv.LAT: xr.DataArray(out["row"].to_numpy(), dims=k),
        cv.LON: xr.DataArray(out["col"].to_numpy(), dims=k),
    }
    assert all((v.values >= 0).all() for v in point.values())
    at_cell = truth.isel(point)
    out["truth"] = at_cell.values
    assert out["truth"].notna().all()
    err_raw = out["sm_raw"] - out["truth"]
    err_matched = out["sm_matched"] - out["truth"]
    rmse_raw, rmse_matched = np.sqrt(np.mean(err_raw**2)), np.sqrt(np.mean(err_matched**2))
    assert rmse_matched < 0.92 * rmse_raw
    per = out.assign(r=err_raw**2, m=err_matched**2, br=err_raw, bm=err_matched).groupby(["row", "col", "depth_cm"])
    rmse = per[["r", "m"]].mean() ** 0.5
    assert rmse["m"].median() < 0.8 * rmse["r"].median()
    bias = per[["br", "bm"]].mean().abs()
    assert bias["bm"].median() < 0.6 * bias["br"].median()
