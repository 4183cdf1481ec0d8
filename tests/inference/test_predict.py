"""The 1 km product: layout and CF encoding, land cells only, values equal to the models', resumable and idempotent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.features import FEATURE_NAMES, features_for_tile, open_feature_sources
from smci_dask.inference import TaskResult, load_tile_inputs, predict_product, tile_features
from smci_dask.io import Store, open_zarr
from smci_dask.models.store import load_card, load_model, model_checksum
from smci_dask.products.smci1km import markers_relpath, write_product_region

if TYPE_CHECKING:
    from conftest import Trained  # tests/inference/conftest.py

RUN = "t1"  # the fixture's run (Trained.run)
DAYS = ("2020-03-01", "2020-03-06")  # the fixture's days (Trained.days)

A = "product/a"  # the uninterrupted reference run of DAYS


def _raw(store: Store, relpath: str) -> xr.Dataset:
    return open_zarr(store, relpath, mask_and_scale=False)


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def product_a(trained: Trained) -> Any:
    assert (trained.run, trained.days) == (RUN, DAYS)
    return predict_product(trained.config(), trained.store, start=DAYS[0], end=DAYS[1], echo=_quiet, relpath=A)


def _static(trained: Trained) -> xr.Dataset:
    return open_feature_sources(trained.store).static.compute()


# ---------------------------------------------------------------- layout, encoding, attributes
def test_layout_encoding_and_cf_attributes(trained: Trained, product_a: Any) -> None:
    raw = _raw(trained.store, A)
    sm = raw[cv.SM]
    assert sm.dims == (cv.TIME, cv.DEPTH, cv.LAT, cv.LON)
    assert sm.dtype == np.int16
    assert sm.encoding["chunks"] == (1, 10, 32, 32)
    assert sm.attrs["_FillValue"] == cv.PRODUCT_FILL == -999 and sm.attrs["scale_factor"] == cv.PRODUCT_SCALE
    assert sm.attrs["units"] == "m3 m-3" and sm.attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    assert sm.attrs["long_name"] and sm.attrs["grid_mapping"] == "crs"
    assert raw["crs"].attrs["grid_mapping_name"] == "latitude_longitude" and "WGS 84" in raw["crs"].attrs["crs_wkt"]
    # the full time axis of the configured period (tiny: 2019-2020), days in order
    times = pd.DatetimeIndex(raw[cv.TIME].values)
    assert len(times) == 731 and times[0] == pd.Timestamp("2019-01-01") and times[-1] == pd.Timestamp("2020-12-31")
    # coordinates with CF bounds: depth layers (d - 10, d] cm, 1/120 degree cells
    assert list(raw[cv.DEPTH].values) == list(cv.DEPTHS_CM) and raw[cv.DEPTH].attrs["units"] == "cm"
    assert raw[cv.DEPTH].attrs["bounds"] == "depth_bnds" and raw[cv.DEPTH].attrs["positive"] == "down"
    assert np.array_equal(raw["depth_bnds"].values, np.array([[d - 10, d] for d in cv.DEPTHS_CM]))
    np.testing.assert_allclose(raw["lat_bnds"].values[:, 0] - raw["lat_bnds"].values[:, 1], -1 / 120)
    np.testing.assert_allclose(raw["lon_bnds"].values.mean(axis=1), raw[cv.LON].values)
    np.testing.assert_allclose(raw[cv.LAT].values, trained.grid.lat)
    assert raw[cv.LAT].attrs["units"] == "degrees_north" and raw[cv.LON].attrs["units"] == "degrees_east"
    assert raw[cv.LAT].attrs["axis"] == "Y" and raw[cv.LON].attrs["axis"] == "X" and raw[cv.TIME].attrs["axis"] == "T"
    # provenance
    assert raw.attrs["Conventions"].startswith("CF-") and raw.attrs["model_run"] == RUN and raw.attrs["model_experiment"] == "final"
    cards = {d: load_card(trained.store, RUN, "final", d) for d in cv.DEPTHS_CM}
    assert raw.attrs["model_checksums"] == {str(d): model_checksum(c) for d, c in cards.items()}
    assert raw.attrs["inputs"]["era5land"].endswith("covariates/era5land") and raw.attrs["code_version"]
    assert raw.attrs["complete_days"] == [list(DAYS)]
    # xarray decodes it by the CF attributes: m3/m3 floats, fill -> NaN, codes x 0.001
    decoded = xr.decode_cf(raw)[cv.SM].sel({cv.TIME: slice(*DAYS)}).values
    codes = sm.sel({cv.TIME: slice(*DAYS)}).values
    assert np.array_equal(np.isnan(decoded), codes == -999)
    np.testing.assert_allclose(decoded[codes != -999], codes[codes != -999] * 0.001, rtol=1e-6)
    # days outside the request hold nothing (fill)
    assert (sm.sel({cv.TIME: "2020-03-07"}).values == -999).all() and (sm.isel({cv.TIME: 0}).values == -999).all()


def test_only_land_cells_have_values(trained: Trained, product_a: Any) -> None:
    codes = _raw(trained.store, A)[cv.SM].sel({cv.TIME: slice(*DAYS)}).values
    land = np.asarray(_static(trained)["land"].values, dtype=bool)
    assert 0 < land.sum() < land.size  # the tiny world has water
    has_value = codes != cv.PRODUCT_FILL
    assert np.array_equal(has_value, np.broadcast_to(land, has_value.shape))
    assert codes[has_value].min() > 0 and codes[has_value].max() < 1000  # m3/m3 in (0, 1)
    assert product_a.tasks_run == 2 * 4 and product_a.land_cell_days == land.sum() * 6  # 2 time blocks x 4 tiles


# ---------------------------------------------------------------- values: the models' predictions
def test_station_cell_day_values_equal_the_ensemble_on_the_training_rows(trained: Trained, product_a: Any) -> None:
    """Independent path: the training table's feature row (features_at_cells) -> model.predict -> codes."""
    raw = _raw(trained.store, A)[cv.SM]
    _check_codes_at_training_rows(trained, raw, DAYS, "predict")


