"""Synthetic stations: placement, hourly series with recorded faults, ISMN / CSV files parsed back by hand."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.grid import REGIONS
from smci_dask.io import Store, read_parquet
from smci_dask.synthetic import stations as synthetic_stations
from smci_dask.synthetic.statics import make_statics
from smci_dask.synthetic.station_files import format_fixed, ismn_header, write_faults, write_ismn, write_station_csv, write_station_table
from smci_dask.synthetic.stations import FAULT_TYPES, make_station_series, place_stations, sensor_error

GRID = REGIONS["tiny"].grid
SEED = 3
DAYS = pd.date_range("2019-01-01", periods=60, freq="D")
REAL_ISMN = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ismn" / "Data_seperate_files_header_20170810_20180809" / "COSMOS"
)


def fake_forcing(stations: pd.DataFrame, days: pd.DatetimeIndex, seed: int) -> tuple[np.ndarray, ...]:
    """Daily truth (days, 10, n) m3/m3 and hourly soil temperature, air temperature (deg C), precipitation (mm)."""
    rng = np.random.default_rng(seed)
    n, nd = len(stations), len(days)
    nh = 24 * nd
    t = np.arange(nd)[:, None, None]
    depth = np.asarray(cv.DEPTHS_CM)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(1, 1, n))
    level = rng.uniform(0.15, 0.32, size=(1, 1, n))
    truth = level + 0.06 * np.exp(-depth / 40.0) * np.sin(2 * np.pi * t / 25.0 + phase)
    h = np.arange(nh)[:, None]
    diurnal = np.sin(2 * np.pi * (h % 24 - 2) / 24.0)  # warmest 08 UTC (~15-16 local)
    soil_t = 2.5 + 4.0 * diurnal + rng.normal(0, 0.3, size=(nh, n)) + rng.uniform(-1, 1, size=(1, n))
    air_t = 1.0 + 7.0 * diurnal + rng.normal(0, 1.0, size=(nh, n))
    rain = np.where(rng.random((nh, n)) < 0.04, np.round(rng.exponential(1.5, size=(nh, n)), 2), 0.0)
    return truth, soil_t, air_t, rain


@pytest.fixture(scope="module")
def statics() -> xr.Dataset:
    return make_statics(GRID, SEED)


@pytest.fixture(scope="module")
def stations(statics: xr.Dataset) -> pd.DataFrame:
    return place_stations(GRID, statics, REGIONS["tiny"].n_stations, SEED)


@pytest.fixture(scope="module")
def forcing(stations: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return fake_forcing(stations, DAYS, SEED)


@pytest.fixture(scope="module")
def series(stations: pd.DataFrame, forcing: tuple[np.ndarray, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_station_series(stations, forcing[0], DAYS, *forcing[1:], SEED)


def keyed(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(station=df["station"].astype(str)).set_index(["station", "depth_cm", "time"])


# ------------------------------------------------------------------ placement
def test_place_stations(stations: pd.DataFrame, statics: xr.Dataset) -> None:
    n = REGIONS["tiny"].n_stations
    assert len(stations) == n
    assert list(stations["station"]) == [f"SYN{i:04d}" for i in range(1, n + 1)]
    assert (stations["network"] == "SYNTH").all()
    rows, cols = GRID.rowcol(stations["lat"], stations["lon"])
    np.testing.assert_array_equal(rows, stations["row"])
    np.testing.assert_array_equal(cols, stations["col"])
    assert statics["land"].values[rows, cols].all()
    clat, clon = GRID.latlon(rows, cols)
    assert (np.abs(stations["lat"] - clat) > 1e-5).all() and (np.abs(stations["lon"] - clon) > 1e-5).all()
    np.testing.assert_array_equal(stations["lat"], np.round(stations["lat"], 5))
    shared = stations.duplicated(["row", "col"], keep=False)
    assert 0.1 <= shared.mean() <= 0.3
    for depths, sensor in zip(stations["depths"], stations["sensor"], strict=True):
        assert set(depths) <= set(cv.DEPTHS_CM) and 10 in depths
        assert (sensor == "FDR-CMA") == (len(depths) == 10)
    np.testing.assert_allclose(stations["saturation"], np.round(statics["porosity"].values[rows, cols], 2))
    np.testing.assert_allclose(stations["elevation"], statics["elevation"].values[rows, cols], atol=15.0)
    pd.testing.assert_frame_equal(place_stations(GRID, statics, n, SEED), stations)


@pytest.mark.parametrize("region", ["tiny", "small"])
def test_denser_in_the_east(region: str) -> None:
    preset = REGIONS[region]
    statics = make_statics(preset.grid, SEED)
    st = place_stations(preset.grid, statics, preset.n_stations, SEED)
    land = statics["land"].values
    half = preset.grid.ncols // 2
    east = st["col"] >= half
    per_land_cell_east = east.sum() / land[:, half:].sum()
    per_land_cell_west = (~east).sum() / land[:, :half].sum()
    assert per_land_cell_east > 1.5 * per_land_cell_west
    assert east.sum() > 1.5 * (~east).sum()  # longitudes are stratified: ~73 % east of the middle


# ------------------------------------------------------------------ series and faults
def test_series_layout(series: tuple[pd.DataFrame, pd.DataFrame], stations: pd.DataFrame) -> None:
    obs, faults = series
    assert list(obs.columns) == ["station", "time", "depth_cm", "sm", "soil_temperature", "air_temperature", "precipitation"]
    assert list(faults.columns) == ["station", "depth_cm", "time", "fault", "sm_clean", "sm"]
    assert obs["sm"].notna().all()
    assert obs["time"].min() >= DAYS[0] and obs["time"].max() < DAYS[-1] + pd.Timedelta(days=1)
    assert (obs["time"].dt.minute == 0).all()
    keys = obs[["station", "depth_cm", "time"]].astype({"station": str})
    assert keys.equals(keys.sort_values(["station", "depth_cm", "time"]))
    n_sensors = int(stations["depths"].map(len).sum())
    n_gaps = int((faults["fault"] == "gap").sum())
    assert len(obs) + n_gaps == n_sensors * 24 * len(DAYS)
    assert set(faults["fault"].astype(str)) == set(FAULT_TYPES), "every fault type occurs"
    share = len(faults) / (len(obs) + n_gaps)
    assert 0.03 < share < 0.3
    assert not keyed(faults).index.duplicated().any(), "one fault per record"
    truth, *hourly = fake_forcing(stations, DAYS, SEED)
    again = make_station_series(stations, truth, DAYS, *hourly, SEED)
    pd.testing.assert_frame_equal(again[0], obs)
    pd.testing.assert_frame_equal(again[1], faults)


def test_fault_sizes(series: tuple[pd.DataFrame, pd.DataFrame], stations: pd.DataFrame) -> None:
    obs, faults = series
    f = faults.assign(station=faults["station"].astype(str), fault=faults["fault"].astype(str))
    eps = 1e-9

    def of(kind: str) -> pd.DataFrame:
        return f[f["fault"] == kind]

    assert of("negative")["sm"].between(-0.05 - eps, -0.01 + eps).all()
    assert (of("above_0.6")["sm"] > 0.6).all()
    jump = (of("spike")["sm"] - of("spike")["sm_clean"]).abs()
    assert jump.between(0.08 - eps, 0.25 + eps).all()
    shift = of("break")["sm"] - of("break")["sm_clean"]
    assert shift.abs().between(0.10 - eps, 0.20 + eps).all()
    sat = f["station"].map(stations.set_index("station")["saturation"])
    assert np.allclose(of("saturation_plateau")["sm"], sat[f["fault"] == "saturation_plateau"])
    low = of("low_plateau")
    assert (low["sm"] <= 0.05 + eps).all() and ((low["sm_clean"] - low["sm"]) > 0).all()
    frozen = of("frozen")
    assert (frozen["sm"] >= 0.3 * frozen["sm_clean"] - 5e-5).all() and (frozen["sm"] <= 0.6 * frozen["sm_clean"] + 5e-5).all()
    assert of("gap")["sm"].isna().all()

    # runs: plateaus last >= 12 h and are constant, breaks persist >= 3 days with one shift, spikes are single hours
    def runs(kind: str) -> list[pd.DataFrame]:
        g = of(kind).sort_values(["station", "depth_cm", "time"])
        step = g["time"].diff() != pd.Timedelta(hours=1)
        new = step | (g["station"] != g["station"].shift()) | (g["depth_cm"] != g["depth_cm"].shift())
        return [run for _, run in g.groupby(new.cumsum())]

    for kind in ("saturation_plateau", "low_plateau"):
        for run in runs(kind):
            assert len(run) >= 12 and run["sm"].nunique() == 1
    for run in runs("break"):
        assert len(run) >= 72 and np.ptp((run["sm"] - run["sm_clean"]).to_numpy()) < 1e-6
    assert all(len(run) == 1 for run in runs("spike"))
    assert max(len(run) for run in runs("gap")) <= 720

    # the table points at records whose values really are corrupted, and frozen ones at frozen soil
    o = keyed(obs)
    bad = keyed(f[f["fault"] != "gap"])
    np.testing.assert_array_equal(o.loc[bad.index, "sm"].to_numpy(), bad["sm"].to_numpy())
    assert (bad["sm"] != bad["sm_clean"]).mean() > 0.99
    assert (o.loc[keyed(frozen).index, "soil_temperature"] < 0).all()
    gaps = keyed(of("gap"))
    assert not o.index.isin(gaps.index).any()

    # clean records: inside (0, saturation), never below 0 or above 0.6, never on frozen soil
    clean = o[~o.index.isin(keyed(f).index)]
    sat_clean = clean.index.get_level_values("station").map(stations.set_index("station")["saturation"])
    assert (clean["sm"] >= 0).all() and (clean["sm"].to_numpy() <= sat_clean.to_numpy() + eps).all()
    assert (clean["soil_temperature"] >= 0).all()


def test_bias_and_noise(series: tuple[pd.DataFrame, pd.DataFrame], stations: pd.DataFrame, forcing: tuple[np.ndarray, ...]) -> None:
    obs, faults = series
    o = keyed(obs)
    clean = o[~o.index.isin(keyed(faults).index)].reset_index()
    truth = forcing[0]
    st_pos = {s: i for i, s in enumerate(stations["station"])}
    day = ((clean["time"] - DAYS[0]) // pd.Timedelta(days=1)).to_numpy()
    ref = truth[day, [cv.DEPTHS_CM.index(d) for d in clean["depth_cm"]], clean["station"].map(st_pos).to_numpy()]
    resid = clean.assign(r=clean["sm"].to_numpy() - ref).groupby(["station", "depth_cm"])["r"]
    assert resid.mean().abs().max() < 0.06  # bias U(-0.05, 0.05) plus a little interpolation
    assert resid.mean().std() > 0.015  # the biases differ between sensors
    assert resid.std().median() == pytest.approx(0.01, abs=0.004)


def test_sensor_error_is_a_slow_drift_plus_a_little_white_noise() -> None:
    """The error's variance and hour-to-hour differences against the AR(1) + white-noise formulas."""
    drift, noise = synthetic_stations.SENSOR_DRIFT_M3M3, synthetic_stations.SENSOR_NOISE_M3M3
    rho = np.exp(-1.0 / synthetic_stations.SENSOR_DRIFT_HOURS)
    e = sensor_error(np.random.default_rng(0), 400, 3000)
    assert e.shape == (400, 3000)
    assert e.std() == pytest.approx(np.hypot(drift, noise), rel=0.05)
    # var(e[t] - e[t-1]) = 2 drift^2 (1 - rho) + 2 noise^2: calm from hour to hour, as a probe's record
    assert np.diff(e, axis=1).std() == pytest.approx(np.sqrt(2 * drift**2 * (1 - rho) + 2 * noise**2), rel=0.03)
    assert np.diff(e, axis=1).std() < 0.25 * e.std()
    # stationary from the first hour: the first column has the same spread as the last
    assert e[:, 0].std() == pytest.approx(e[:, -1].std(), rel=0.2)


