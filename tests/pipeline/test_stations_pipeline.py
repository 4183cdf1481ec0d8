"""Station ingest and target matching, wired end to end on the tiny world (local folders and S3)."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from smci_dask.config import Config, InsituConfig, RegionConfig, StoreConfig
from smci_dask.covariates import daily_from_hourly, open_era5land_hourly, subset_to_grid, write_era5land_daily
from smci_dask.errors import InputError
from smci_dask.grid import grid_for
from smci_dask.insitu.daily import CELL_COLUMNS, load_cell_daily
from smci_dask.insitu.qc import ALL_CHECKS
from smci_dask.io import Store, read_parquet
from smci_dask.pipeline.stations import (
    MATCHING_STATS_RELPATH,
    OBSERVATIONS_RELPATH,
    QC_FIGURE_RELPATH,
    QC_REPORT_RELPATH,
    STATIONS_RELPATH,
    _run_qc,
    ingest_stations,
    match_targets,
    qc_with_saturation,
)

GRID = grid_for("tiny")
CSV_COLUMNS = ("station", "lat", "lon", "depth_from_cm", "depth_to_cm", "time", "sm", "soil_temperature", "precipitation")


@dataclass(frozen=True)
class Inputs:
    ismn: Path  # an ISMN tree holding only the chosen stations
    csv: Path  # the world's CSV rows of the same stations
    stations: list[str]
    pair: list[str]  # two stations sharing a 1 km cell
    era5_files: list[str]
    world: Store
    manifest: dict[str, Any]


def _subset_csv(source: str, target: Path, stations: list[str]) -> None:
    """The rows of ``stations``, as text exactly as the world wrote them."""
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in CSV_COLUMNS})
    table = pacsv.read_csv(source, convert_options=convert)
    table = table.filter(pc.is_in(table["station"], value_set=pa.array(stations)))
    pacsv.write_csv(table, target, write_options=pacsv.WriteOptions(quoting_style="none"))


@pytest.fixture(scope="module")
def inputs(tiny_world: tuple[Store, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    store, manifest = tiny_world
    table = pd.read_csv(store.join(manifest["files"]["station_table"]))
    shared = table[table.duplicated(["row", "col"], keep=False)].sort_values(["row", "col", "station"])
    first = shared.iloc[0]
    pair = sorted(shared.loc[(shared["row"] == first["row"]) & (shared["col"] == first["col"]), "station"])[:2]
    other = sorted(set(table["station"]) - set(shared["station"]))[0]
    chosen = sorted([*pair, other])
    root = tmp_path_factory.mktemp("station-inputs")
    for name in chosen:
        shutil.copytree(store.join("stations/ismn/SYNTH", name), root / "ismn" / "SYNTH" / name)
    _subset_csv(store.join(manifest["files"]["station_csv"]), root / "stations.csv", chosen)
    era5 = [store.join(p) for p in manifest["files"]["era5land"][:2]]  # January and February 2019
    return Inputs(root / "ismn", root / "stations.csv", chosen, pair, era5, store, manifest)


def _config(root: str, storage_options: dict[str, Any] | None = None) -> Config:
    return Config(region=RegionConfig(name="tiny"), store=StoreConfig(root=root, storage_options=storage_options or {}))


def _range_qc(hourly: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for the Dorigo checks: soil moisture in [0, 0.6] m3/m3 (C01, C02)."""
    sm = (hourly["variable"] == "sm").to_numpy()
    v = hourly["value"].to_numpy()
    good = ~sm | ((v >= 0.0) & (v <= 0.6))
    return hourly.assign(qc_good=good, qc_flags=np.where(good, "", "C0x"))