def _check_codes_at_training_rows(trained: Trained, codes: xr.DataArray, days: tuple[str, str], method: str) -> None:
    """The stored codes at every training-table row of ``days`` equal ``rint(1000 x model.<method>(the row's features))``."""
    rows = trained.table[trained.table[cv.TIME].between(*days)]
    assert len(rows) > 20 and rows["depth_cm"].nunique() > 3
    for depth, part in rows.groupby("depth_cm"):
        model = load_model(trained.store, RUN, "final", int(depth), features=FEATURE_NAMES)
        want = np.rint(getattr(model, method)(part[list(FEATURE_NAMES)].to_numpy(np.float32)) * 1000).astype(np.int16)
        got = codes.isel(
            {
                cv.TIME: xr.DataArray((pd.DatetimeIndex(part[cv.TIME]) - pd.Timestamp("2019-01-01")).days.to_numpy(), dims="p"),
                cv.DEPTH: cv.DEPTHS_CM.index(int(depth)),
                cv.LAT: xr.DataArray(part["row"].to_numpy(), dims="p"),
                cv.LON: xr.DataArray(part["col"].to_numpy(), dims="p"),
            }
        ).values
        assert np.array_equal(got, want), f"depth {depth}: product {got[got != want]} vs model.{method} {want[got != want]}"


