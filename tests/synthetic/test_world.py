"""The whole synthetic world read back with the ordinary libraries, on local folders and on S3.

Nothing here uses the package's own readers to check the files: xarray/netCDF4
for NetCDF and Zarr, rasterio for GeoTIFFs, pandas for CSV/Parquet and plain
Python for the ISMN text format.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.grid import REGIONS
from smci_dask.io import Store
from smci_dask.synthetic import load_manifest, make_world
from smci_dask.synthetic.world import FAULTS, STATION_CSV, STATION_TABLE, TRUTH

TINY = REGIONS["tiny"].grid


def _local_copy(store: Store, relpath: str, tmp: Path) -> Path:
    return Path(store.join(relpath)) if store.is_local else store.get_file(relpath, tmp / relpath.replace("/", "_"))


def _parse_ismn(text: str) -> tuple[list[str], pd.DataFrame]:
    """The ISMN header+values format by hand: header line, then 'YYYY/MM/DD HH:MM value flag flag'."""
    lines = [ln for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if ln.strip()]
    header = lines[0].split()
    rows = [ln.split() for ln in lines[1:]]
    df = pd.DataFrame(
        {
            "time": pd.to_datetime([f"{r[0]} {r[1]}" for r in rows], format="%Y/%m/%d %H:%M"),
            "value": [float(r[2]) for r in rows],
            "flag": [r[3] for r in rows],
        }
    )
    return header, df


def check_world(store: Store, manifest: dict, tmp: Path, *, region: str = "tiny") -> None:
    """Read every part of a world with plain libraries and check names, units and shapes."""
    grid = REGIONS[region].grid
    days = pd.date_range(manifest["first_day"], manifest["last_day"], freq="D")
    assert load_manifest(store) == json.loads(json.dumps(manifest))
    assert store.read_bytes(manifest["files"]["quicklook"])[:8] == b"\x89PNG\r\n\x1a\n"

    # static GeoTIFFs
    assert sorted(Path(p).stem for p in manifest["files"]["static"]) == sorted(cv.STATIC_VARS)
    for rel in manifest["files"]["static"]:
        with rasterio.open(_local_copy(store, rel, tmp)) as src:
            assert src.crs.to_epsg() == 4326
            assert (src.height, src.width) == grid.shape
            assert tuple(src.transform)[:6] == pytest.approx(grid.transform)
            name = Path(rel).stem
            assert src.tags()["units"] == cv.STATIC_VARS[name]
            band = src.read(1, masked=True)
            assert band.count() > 0.5 * band.size

    # ERA5-Land hourly NetCDF: CDS layout
    nc = sorted(manifest["files"]["era5land"])
    months = pd.period_range(days[0], days[-1], freq="M")
    assert len(nc) == len(months)
    first = xr.open_dataset(_local_copy(store, nc[0], tmp), engine="netcdf4")
    assert set(first.dims) == {cv.ERA5_TIME, cv.ERA5_LAT, cv.ERA5_LON}
    assert {cv.ERA5_NUMBER, cv.ERA5_EXPVER} <= set(first.coords)
    assert set(cv.ERA5_VARS) <= set(first.data_vars)
    for v in cv.ERA5_VARS:
        assert first[v].dtype == np.float32
        assert first[v].attrs["units"] == cv.ERA5_RAW_UNITS[v]
        assert first[v].attrs["GRIB_paramId"] == cv.ERA5_PARAM_IDS[v]  # (GRIB shortName of t2m is "2t")
    lat = first[cv.ERA5_LAT].values
    assert (np.diff(lat) < 0).all()  # latitude descending
    # covers the region's coarse centres with a margin
    assert lat.max() > grid.coarse_lat.max() and lat.min() < grid.coarse_lat.min()
    t = pd.DatetimeIndex(first[cv.ERA5_TIME].values)
    assert t[0] == months[0].start_time and t[-1] == months[0].end_time.floor("h") and len(t) == 24 * months[0].days_in_month
    assert float(first["e"].max()) <= 0.0 and float(first["tp"].min()) >= 0.0
    first.close()

    # MODIS-like LAI
    lai = sorted(manifest["files"]["lai"])
    assert Path(lai[0]).name == f"MOD15A2H.A{days[0].year}001.Lai_500m.tif"
    with rasterio.open(_local_copy(store, lai[0], tmp)) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == cv.LAI_FILL
        assert float(src.tags()["scale_factor"]) == pytest.approx(cv.LAI_SCALE)
        assert src.scales[0] == pytest.approx(cv.LAI_SCALE)
        raw = src.read(1)
        valid = raw[raw <= cv.LAI_VALID_MAX]
        assert valid.size > 0 and 0 <= valid.min() and valid.max() <= cv.LAI_VALID_MAX

    # the truth
    truth = xr.open_zarr(
        _local_copy(store, TRUTH, tmp) if store.is_local else store.url_of(TRUTH),
        consolidated=False,
        storage_options=None if store.is_local else store.storage_options,
    )
    sm = truth[cv.SM_TRUTH]
    assert sm.dims == (cv.TIME, cv.DEPTH, cv.LAT, cv.LON)
    assert sm.shape == (len(days), len(cv.DEPTHS_CM), *grid.shape)
    assert list(truth[cv.DEPTH].values) == list(cv.DEPTHS_CM)
    assert sm.attrs["units"] == "m3 m-3"
    np.testing.assert_allclose(truth[cv.LAT].values, grid.lat)
    day0 = sm.isel(time=0).values
    assert np.nanmin(day0) >= 0.0 and np.nanmax(day0) <= 0.6

    # stations: table, CSV, ISMN by hand, faults
    table = pd.read_csv(_local_copy(store, STATION_TABLE, tmp))
    assert len(table) == manifest["n_stations"]
    csv = pd.read_csv(_local_copy(store, STATION_CSV, tmp))
    assert {"station", "lat", "lon", "depth_from_cm", "depth_to_cm", "time", "sm"} <= set(csv.columns)
    assert set(csv["station"]) <= set(table["station"])
    faults = pd.read_parquet(_local_copy(store, FAULTS, tmp))
    assert {"station", "depth_cm", "time", "fault"} <= set(faults.columns)

    st = table.iloc[0]
    ismn = sorted(p for p in store.glob(f"stations/ismn/SYNTH/{st['station']}/*_sm_*.stm"))
    assert ismn, "no ISMN soil-moisture file for the first station"
    header, values = _parse_ismn(store.read_text(ismn[0]))
    assert header[:3] == ["SYNTH", "SYNTH", st["station"]]
    assert float(header[3]) == pytest.approx(st["lat"], abs=1e-4) and float(header[4]) == pytest.approx(st["lon"], abs=1e-4)
    depth_m = float(header[6])
    assert depth_m == float(header[7]) and round(depth_m * 100) in cv.DEPTHS_CM
    # the ISMN file and the CSV table hold the same readings
    from_csv = csv[(csv["station"] == st["station"]) & (csv["depth_to_cm"] == round(depth_m * 100))]
    assert len(from_csv) == len(values)
    np.testing.assert_allclose(from_csv["sm"].to_numpy(), values["value"].to_numpy(), atol=1e-4)
    assert (pd.to_datetime(from_csv["time"]).dt.tz_localize(None).to_numpy() == values["time"].to_numpy()).all()


def test_tiny_world_reads_back_with_plain_libraries(tiny_world, tmp_path):
    store, manifest = tiny_world
    check_world(store, manifest, tmp_path)
    assert manifest["counts"]["stations"] == 20
    assert manifest["years"] == list(REGIONS["tiny"].years)


def test_stations_denser_east_and_sharing_cells(tiny_world, tmp_path):
    store, manifest = tiny_world
    table = pd.read_csv(Path(store.join(STATION_TABLE)))
    mid = sum(REGIONS["tiny"].bbox[::2]) / 2
    assert (table["lon"] > mid).sum() > (table["lon"] <= mid).sum()
    assert manifest["counts"]["station cells"] < manifest["counts"]["stations"]


def test_faults_recorded_with_their_types(tiny_world):
    store, _ = tiny_world
    faults = pd.read_parquet(Path(store.join(FAULTS)))
    kinds = set(faults["fault"])
    for kind in ("negative", "above_0.6", "spike", "break", "saturation_plateau", "low_plateau", "frozen", "gap"):
        assert kind in kinds, f"fault type {kind} never injected"
    neg = faults[faults["fault"] == "negative"]["sm"]
    assert ((neg >= -0.05 - 1e-9) & (neg <= -0.01 + 1e-9)).all()
    assert (faults[faults["fault"] == "above_0.6"]["sm"] > 0.6).all()


def test_same_seed_same_world_other_seed_other_world():
    def build(seed: int) -> tuple[Store, dict]:
        store = Store.from_url(f"memory://world-seed-{seed}-{np.random.default_rng().integers(1 << 30)}")
        return store, make_world(store, region="tiny", years=(2020, 2020), seed=seed, n_stations=3)

    a, ma = build(1)
    b, mb = build(1)
    c, mc = build(2)
    try:
        assert ma["counts"] == mb["counts"]
        for rel in (STATION_CSV, FAULTS, ma["files"]["era5land"][0], ma["files"]["static"][0]):
            assert a.read_bytes(rel) == b.read_bytes(rel), rel
        assert a.read_bytes(STATION_CSV) != c.read_bytes(STATION_CSV)
        ta = xr.open_zarr(a.url_of(TRUTH), consolidated=False)[cv.SM_TRUTH].values
        tb = xr.open_zarr(b.url_of(TRUTH), consolidated=False)[cv.SM_TRUTH].values
        tc = xr.open_zarr(c.url_of(TRUTH), consolidated=False)[cv.SM_TRUTH].values
        np.testing.assert_array_equal(ta, tb)
        assert not np.allclose(ta, tc, equal_nan=True)
    finally:
        for s in (a, b, c):
            s.rm()


@pytest.mark.s3
def test_synth_cli_on_s3(s3_store, tmp_path):
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    url, options = s3_store
    env = {"SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": options["endpoint_url"]}
    res = CliRunner().invoke(
        cli, ["synth", "--out", url, "--region", "tiny", "--years", "2020", "2020", "--stations", "4", "--seed", "7"], env=env
    )
    assert res.exit_code == 0, res.output
    store = Store.from_url(url, options)
    check_world(store, load_manifest(store), tmp_path)


def test_synth_cli_writes_a_world(tmp_path):
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    out = tmp_path / "w"
    res = CliRunner().invoke(
        cli, ["synth", "--out", str(out), "--region", "tiny", "--years", "2020", "2020", "--stations", "3", "--seed", "5"]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "world.json").read_text())
    assert manifest["seed"] == 5 and manifest["years"] == [2020, 2020] and manifest["n_stations"] == 3
    assert "synthetic world 'tiny' written" in res.output
    check_world(Store.from_url(str(out)), manifest, tmp_path)


def test_synth_rejects_bad_years_and_stations(tmp_path):
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    res = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "w"), "--years", "2021", "2020"])
    assert res.exit_code == 2 and "first year after last" in res.output
    res = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "w"), "--stations", "0"])
    assert res.exit_code == 2 and "at least 1 station" in res.output


def test_world_with_grib_and_sinusoidal_lai(tmp_path):
    import pyproj  # noqa: F401  (before cfgrib: see smci_dask/__init__.py)

    store = Store.from_url(str(tmp_path / "w"))
    manifest = make_world(store, region="tiny", years=(2020, 2020), n_stations=2, seed=3, grib=True, sinusoidal=True)
    gribs = sorted(manifest["files"]["era5land_grib"])
    assert len(gribs) == 12 and gribs[0].endswith(".grib")
    nc = xr.open_dataset(store.join(manifest["files"]["era5land"][0]), engine="netcdf4")
    gb = xr.open_dataset(store.join(gribs[0]), engine="cfgrib", backend_kwargs={"time_dims": ["valid_time"], "indexpath": ""})
    assert set(gb.data_vars) >= {"t2m", "swvl1", "stl1"}
    # the same month in both formats holds the same values (GRIB packs to ~24 bits)
    np.testing.assert_allclose(gb["t2m"].values, nc["t2m"].sel(valid_time=gb["valid_time"]).values, atol=1e-2)
    sinu = sorted(manifest["files"]["lai_sinusoidal"])
    with rasterio.open(store.join(sinu[0])) as src:
        assert "+proj=sinu" in src.crs.to_proj4() and src.dtypes[0] == "uint8"