# ------------------------------------------------------------------ files
def test_format_fixed_matches_printf() -> None:
    rng = np.random.default_rng(0)
    values = np.r_[rng.uniform(-0.06, 0.9, 5000), rng.uniform(-40, 999, 5000), [0.0, -0.01, 12.34, -12.5, 0.6]]
    values = np.round(values, 4) + 0.0  # + 0.0: no -0.0
    for v in (values, values[:100]):  # the lookup path and the direct path
        text = [row.tobytes().decode() for row in format_fixed(v, 8, 4)]
        assert text == [f"{x:8.4f}" for x in v]


def test_header_layout_matches_real_files() -> None:
    for path in sorted(REAL_ISMN.glob("*/*_sm_*.stm")):
        line = path.read_bytes().split(b"\n", 1)[0].decode()
        net, _, station, lat, lon, elev, dfrom, dto, sensor = line.split()
        assert ismn_header(net, station, float(lat), float(lon), float(elev), float(dfrom), float(dto), sensor) == line


def test_ismn_files_parse_back(series: tuple[pd.DataFrame, pd.DataFrame], stations: pd.DataFrame, tmp_path: Path) -> None:
    obs, faults = series
    store = Store.from_url(tmp_path / "store")
    files = write_ismn(obs, stations, store, "ismn")
    n_sensors = int(stations["depths"].map(len).sum())
    assert len(files) == 2 * n_sensors + 3 * len(stations)
    pattern = re.compile(r"SYNTH_SYNTH_(SYN\d{4})_(sm|ts|ta|p)_(-?\d+\.\d{6})_(-?\d+\.\d{6})_([A-Za-z0-9-]+)_(\d{8})_(\d{8})\.stm")
    meta = stations.set_index("station")
    o = keyed(obs)
    parsed_sm = []
    for rel in files:
        path = Path(store.join(rel))
        assert path.parent.parent.name == "SYNTH" and path.parent.name in meta.index
        if rel.endswith("_static_variables.csv"):
            lines = path.read_bytes().decode("utf-8").split("\r\n")
            assert lines[0].startswith("quantity_name;unit;depth_from[m];depth_to[m];value;")
            sat = [ln.split(";") for ln in lines if ln.startswith("saturation;")]
            assert float(sat[0][4]) == pytest.approx(meta.loc[path.parent.name, "saturation"])
            continue
        m = pattern.fullmatch(path.name)
        assert m, path.name
        station, var, dfrom, dto, sensor, first, last = m.groups()
        raw = path.read_bytes()
        header, body = raw.split(b"\n", 1)
        assert body.startswith(b"\r") and body.endswith(b"\r\n")
        fields = header.decode("ascii").split()
        row = meta.loc[station]
        assert fields[:3] == ["SYNTH", "SYNTH", station]
        assert float(fields[3]) == row["lat"] and float(fields[4]) == row["lon"]
        assert float(fields[5]) == pytest.approx(row["elevation"], abs=0.005)
        assert float(fields[6]) == float(dfrom) and float(fields[7]) == float(dto) and fields[8] == sensor
        times, values = [], []
        for line in body[1:].decode("ascii").split("\r\n")[:-1]:
            date, hour, value, flag, provider = line.split(" ", 1)[0], line[11:16], line[17:25], line[26], line[28]
            assert (flag, provider) == ("U", "M") and len(line) == 29
            times.append(pd.Timestamp(f"{date.replace('/', '-')} {hour}"))
            values.append(float(value))
        assert times[0].strftime("%Y%m%d") == first and times[-1].strftime("%Y%m%d") == last
        if var in ("sm", "ts"):
            depth = round(float(dfrom) * 100)
            assert depth in row["depths"] and sensor == (row["sensor"] if var == "sm" else "PT-100")
            idx = pd.MultiIndex.from_arrays([[station] * len(times), [depth] * len(times), times])
            expected = o.loc[idx, "sm" if var == "sm" else "soil_temperature"].to_numpy(dtype=np.float64)
            np.testing.assert_allclose(values, expected, atol=1e-4 if var == "ts" else 0, rtol=0)
            n_rows = len(o.loc[(station, depth)])
            assert len(times) == n_rows, "one line per observation, gaps absent"
            if var == "sm":
                parsed_sm.append(pd.DataFrame({"station": station, "depth_cm": depth, "time": times, "sm": values}))
        else:
            assert float(dfrom) == (-2.0 if var == "ta" else 0.0)
            hourly = obs[obs["station"] == station].drop_duplicates("time").set_index("time")
            column = "air_temperature" if var == "ta" else "precipitation"
            np.testing.assert_allclose(values, hourly.loc[times, column].to_numpy(dtype=np.float64), atol=1e-4, rtol=0)
    back = keyed(pd.concat(parsed_sm))
    assert len(back) == len(obs)
    gaps = keyed(faults[faults["fault"] == "gap"])
    assert not back.index.isin(gaps.index).any()
    spikes = keyed(faults[faults["fault"] == "spike"])
    np.testing.assert_array_equal(back.loc[spikes.index, "sm"].to_numpy(), spikes["sm"].to_numpy())