def test_per_day_features_of_a_task_equal_the_tile_feature_function(trained: Trained) -> None:
    sources = open_feature_sources(trained.store)
    tile = trained.grid.tiles(32)[3]
    days = pd.date_range("2019-01-20", "2019-02-02")  # crosses the start of the tp_sum28 record
    inputs = load_tile_inputs(sources, trained.grid, tile, days, "bilinear")
    whole = features_for_tile(sources, trained.grid, tile, days, interpolation="bilinear")
    assert np.array_equal(inputs.rows, whole.rows) and np.array_equal(inputs.cols, whole.cols)
    for k, day in enumerate(days):
        one = tile_features(inputs, trained.grid, pd.DatetimeIndex([day]), "bilinear")[0]
        assert np.array_equal(one, whole.values[k], equal_nan=True)


# ---------------------------------------------------------------- resumable and idempotent
class Crash(RuntimeError):
    pass


def _crash_after(n: int) -> Any:
    seen: list[TaskResult] = []

    def checkpoint(result: TaskResult) -> None:
        seen.append(result)
        if len(seen) >= n:
            raise Crash(f"killed after {n} tasks")

    return checkpoint


def test_killed_run_resumes_to_the_same_product(trained: Trained, product_a: Any) -> None:
    b = "product/b"
    cfg = trained.config()
    with pytest.raises(Crash):
        predict_product(cfg, trained.store, start=DAYS[0], end=DAYS[1], echo=_quiet, relpath=b, checkpoint=_crash_after(3))
    assert len(trained.store.ls(markers_relpath(b))) == 3
    assert _raw(trained.store, b).attrs["complete_days"] == []  # readers are not told of days not yet complete
    # a crash in the middle of a region write: a torn chunk, no marker
    first = sorted(trained.store.ls(markers_relpath(b)))[0]
    trained.store.rm(markers_relpath(b), first)
    t0 = (pd.Timestamp(DAYS[0]) - pd.Timestamp("2019-01-01")).days
    torn = np.full((2, 10, 32, 32), 0.5, dtype=np.float32)  # garbage over two days of that tile, land and water alike
    write_product_region(trained.store, b, torn, t0=t0, tile=trained.grid.tiles(32)[0])
    again = predict_product(cfg, trained.store, start=DAYS[0], end=DAYS[1], echo=_quiet, relpath=b)
    assert again.tasks_run == 8 - 2 and again.tasks_skipped == 2
    around = {cv.TIME: slice(400, 450)}  # the predicted days and 25 days either side (the rest of the axis is never touched)
    ref, got = _raw(trained.store, A)[cv.SM].isel(around).values, _raw(trained.store, b)[cv.SM].isel(around).values
    assert np.array_equal(ref, got) and (got != cv.PRODUCT_FILL).sum() == (ref != cv.PRODUCT_FILL).sum() > 0
    assert _raw(trained.store, b).attrs["complete_days"] == [list(DAYS)]