def _range_qc_with_stations(hourly: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """The same checks, returning only the soil-moisture rows it checked (index kept), as ``insitu.qc.apply_qc`` does."""
    assert {"station_id", "lat", "lon", "row", "col"} <= set(stations.columns)
    return _range_qc(hourly).loc[(hourly["variable"] == "sm").to_numpy()]


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({"station_ids": str}).reset_index(drop=True)


# ------------------------------------------------------------------ local
def test_ismn_folder_and_csv_give_the_same_daily_table(inputs: Inputs, tmp_path: Path) -> None:
    said: list[str] = []
    cfg_a, cfg_b = _config(str(tmp_path / "a")), _config(str(tmp_path / "b"))
    rep_a = ingest_stations(cfg_a, inputs.ismn, fmt="ismn", qc=_range_qc, progress=said.append)
    rep_b = ingest_stations(cfg_b, str(inputs.csv), fmt="csv", qc=_range_qc_with_stations, read_options={"network": "SYNTH"})
    store_a, store_b = Store.from_url(cfg_a.store.root), Store.from_url(cfg_b.store.root)
    a, b = load_cell_daily(store_a), load_cell_daily(store_b)
    assert tuple(a.columns) == CELL_COLUMNS and len(a) > 1000
    pd.testing.assert_frame_equal(_comparable(a), _comparable(b))
    assert a["depth_cm"].dtype == np.int16 and set(a["depth_cm"]) <= {10, 20, 30, 40, 50, 60, 70, 80, 90, 100}

    for rep in (rep_a, rep_b):
        assert rep.stations == 3 and rep.stations_outside == []
        assert rep.cells == 2 and rep.cells_several_stations == 1
        assert rep.qc_applied and 0 < rep.rows_kept < rep.hourly_rows
    for field in ("sensors", "hourly_rows", "rows_kept", "daily_rows", "days_short", "gap_filled_days", "cell_days"):
        assert getattr(rep_a, field) == getattr(rep_b, field), field
    assert rep_a.hourly_rows_all > rep_b.hourly_rows_all  # ISMN also has air temperature; the CSV does not
    assert rep_a.gap_filled_days > 0 and rep_a.cell_days == len(a)
    assert any("reading ismn" in line for line in said) and "cells:" in rep_a.summary()
    # the shared cell averages the pair
    shared = a[a["n_stations"] == 2]
    assert len(shared) > 100 and set(shared["station_ids"].astype(str)) == {",".join(f"SYNTH/{s}" for s in inputs.pair)}

    # hourly observations with the QC columns, and the station table with its cells
    obs = read_parquet(store_a, OBSERVATIONS_RELPATH, filters=[("variable", "==", "sm")])
    assert len(obs) == rep_a.hourly_rows and {"qc_good", "qc_flags"} <= set(obs.columns)
    assert int(obs["qc_good"].sum()) == rep_a.rows_kept
    # QC that returns only the rows it checked: its columns are NA on the others
    obs_b = read_parquet(store_b, OBSERVATIONS_RELPATH)
    assert obs_b.loc[(obs_b["variable"] == "sm").to_numpy(), "qc_good"].notna().all()
    assert obs_b.loc[(obs_b["variable"] != "sm").to_numpy(), "qc_good"].isna().all()
    assert int(obs_b["qc_good"].sum()) == rep_b.rows_kept
    st = read_parquet(store_a, STATIONS_RELPATH).set_index("station")
    table = pd.read_csv(inputs.world.join(inputs.manifest["files"]["station_table"])).set_index("station").loc[inputs.stations]
    assert st.loc[inputs.stations, "row"].tolist() == table["row"].tolist()
    assert st.loc[inputs.stations, "col"].tolist() == table["col"].tolist()
    assert st["in_region"].all()


def test_match_targets_adds_matched_values_with_era5_statistics(inputs: Inputs, tmp_path: Path) -> None:
    cfg = _config(str(tmp_path / "store"))
    store = Store.from_url(cfg.store.root)
    with open_era5land_hourly(inputs.era5_files) as hourly:
        daily, _ = daily_from_hourly(subset_to_grid(hourly[["swvl2", "swvl3"]], GRID))
        write_era5land_daily(daily, store, "covariates/era5land")
    ingest_stations(cfg, str(inputs.csv), fmt="csv", read_options={"network": "SYNTH"})
    rep = match_targets(cfg)
    out = load_cell_daily(store)
    assert rep.series == out[["row", "col", "depth_cm"]].drop_duplicates().shape[0]
    assert rep.series_matched == rep.series and rep.rows_matched == rep.rows == len(out)
    assert rep.era5_first_day == "2019-01-01" and rep.era5_last_day == "2019-02-28"  # soil moisture only: no accumulation waits for March
    assert out["sm_matched"].notna().all() and "sm_raw" in out.columns
    stats = read_parquet(store, MATCHING_STATS_RELPATH)
    assert stats["valid"].all() and (stats["n_days"] >= 30).all() and (stats["n_days"] <= 59).all()
    # over the ERA5-Land days, each matched series has ERA5-Land's mean and std (ddof=0)
    era5_days = out["time"] <= pd.Timestamp(rep.era5_last_day)
    for _, s in stats.iterrows():
        sel = era5_days & (out["row"] == s["row"]) & (out["col"] == s["col"]) & (out["depth_cm"] == s["depth_cm"])
        assert sel.sum() == s["n_days"]
        assert np.mean(out.loc[sel, "sm_matched"]) == pytest.approx(s["mean_era5"], abs=1e-9)
        assert np.std(out.loc[sel, "sm_matched"]) == pytest.approx(s["std_era5"], abs=1e-9)
    # ingesting again replaces the tables: matched targets and their statistics are gone, QC columns come
    rep2 = ingest_stations(cfg, str(inputs.csv), fmt="csv", read_options={"network": "SYNTH"}, qc=_range_qc)
    assert "sm_matched" not in load_cell_daily(store).columns and not store.exists(MATCHING_STATS_RELPATH)
    assert "qc_good" in read_parquet(store, OBSERVATIONS_RELPATH).columns and rep2.qc_applied


def test_bad_inputs_and_stations_outside_the_region(inputs: Inputs, tmp_path: Path) -> None:
    cfg = _config(str(tmp_path / "store"))
    with pytest.raises(InputError, match="format"):
        ingest_stations(cfg, str(inputs.csv), fmt="netcdf")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="parquet"):
        ingest_stations(cfg, str(inputs.csv), fmt="parquet")
    with pytest.raises(InputError, match="qc_good"):
        ingest_stations(cfg, str(inputs.csv), fmt="csv", qc=lambda h: h)
    with pytest.raises(InputError, match="index"):
        ingest_stations(cfg, str(inputs.csv), fmt="csv", qc=lambda h: _range_qc(h).iloc[:10].set_axis(np.arange(10) - 10))
    hours = pd.date_range("2019-07-01", periods=48, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [("IN", 37.2, 115.2), ("OUT", 40.0, 115.2)]
    frame = pd.DataFrame(
        [(s, la, lo, 0, 10, t, 0.25) for s, la, lo in rows for t in hours],
        columns=["station", "lat", "lon", "depth_from_cm", "depth_to_cm", "time", "sm"],
    )
    path = tmp_path / "two.csv"
    frame.to_csv(path, index=False)
    rep = ingest_stations(cfg, str(path), fmt="csv")
    assert rep.stations == 2 and rep.stations_outside == ["two/OUT"]
    assert rep.cells == 1 and rep.cell_days == 2 and rep.daily_rows == 4
    assert any("outside the region" in i for i in rep.issues)
    st = read_parquet(Store.from_url(cfg.store.root), STATIONS_RELPATH).set_index("station")
    assert st.loc["OUT", "row"] == -1 and not st.loc["OUT", "in_region"]


# ------------------------------------------------------------------ S3
def test_ismn_and_csv_on_s3_give_the_same_daily_table(inputs: Inputs, s3_store: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    url, opts = s3_store
    remote = Store.from_url(url, opts)
    for name in inputs.pair:  # two stations keep it fast
        local = inputs.ismn / "SYNTH" / name
        for f in sorted(local.iterdir()):
            remote.put_file(f, f"inputs/ismn/SYNTH/{name}/{f.name}")
    pair_csv = tmp_path / "pair.csv"
    _subset_csv(str(inputs.csv), pair_csv, inputs.pair)
    remote.put_file(pair_csv, "inputs/pair.csv")

    cfg_a, cfg_b = _config(f"{url}/a", opts), _config(f"{url}/b", opts)
    rep_a = ingest_stations(cfg_a, f"{url}/inputs/ismn", fmt="ismn", read_options={"variables": ("sm",)})
    rep_b = ingest_stations(cfg_b, f"{url}/inputs/pair.csv", fmt="csv", read_options={"network": "SYNTH"})
    a = load_cell_daily(Store.from_url(cfg_a.store.root, opts))
    b = load_cell_daily(Store.from_url(cfg_b.store.root, opts))
    pd.testing.assert_frame_equal(_comparable(a), _comparable(b))
    assert rep_a.stations == rep_b.stations == 2 and rep_a.cells == 1 and rep_a.cells_several_stations == 1
    assert rep_a.hourly_rows == rep_b.hourly_rows and rep_a.gap_filled_days == rep_b.gap_filled_days
    assert (a["n_stations"] <= 2).all() and (a["n_stations"] == 2).any()
    # the same as the local ingest of the same files
    local_cfg = _config(str(tmp_path / "local"))
    local_ismn = tmp_path / "ismn"
    for name in inputs.pair:
        shutil.copytree(inputs.ismn / "SYNTH" / name, local_ismn / "SYNTH" / name)
    ingest_stations(local_cfg, local_ismn, fmt="ismn", read_options={"variables": ("sm",)})
    pd.testing.assert_frame_equal(_comparable(load_cell_daily(Store.from_url(local_cfg.store.root))), _comparable(a))


# ------------------------------------------------------------------ per-station tasks, QC report, rules from the config
def _store_tables(root: str) -> dict[str, pd.DataFrame]:
    store = Store.from_url(root)
    obs = read_parquet(store, OBSERVATIONS_RELPATH)
    obs = obs.sort_values(["station_id", "variable", "depth_from_m", "sensor", "time"], kind="stable").reset_index(drop=True)
    return {
        "observations": obs.astype({c: str for c in obs.columns if isinstance(obs[c].dtype, pd.CategoricalDtype)}),
        "daily": _comparable(load_cell_daily(store)),
        "report": pd.read_csv(store.join(QC_REPORT_RELPATH)),
    }


@pytest.fixture(scope="module")
def pair_csv(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The CSV rows of the two stations that share a cell (two stations keep the runs below fast)."""
    path = tmp_path_factory.mktemp("pair") / "pair.csv"
    _subset_csv(str(inputs.csv), path, inputs.pair)
    return str(path)


def _ingest_pair(cfg: Config, pair_csv: str, **kwargs: Any) -> Any:
    return ingest_stations(cfg, pair_csv, fmt="csv", read_options={"network": "SYNTH"}, qc=qc_with_saturation, **kwargs)


@pytest.fixture(scope="module")
def sequential(pair_csv: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    """The pair with the Dorigo checks, station tasks one after another in this process."""
    root = str(tmp_path_factory.mktemp("sequential"))
    return root, _ingest_pair(_config(root), pair_csv, scheduler="sync")


def test_station_tasks_in_parallel_equal_the_sequential_run(pair_csv: str, sequential: tuple[str, Any], tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    root_seq, rep_seq = sequential
    said: list[str] = []
    # threads named explicitly: the default local scheduler is whatever dask's global config holds at this point of the session
    rep_threads = _ingest_pair(_config(str(tmp_path / "threads")), pair_csv, progress=said.append, scheduler="threads")
    assert "threads" in rep_threads.scheduler and any("stations done: 2 of 2" in line for line in said)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
        rep_client = _ingest_pair(_config(str(tmp_path / "client")), pair_csv)
    assert "client" in rep_client.scheduler and "sync" in rep_seq.scheduler
    expected = _store_tables(root_seq)
    assert len(expected["observations"]) == rep_seq.hourly_rows_all and rep_seq.qc_applied
    for root in (tmp_path / "threads", tmp_path / "client"):
        got = _store_tables(str(root))
        for name, table in expected.items():
            pd.testing.assert_frame_equal(got[name], table, obj=f"{root.name} {name}")
    for rep in (rep_threads, rep_client):
        for f in ("hourly_rows", "rows_kept", "daily_rows", "days_short", "gap_filled_days", "cell_days"):
            assert getattr(rep, f) == getattr(rep_seq, f), f


def test_qc_report_counts_equal_a_count_of_the_stored_observations(sequential: tuple[str, Any]) -> None:
    root, rep = sequential
    store = Store.from_url(root)
    report = pd.read_csv(store.join(QC_REPORT_RELPATH))
    obs = read_parquet(store, OBSERVATIONS_RELPATH, filters=[("variable", "==", "sm")])
    # independent count: one (station, depth, sensor) at a time, codes by substring of the stored text
    keys = ["station_id", "depth_from_m", "depth_to_m", "sensor"]
    rows = []
    obs["sensor"] = obs["sensor"].astype(object).fillna("").astype(str)  # the CSV has no sensor: NaN, a group of its own
    for key, g in obs.groupby(keys, observed=True):
        flags = g["qc_flags"].astype(str)
        counts = {code: int(flags.str.contains(code, regex=False).sum()) for code in ALL_CHECKS}
        rows.append(
            {**dict(zip(keys, key, strict=True)), "n_readings": int(g["value"].notna().sum()), "n_kept": int(g["qc_good"].sum()), **counts}
        )
    mine = pd.DataFrame(rows).astype({"station_id": str})
    got = report[mine.columns].astype({"station_id": str}).assign(sensor=report["sensor"].astype(object).fillna("").astype(str))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), mine.reset_index(drop=True), check_dtype=False)
    assert len(report) == rep.sensors and int(report["n_kept"].sum()) == rep.rows_kept
    np.testing.assert_allclose(report["share_kept"], report["n_kept"] / report["n_readings"])
    assert set(report["depth_cm"]) <= set(range(10, 101, 10)) and report[list(ALL_CHECKS)].to_numpy().sum() > 0
    # the figure: a PNG that matplotlib reads back, wider than tall
    from matplotlib.image import imread

    png = store.read_bytes(QC_FIGURE_RELPATH)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(io.BytesIO(png))
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 100


def test_daily_rules_come_from_the_config(pair_csv: str, sequential: tuple[str, Any], tmp_path: Path) -> None:
    root_seq, rep_seq = sequential
    insitu = InsituConfig(min_hours=20, fill_max_distance_days=2, max_gap_days=6, bad_flags=["C01", "C02"], utc_offset_hours={"SYNTH": 8})
    cfg = Config(region=RegionConfig(name="tiny"), store=StoreConfig(root=str(tmp_path / "store")), insitu=insitu)
    rep = _ingest_pair(cfg, pair_csv, scheduler="sync")
    store = Store.from_url(cfg.store.root)
    obs = read_parquet(store, OBSERVATIONS_RELPATH, filters=[("variable", "==", "sm")])
    # kept: finite readings without C01 / C02, counted from the stored flag text
    flags = obs["qc_flags"].astype(str)
    only_range = obs["value"].notna() & ~flags.str.contains("C01") & ~flags.str.contains("C02")
    assert rep.rows_kept == int(only_range.sum()) > rep_seq.rows_kept
    assert (obs["qc_good"] == only_range).all()
    # days: local days of UTC+8 with at least 20 good hours, counted by hand
    local = obs.loc[only_range.to_numpy()].assign(day=lambda d: (d["time"] + pd.Timedelta(hours=8)).dt.floor("D"))
    hours = local.groupby(["station_id", "depth_from_m", "sensor", "day"], observed=True)["time"].nunique()
    assert rep.daily_rows == int((hours >= 20).sum())
    # gaps: only days within 2 days of a kept day (the first and last 2 of a gap), in gaps of at most 6 days
    expected_filled = 0
    for _, g in (hours[hours >= 20]).reset_index().groupby(["station_id", "depth_from_m", "sensor"], observed=True):
        gap = np.diff(np.sort(g["day"].to_numpy()).astype("datetime64[D]").astype(np.int64)) - 1
        expected_filled += int(sum(min(int(n), 4) for n in gap if 1 <= n <= 6))
    assert rep.gap_filled_days == expected_filled


def test_rule_overrides_and_unknown_rules(pair_csv: str, tmp_path: Path) -> None:
    cfg = _config(str(tmp_path / "store"))
    rep = ingest_stations(cfg, pair_csv, fmt="csv", scheduler="sync", max_gap_days=0)
    assert rep.gap_filled_days == 0 and not rep.qc_applied
    with pytest.raises(TypeError, match="unknown rules"):
        ingest_stations(cfg, pair_csv, fmt="csv", min_hour=3)


def test_era5land_at_the_station_cell_drives_d03_and_d05(tiny_stores):
    """Stations without in-situ soil temperature get ERA5-Land's at their cell and sensor depth for D03 (and tp for D05);
    stations with it keep D01 alone (gridded='fallback')."""
    from smci_dask.covariates import open_era5land_daily
    from smci_dask.insitu.readers_ismn import read_ismn
    from smci_dask.pipeline.stations import (
        DailyRules,
        _station_table,
        era5_at_stations,
        hourly_ancillary,
        process_station,
        qc_with_saturation,
    )

    store, info = tiny_stores
    grid, cfg = info["grid"], info["config"]
    assert cfg.insitu.gridded_ancillary  # the default
    data = read_ismn(info["world"].join("stations/ismn/SYNTH/SYN0003"))
    stations = _station_table(data.stations, grid)
    gridded = era5_at_stations(store, grid, stations)
    sid = str(stations["station_id"].iloc[0])
    daily = gridded[sid]

    # independent: the cube at the coarse cell nearest the station (an inland station: no coast substitution)
    cube = open_era5land_daily(store, "covariates/era5land")
    lat, lon = float(stations["lat"].iloc[0]), float(stations["lon"].iloc[0])
    layers = ["stl1", "stl2", "stl3", "stl4"]
    ref = cube[[*layers, "tp"]].sel(lat=lat, lon=lon, method="nearest").load()
    for v in layers:
        np.testing.assert_allclose(daily[v], ref[v].values)
    hours = hourly_ancillary(daily, sid)
    assert len(hours) == 24 * len(daily) * len(layers)
    rain = hours.dropna(subset=["grid_precipitation"])
    np.testing.assert_allclose(rain.groupby(rain["time"].dt.floor("D"))["grid_precipitation"].sum().to_numpy(), ref["tp"].values)

    rules = DailyRules.from_config(cfg.insitu)
    bare = data.observations[~data.observations["variable"].isin(["ts", "ta", "p"])]  # a station without in-situ ancillary
    with_grid = process_station(bare, stations, qc_with_saturation, rules, daily).hourly
    without = process_station(bare, stations, qc_with_saturation, rules, None).hourly
    sm = with_grid[with_grid["variable"] == "sm"]
    # D03 exactly where ERA5-Land's soil temperature at the sensor's depth (linear between the layer centres
    # 3.5, 17.5, 64, 194.5 cm) is below freezing that day
    centres = np.array([3.5, 17.5, 64.0, 194.5]) / 100
    day = pd.DatetimeIndex(ref["time"].values).get_indexer(sm["time"].dt.floor("D"))
    profile = np.stack([ref[v].values for v in layers], axis=1)[day] - 273.15  # (rows, layers)
    mid = ((sm["depth_from_m"] + sm["depth_to_m"]) / 2).to_numpy()
    at_sensor = np.array([np.interp(z, centres, t) for z, t in zip(mid, profile, strict=True)])
    at_sensor[day < 0] = np.nan  # days the cube does not hold (its last, incomplete day): no gridded value, no D03
    assert (day < 0).any() and (day >= 0).mean() > 0.99
    expected = (at_sensor < 0) & sm["value"].notna().to_numpy()
    assert 0 < expected.sum() < len(sm)
    np.testing.assert_array_equal(sm["D03"].fillna(False).astype(bool).to_numpy(), expected)
    np.testing.assert_allclose(sm["grid_soil_temperature"], at_sensor, atol=1e-4)
    assert not without.loc[without["variable"] == "sm", "D03"].fillna(False).astype(bool).any()
    # D05 (rise without gridded rain) can only appear with the gridded series
    assert not without.loc[without["variable"] == "sm", "D05"].fillna(False).astype(bool).any()
    # the station's own soil temperature rules where it has one: D01 there, never the gridded D03 beside it
    own = process_station(data.observations, stations, qc_with_saturation, rules, daily).hourly
    own_sm = own[own["variable"] == "sm"]
    assert own_sm["D01"].fillna(False).astype(bool).any() and not own_sm["D03"].fillna(False).astype(bool).any()


def test_qc_columns_of_the_checked_rows_are_placed_on_their_rows_and_na_elsewhere() -> None:
    # a hook that checks every other row, out of order, with a plain bool, a nullable bool holding NA and a text column
    hourly = pd.DataFrame({"value": np.arange(10.0)}, index=pd.RangeIndex(100, 110))
    checked = [108, 100, 104, 102, 106]

    def hook(h: pd.DataFrame) -> pd.DataFrame:
        out = h.loc[checked].copy()
        out["qc_good"] = [True, False, True, True, False]
        out["qc_maybe"] = pd.array([pd.NA, True, False, pd.NA, True], dtype="boolean")
        out["qc_flags"] = ["a", "b", "c", "d", "e"]
        return out

    got = _run_qc(hook, hourly, pd.DataFrame())
    # by hand: row label -> value, NA on the rows not checked
    good = {108: True, 100: False, 104: True, 102: True, 106: False}
    maybe = {100: True, 104: False, 106: True}
    flags = dict(zip(checked, "abcde", strict=True))
    assert list(got.index) == list(hourly.index) and got["value"].tolist() == hourly["value"].tolist()
    assert str(got["qc_good"].dtype) == "boolean" and str(got["qc_maybe"].dtype) == "boolean"
    for label in hourly.index:
        assert (got.at[label, "qc_good"] is pd.NA) if label not in good else got.at[label, "qc_good"] == good[label]
        assert (got.at[label, "qc_maybe"] is pd.NA) if label not in maybe else got.at[label, "qc_maybe"] == maybe[label]
        assert pd.isna(got.at[label, "qc_flags"]) if label not in flags else got.at[label, "qc_flags"] == flags[label]