def test_csv_tables(series: tuple[pd.DataFrame, pd.DataFrame], stations: pd.DataFrame, tmp_path: Path) -> None:
    obs, faults = series
    store = Store.from_url(tmp_path / "store")
    write_station_csv(obs, stations, store, "stations/cma.csv")
    table = pd.read_csv(store.join("stations/cma.csv"))
    columns = ["station", "lat", "lon", "depth_from_cm", "depth_to_cm", "time", "sm", "soil_temperature", "precipitation"]
    assert list(table.columns) == columns
    assert len(table) == len(obs)
    np.testing.assert_array_equal(table["sm"], obs["sm"])
    np.testing.assert_array_equal(table["depth_to_cm"], obs["depth_cm"])
    np.testing.assert_array_equal(table["depth_from_cm"], obs["depth_cm"] - 10)
    assert table["time"].iloc[0] == obs["time"].iloc[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    np.testing.assert_allclose(table["soil_temperature"], obs["soil_temperature"], atol=1e-4)
    np.testing.assert_array_equal(table["lat"], obs["station"].astype(str).map(stations.set_index("station")["lat"]))

    write_station_csv(obs.iloc[:1000], stations, store, "stations/part.csv.gz")
    assert len(pd.read_csv(store.join("stations/part.csv.gz"))) == 1000

    write_station_table(stations, store, "stations/stations.csv")
    meta = pd.read_csv(store.join("stations/stations.csv"))
    assert list(meta["station"]) == list(stations["station"])
    assert [list(map(int, d.split(";"))) for d in meta["depths"]] == list(stations["depths"])

    write_faults(faults, store, "stations/faults.parquet")
    back = read_parquet(store, "stations/faults.parquet")
    assert len(back) == len(faults) and set(back["fault"]) == set(FAULT_TYPES)
    write_faults(faults, store, "stations/faults.csv")
    back_csv = pd.read_csv(store.join("stations/faults.csv"))
    assert len(back_csv) == len(faults)
    np.testing.assert_allclose(back_csv["sm_clean"], faults["sm_clean"])