def _chunk_files(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_rerun_writes_nothing(trained: Trained, product_a: Any) -> None:
    before = _chunk_files(trained.root / "product" / "a" / cv.SM)
    markers = _chunk_files(trained.root / "product" / "a.tasks")
    again = predict_product(trained.config(), trained.store, start=DAYS[0], end="2020-03-04", echo=_quiet, relpath=A)
    assert again.tasks_run == 0 and again.tasks_skipped == 2 * 4 and again.land_cell_days == 0  # (block, tile) pairs
    land = np.asarray(_static(trained)["land"].values, dtype=bool)
    land_tiles = sum(bool(land[t.rows, t.cols].any()) for t in trained.grid.tiles(32))
    assert _chunk_files(trained.root / "product" / "a" / cv.SM) == before
    assert len([p for p in before if "/c/" in p]) == 6 * land_tiles  # one chunk per day and tile with land (all-fill chunks are not stored)
    assert _chunk_files(trained.root / "product" / "a.tasks") == markers


# ---------------------------------------------------------------- errors
def test_no_models_says_train_first(trained: Trained, tmp_path: Path) -> None:
    bare = trained.bare_copy(tmp_path)
    with pytest.raises(InputError, match=r"run `smci train` first"):
        predict_product(trained.config(), bare, start=DAYS[0], end=DAYS[1], echo=_quiet)
    with pytest.raises(InputError, match=r"run 'nope' has no 'final' models"):
        predict_product(trained.config(), trained.store, start=DAYS[0], end=DAYS[1], run="nope", echo=_quiet)


def test_days_without_covariates_are_named(trained: Trained) -> None:
    cfg = trained.config().model_copy(update={"years": (2019, 2021)})
    with pytest.raises(InputError, match=r"lacks 3 requested day\(s\): 2021-01-01\.\.2021-01-03 \(it holds 2019-01-01\.\.2020-12-3"):
        predict_product(cfg, trained.store, start="2021-01-01", end="2021-01-03", echo=_quiet, relpath="product/never")
    with pytest.raises(InputError, match=r"2022-01-01 lie outside the product period 2019-01-01\.\.2021-12-31"):
        predict_product(cfg, trained.store, start="2022-01-01", end="2022-01-01", echo=_quiet, relpath="product/never")
    assert not os.path.exists(trained.root / "product" / "never")


def test_another_run_does_not_mix_into_a_product(trained: Trained, product_a: Any) -> None:
    trained.fit("t2", trained.table[trained.table["time"] < "2020-03-15"])
    try:
        with pytest.raises(InputError, match=r"made with models of run 't1'.*--run t1"):
            predict_product(trained.config(), trained.store, start=DAYS[0], end=DAYS[1], echo=_quiet, relpath=A)  # latest = t2
    finally:
        trained.store.rm("models/t2")


# ---------------------------------------------------------------- the map against the synthetic truth
def test_map_scores_against_the_truth_equal_an_independent_computation(trained: Trained, product_a: Any) -> None:
    from smci_dask.config import MatchingConfig
    from smci_dask.products.truth_scores import map_scores

    days = pd.date_range(*DAYS)
    table = map_scores(trained.store, trained.world, trained.grid, days, layers=MatchingConfig().layers, depths=[10, 100], relpath=A)
    assert list(table["source"]) == ["smci_1km", "era5land"] * 2
    land = np.asarray(_static(trained)["land"].values, dtype=bool)
    truth = xr.open_zarr(trained.world.join("truth/sm_truth.zarr"), consolidated=False)[cv.SM_TRUTH].sel({cv.TIME: days})
    codes = _raw(trained.store, A)[cv.SM].sel({cv.TIME: days})
    # the baseline through the feature function (nearest, coast rule): swvl2 / swvl3 at every land cell
    sources = open_feature_sources(trained.store)
    whole = features_for_tile(sources, trained.grid, trained.grid.tiles(60)[0], days)
    for depth, layer in ((10, "swvl2"), (100, "swvl3")):
        obs = truth.sel({cv.DEPTH: depth}).values[:, land]
        est = codes.sel({cv.DEPTH: depth}).values[:, land] / 1000.0
        base = whole.values[:, :, FEATURE_NAMES.index(layer)].astype(np.float64)
        for source, values in (("smci_1km", est), ("era5land", base)):
            ok = np.isfinite(values) & np.isfinite(obs)
            d = values[ok] - obs[ok]
            row = table[(table["depth_cm"] == depth) & (table["source"] == source)].iloc[0]
            assert row["n"] == ok.sum() == land.sum() * len(days)
            np.testing.assert_allclose(row["ubrmse"], d.std(), rtol=1e-9)
            np.testing.assert_allclose(row["bias"], d.mean(), rtol=1e-9)
            np.testing.assert_allclose(row["r"], np.corrcoef(values[ok], obs[ok])[0, 1], rtol=1e-9)


def test_map_figure_of_one_day_at_three_depths(trained: Trained, product_a: Any) -> None:
    from PIL import Image

    from smci_dask.products.figures import write_product_day_figure

    url = write_product_day_figure(trained.store, DAYS[1], "reports/figures/day.png", relpath=A)
    with Image.open(url) as img:
        assert img.format == "PNG" and img.size[0] > 2.5 * img.size[1]  # three maps side by side


# ---------------------------------------------------------------- NetCDF distribution files
def test_netcdf_export_per_day_and_per_year_keeps_codes_and_cf_attributes(trained: Trained, product_a: Any) -> None:
    import netCDF4

    from smci_dask.products.export import export_netcdf

    urls = export_netcdf(trained.store, start=DAYS[0], end=DAYS[1], period="day", relpath=A, out_relpath="exports/a", echo=_quiet)
    assert [Path(u).name for u in urls] == [f"SMCI_1km_202003{d:02d}.nc" for d in range(1, 7)]
    (year,) = export_netcdf(trained.store, start=DAYS[0], end=DAYS[1], period="year", relpath=A, out_relpath="exports/a", echo=_quiet)
    assert Path(year).name == "SMCI_1km_2020.nc"
    codes = _raw(trained.store, A)[cv.SM].sel({cv.TIME: slice(*DAYS)}).values
    with netCDF4.Dataset(year) as nc:
        nc.set_auto_maskandscale(False)
        sm = nc.variables["sm"]
        assert sm.dimensions == ("time", "depth", "lat", "lon") and sm.dtype == np.int16
        assert sm._FillValue == -999 and sm.scale_factor == 0.001 and sm.units == "m3 m-3"
        assert sm.standard_name == "volume_fraction_of_condensed_water_in_soil" and sm.long_name
        assert sm.grid_mapping == "crs" and nc.variables["crs"].grid_mapping_name == "latitude_longitude"
        assert nc.variables["depth"].bounds == "depth_bnds" and nc.variables["lat"].bounds == "lat_bnds"
        assert np.array_equal(nc.variables["depth_bnds"][:], np.array(cv.DEPTH_BOUNDS_CM))
        assert np.array_equal(sm[:], codes)  # the product's codes, bit for bit
        assert nc.model_run == RUN and nc.Conventions.startswith("CF-")
    day = xr.open_dataset(urls[2], engine="netcdf4")  # xarray, CF-decoded
    # cf-xarray finds the axes, coordinates, bounds, standard names and grid mapping from the attributes alone
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    assert {k: v for k, v in day.cf.axes.items()} == {"X": ["lon"], "Y": ["lat"], "Z": ["depth"], "T": ["time"]}
    assert day.cf.coordinates["longitude"] == ["lon"] and day.cf.coordinates["latitude"] == ["lat"]
    assert day.cf.bounds["lat"] == ["lat_bnds"] and day.cf.bounds["depth"] == ["depth_bnds"]
    assert day.cf.standard_names["volume_fraction_of_condensed_water_in_soil"] == ["sm"]
    assert day.cf["volume_fraction_of_condensed_water_in_soil"].name == "sm" and list(day.cf.grid_mapping_names) == ["latitude_longitude"]
    assert pd.Timestamp(day[cv.TIME].values[0]) == pd.Timestamp("2020-03-03") and day[cv.SM].dtype.kind == "f"
    want = np.where(codes[2] == -999, np.nan, codes[2] * 0.001)
    np.testing.assert_allclose(day[cv.SM].values[0], want, rtol=1e-6, equal_nan=True)
    day.close()
    with pytest.raises(InputError, match=r"does not hold days 2020-03-07\.\.2020-03-08 completely; run `smci predict`"):
        export_netcdf(trained.store, start="2020-03-06", end="2020-03-08", relpath=A, out_relpath="exports/a", echo=_quiet)


# ---------------------------------------------------------------- models reach a worker once per run
def test_tasks_carry_no_model_and_a_worker_loads_each_depth_once(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    import smci_dask.models.store as model_store
    from smci_dask.inference import PredictTask, TaskContext, run_task
    from smci_dask.products.smci1km import create_product

    cards = {d: load_card(trained.store, RUN, "final", d) for d in cv.DEPTHS_CM}
    ctx = TaskContext(
        trained.store,
        "product/once",
        trained.grid,
        RUN,
        "final",
        {d: model_checksum(c) for d, c in cards.items()},
        pd.Timestamp("2019-01-01"),
    )
    create_product(trained.store, "product/once", trained.grid, pd.date_range("2019-01-01", "2020-12-31"), tile_size=32, attrs={})
    tasks = [PredictTask(0, tile, pd.date_range("2020-05-01", "2020-05-02")) for tile in trained.grid.tiles(32)[:2]]
    model_bytes = sum(m["bytes"] for c in cards.values() for m in c["members"].values())
    assert all(len(pickle.dumps((ctx, t))) < min(20_000, model_bytes / 10) for t in tasks)  # what a task ships: names and checksums
    loads: list[int] = []
    real = model_store.load_model
    monkeypatch.setattr(model_store, "_LOADED", {})  # a fresh worker
    monkeypatch.setattr(model_store, "load_model", lambda *a, **k: loads.append(a[3]) or real(*a, **k))
    results = [run_task(ctx, t) for t in tasks]
    assert all(r.land_cells > 0 for r in results)
    assert sorted(loads) == sorted(cv.DEPTHS_CM)  # each depth's files read once for both tasks


# ---------------------------------------------------------------- 9 km: the mean of the 1 km product
def test_9km_product_is_the_land_mean_of_the_1km_product_over_era5_cells(trained: Trained, product_a: Any) -> None:
    from smci_dask.products.smci9km import aggregate_9km

    days = aggregate_9km(trained.store, trained.grid, relpath_1km=A, relpath="product/a9", echo=_quiet)
    assert list(days) == list(pd.date_range(*DAYS))
    coarse = _raw(trained.store, "product/a9")
    assert coarse[cv.SM].dtype == np.int16 and coarse[cv.SM].attrs["_FillValue"] == -999 and coarse.attrs["complete_days"] == [list(DAYS)]
    np.testing.assert_allclose(coarse[cv.LON].values, [115.0, 115.1, 115.2, 115.3, 115.4])  # ERA5-Land's centres
    fine = _raw(trained.store, A)[cv.SM].sel({cv.TIME: slice(*DAYS)}).values
    # each fine cell's ERA5-Land cell from its centre: nearest 0.1 degree centre, edge cells to the last one inside
    row = np.clip(np.rint((37.5 - trained.grid.lat) / 0.1), 0, 4).astype(int)
    col = np.clip(np.rint((trained.grid.lon - 115.0) / 0.1), 0, 4).astype(int)
    got = coarse[cv.SM].sel({cv.TIME: slice(*DAYS)}).values
    for i in range(5):
        for j in range(5):
            block = fine[:, :, row == i][:, :, :, col == j].reshape(fine.shape[0], fine.shape[1], -1)
            valid = block != -999
            with np.errstate(invalid="ignore"):
                mean = np.where(valid, block, 0).sum(axis=2) / valid.sum(axis=2)  # in codes of 0.001 m3/m3
            want = np.where(valid.any(axis=2), np.rint(mean), -999)
            assert np.array_equal(got[:, :, i, j], want), (i, j)
    assert (got == -999).any() and (got != -999).any()  # the lake's coarse cells are fill, the rest mean values
    # exported as the 1 km product is, under its own name
    from smci_dask.products.export import export_netcdf

    (year,) = export_netcdf(
        trained.store, start=DAYS[0], end=DAYS[1], period="year", relpath="product/a9", out_relpath="exports/a9", echo=_quiet, label="9km"
    )
    assert Path(year).name == "SMCI_9km_2020.nc"
    exported = xr.open_dataset(year, engine="netcdf4", mask_and_scale=False)
    assert np.array_equal(exported[cv.SM].values, got) and exported[cv.SM].attrs["scale_factor"] == 0.001
    exported.close()


def test_demo_step_predicts_the_last_covered_days_with_figure_9km_and_truth_scores(trained: Trained, tmp_path: Path) -> None:
    import shutil

    from smci_dask.inference.recent import predict_recent

    store = trained.bare_copy(tmp_path / "demo")
    shutil.copytree(trained.root / "models", tmp_path / "demo" / "models")
    lines: list[str] = []
    out = predict_recent(trained.config(), store, n_days=5, truth_store=trained.world, echo=lines.append)
    assert out["predicted days"] == "2020-12-26..2020-12-30"  # the cube's last complete day is 2020-12-30
    assert out["9 km days (predicted)"] == 5 and out["map beats ERA5-Land (ubRMSE), depths"].endswith("/10")
    assert Path(out["product map figure"]).is_file() and store.exists(f"reports/{RUN}/map_vs_truth.csv")
    assert sum("cm  ours ubRMSE" in line for line in lines) == 10
    assert store.exists(f"reports/{RUN}/smci_9km_methods.csv") and sum("cm  predicted " in line for line in lines) == 10
    # the partial-correlation maps of that product through the CLI (5 days: the fewest it takes)
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    env = {"SMCI__REGION__NAME": "tiny"}
    res = CliRunner().invoke(cli, ["diagnose", "partial-corr", "--depth", "40", "--period", "day", "--store", store.url], env=env)
    assert res.exit_code == 0, res.output
    assert "over 5 day period(s), 2020-12-26..2020-12-30" in res.output and "ERA5-Land (layer 3)" in res.output
    assert store.exists("reports/diagnostics/partial_corr_40cm_day.nc") and store.exists("reports/diagnostics/partial_corr_40cm_day.png")
    res = CliRunner().invoke(cli, ["diagnose", "partial-corr", "--store", store.url], env=env)  # years: not one whole year
    assert res.exit_code != 0 and "use a shorter period" in res.output


# ---------------------------------------------------------------- per-cell uncertainty (inference.uncertainty)
def test_uncertainty_writes_the_spread_of_the_trees_beside_an_unchanged_sm(trained: Trained, product_a: Any) -> None:
    """sm_spread at station cell-days equals the ensemble's spread of the training row's features; sm is the plain product's."""
    from smci_dask.products.export import export_netcdf

    u = "product/u"
    cfg = trained.config(uncertainty=True)
    days = (DAYS[0], "2020-03-02")
    report = predict_product(cfg, trained.store, start=days[0], end=days[1], echo=_quiet, relpath=u)
    assert report.tasks_run == 4  # four tiles, one time block
    raw = _raw(trained.store, u)
    spread, sm = raw[cv.SM_SPREAD], raw[cv.SM]
    assert spread.dtype == np.int16 and spread.encoding["chunks"] == (1, 10, 32, 32)
    assert spread.attrs["units"] == "m3 m-3" and spread.attrs["scale_factor"] == 0.001 and spread.attrs["_FillValue"] == -999
    assert "standard deviation" in spread.attrs["comment"] and sm.attrs["ancillary_variables"] == cv.SM_SPREAD

    # sm unchanged by asking for the spread; the spread where sm has values, and only there
    def box(da: xr.DataArray) -> np.ndarray:
        return da.sel({cv.TIME: slice(*days)}).values

    assert np.array_equal(box(sm), box(_raw(trained.store, A)[cv.SM]))
    codes = box(spread)
    land = box(sm) != cv.PRODUCT_FILL
    assert np.array_equal(codes != cv.PRODUCT_FILL, land) and land.any()
    assert codes[land].max() > 0 and codes[land].max() < 100  # m3/m3 spreads of tens of 0.001 at most
    # independent path: the training table's feature rows (station cell-days) -> predict_spread -> codes
    _check_codes_at_training_rows(trained, spread, days, "predict_spread")
    # the setting is fixed when the product is created: a mismatch names the fix
    with pytest.raises(InputError, match=r"created with sm_spread .*set inference.uncertainty back to true"):
        predict_product(trained.config(), trained.store, start=days[0], end=days[1], echo=_quiet, relpath=u)
    with pytest.raises(InputError, match=r"created without sm_spread"):
        predict_product(cfg, trained.store, start=DAYS[0], end=DAYS[1], echo=_quiet, relpath=A)
    # ... and the refresh follows the product
    again = predict_product(trained.config(), trained.store, start=days[0], end=days[1], echo=_quiet, relpath=u, follow_product=True)
    assert again.tasks_run == 0
    # the NetCDF export carries it with the same codes
    (year,) = export_netcdf(trained.store, start=days[0], end=days[1], period="year", relpath=u, out_relpath="exports/u", echo=_quiet)
    exported = xr.open_dataset(year, engine="netcdf4", mask_and_scale=False)
    assert np.array_equal(exported[cv.SM_SPREAD].values, codes)
    assert exported[cv.SM_SPREAD].attrs["units"] == "m3 m-3"
    exported.close()


# ---------------------------------------------------------------- partial correlation maps (Fig. 10)
def test_partial_correlation_maps_of_the_product_and_era5land_equal_residual_regression_at_a_cell(trained: Trained, product_a: Any) -> None:
    from smci_dask.covariates.era5land_store import open_era5land_daily
    from smci_dask.products.partial_corr import partial_correlation_maps, render_partial_correlation

    with pytest.raises(InputError, match=r"0 whole period\(s\) of YS .* use a shorter period"):
        partial_correlation_maps(trained.store, trained.grid, depth_cm=10, layer=2, freq="YS", product_relpath=A)
    maps = partial_correlation_maps(trained.store, trained.grid, depth_cm=10, layer=2, freq=None, product_relpath=A)  # the 6 days
    assert maps.attrs["periods"] == 6 and maps["smci_tp"].shape == trained.grid.shape
    era5 = open_era5land_daily(trained.store, "covariates/era5land").sel({cv.TIME: slice(*DAYS)}).load()
    sm = open_zarr(trained.store, A)[cv.SM].sel({cv.TIME: slice(*DAYS), cv.DEPTH: 10}).load()

    def by_hand(y: np.ndarray, drivers: dict[str, np.ndarray], name: str) -> float:
        A_ = np.column_stack([np.ones_like(y), *[v for k, v in drivers.items() if k != name]])
        ry = y - A_ @ np.linalg.lstsq(A_, y, rcond=None)[0]
        rx = drivers[name] - A_ @ np.linalg.lstsq(A_, drivers[name], rcond=None)[0]
        return float(np.corrcoef(ry, rx)[0, 1])

    land = np.argwhere(np.isfinite(sm.values).all(axis=0))
    got, want = [], []
    for r, c in land[:: max(1, len(land) // 5)][:5]:
        cr, cc = trained.grid.fine_to_coarse_rows()[r], trained.grid.fine_to_coarse_cols()[c]
        drivers = {v: np.asarray(era5[v].values[:, cr, cc], dtype=np.float64) for v in ("tp", "t2m", "ssrd")}
        if not all(np.isfinite(d).all() for d in drivers.values()):
            continue  # a coast cell read through its nearest coarse cell: not this check's business
        era_sm = np.asarray(era5["swvl2"].values[:, cr, cc], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # a dry week: constant (zero) precipitation -> NaN both ways
            for v in drivers:
                got += [maps[f"smci_{v}"].values[r, c], maps[f"era5land_{v}"].values[cr, cc]]
                want += [by_hand(sm.values[:, r, c], drivers, v), by_hand(era_sm, drivers, v)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8, equal_nan=True)
    assert np.isfinite(want).sum() >= 12  # temperature and radiation are never constant
    assert np.isnan(maps["smci_tp"].values[~np.isfinite(sm.values).all(axis=0)]).all()  # water stays blank
    png = render_partial_correlation(maps)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
