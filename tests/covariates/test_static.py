"""Static layers (:mod:`smci_dask.covariates.static`): the tiny world's GeoTIFFs onto the 1 km grid and into the store.

Expected values come from the synthetic source itself (``make_statics`` with
the session's seed) and from the GeoTIFFs read with plain rasterio; the
0.1 degree aggregates from an independent NumPy computation: the fine grid
padded with 6 empty rows/columns at the north and west so that each
ERA5-Land cell's footprint (centre +- 0.05 degree) is one 12 x 12 block.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject, transform_bounds

from smci_dask import conventions as cv
from smci_dask.covariates.static import (
    CLASS_VARS,
    CONTINUOUS_VARS,
    ingest_static,
    open_static,
    open_static_coarse,
    read_static_rasters,
    static_coarse,
    write_static,
)
from smci_dask.errors import InputError, StoreError
from smci_dask.grid import REGIONS, land_mask_from_landcover
from smci_dask.io import Store
from smci_dask.synthetic.statics import make_statics

GRID = REGIONS["tiny"].grid
SEED = 20220101  # tests/conftest.py TEST_SEED


@pytest.fixture(scope="module")
def source() -> xr.Dataset:
    """The synthetic statics the tiny world's GeoTIFFs were written from."""
    return make_statics(GRID, SEED)


@pytest.fixture(scope="module")
def static_dir(tiny_world: tuple[Store, dict[str, Any]]) -> str:
    store, _ = tiny_world
    return store.join("static")


@pytest.fixture(scope="module")
def layers(static_dir: str) -> xr.Dataset:
    return read_static_rasters(static_dir, GRID)


def copy_statics(static_dir: str, dest: Path, skip: tuple[str, ...] = ()) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in cv.STATIC_VARS:
        if name not in skip:
            shutil.copy(Path(static_dir) / f"{name}.tif", dest / f"{name}.tif")
    return dest


def rewrite(path: Path, data: np.ndarray | None = None, *, units: str | None = None, **profile: Any) -> None:
    """Rewrite a GeoTIFF in place with new data, units tag and/or profile entries (tags kept otherwise)."""
    with rasterio.open(path) as src:
        prof = src.profile
        values = src.read(1) if data is None else data
        tags, band_tags = src.tags(), src.tags(1)
    prof.update(profile)
    prof.update(height=values.shape[0], width=values.shape[1], dtype=values.dtype.name)
    if units is not None:
        tags["units"] = band_tags["units"] = units
    path.unlink()
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(values, 1)
        dst.update_tags(**tags)
        dst.update_tags(1, **band_tags)
        if units is not None:
            dst.set_band_unit(1, units)


def coarse_blocks(fine: np.ndarray) -> np.ndarray:
    """(5, 5, 144) blocks of the tiny grid's coarse footprints: 6 padded rows/cols north/west, the last 6 south/east dropped."""
    pad = np.full((66, 66), np.nan)
    pad[6:, 6:] = fine
    return pad[:60, :60].reshape(5, 12, 5, 12).transpose(0, 2, 1, 3).reshape(5, 5, 144)


# ------------------------------------------------------------------ reading
def test_values_equal_geotiffs_and_source(layers: xr.Dataset, source: xr.Dataset, static_dir: str) -> None:
    assert set(layers.data_vars) == set(cv.STATIC_VARS)
    np.testing.assert_array_equal(layers[cv.LAT].values, GRID.lat)
    np.testing.assert_array_equal(layers[cv.LON].values, GRID.lon)
    for name in cv.STATIC_VARS:
        with rasterio.open(Path(static_dir) / f"{name}.tif") as src:
            raw = src.read(1)
        got = layers[name].values
        assert got.dtype == (np.uint8 if name in CLASS_VARS else np.float32), name
        np.testing.assert_array_equal(got, raw, err_msg=name)  # NaN == NaN for the float layers
        np.testing.assert_array_equal(got, source[name].values, err_msg=name)
        assert layers[name].attrs["units"] == cv.STATIC_VARS[name]
        assert layers[name].attrs["resampling"] == "copied"


def test_land_mask_count_equals_synthetic(layers: xr.Dataset, source: xr.Dataset, tiny_world: tuple[Store, dict[str, Any]]) -> None:
    _, manifest = tiny_world
    land = land_mask_from_landcover(layers["landcover"].values)
    assert int(land.sum()) == int(source["land"].values.sum()) == manifest["counts"]["land cells"]


def test_coarse_aggregates_equal_numpy(layers: xr.Dataset, source: xr.Dataset) -> None:
    coarse = static_coarse(layers, GRID)
    np.testing.assert_allclose(coarse[cv.LAT].values, GRID.coarse_lat)
    np.testing.assert_allclose(coarse[cv.LON].values, GRID.coarse_lon)
    land = source["land"].values
    lc = coarse_blocks(source["landcover"].values.astype(float))
    is_land = coarse_blocks(np.where(land, 1.0, 0.0))
    n_land = np.nansum(is_land, axis=2)
    n_cells = np.sum(np.isfinite(lc), axis=2)
    np.testing.assert_allclose(coarse["land_fraction"].values, n_land / n_cells, rtol=1e-6)
    np.testing.assert_array_equal(coarse["land"].values, n_land / n_cells >= 0.5)
    for name in CONTINUOUS_VARS:
        blocks = coarse_blocks(np.where(land, source[name].values.astype(np.float64), np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice" on the all-sea corner
            expected = np.nanmean(blocks, axis=2)
        np.testing.assert_allclose(coarse[name].values, expected.astype(np.float32), rtol=1e-6, err_msg=name)
    for name in CLASS_VARS:
        blocks = coarse_blocks(np.where(land, source[name].values.astype(float), np.nan))
        expected = np.zeros((5, 5), dtype=np.uint8)
        for r in range(5):
            for c in range(5):
                vals = blocks[r, c][np.isfinite(blocks[r, c])].astype(int)
                if vals.size:
                    codes, counts = np.unique(vals, return_counts=True)
                    expected[r, c] = codes[np.argmax(counts)]  # np.unique sorts: ties -> the smallest code
                elif name == "landcover":
                    expected[r, c] = cv.WATER_CLASS
        np.testing.assert_array_equal(coarse[name].values, expected, err_msg=name)
    # the sea corner: no land at all; the shore cells: partly land
    assert n_land[-1, -1] == 0 and np.isnan(coarse["elevation"].values[-1, -1]) and coarse["landcover"].values[-1, -1] == cv.WATER_CLASS
    assert ((coarse["land_fraction"].values > 0) & (coarse["land_fraction"].values < 1)).any()


# ------------------------------------------------------------------ store
def snapshot(store: Store, relpath: str) -> dict[str, Any]:
    """Every object below ``relpath``: its bytes (S3: size and ETag, the MD5 of its bytes, without downloading)."""
    found = store.fs.find(store.join(relpath), detail=True)
    if store.protocol == "s3":
        return {p: (info["size"], info["ETag"]) for p, info in found.items()}
    return {p: store.fs.cat_file(p) for p, info in found.items() if info["type"] == "file"}


def test_write_open_idempotent(any_store: Store, layers: xr.Dataset, source: xr.Dataset) -> None:
    report = write_static(layers, any_store)
    assert not report.unchanged and not report.replaced
    assert report.land_cells == int(source["land"].values.sum())
    assert report.relpaths == ("covariates/static", "covariates/static_coarse")
    assert "2228" in report.summary() or str(report.land_cells) in report.summary()
    ds = open_static(any_store).load()
    for name in cv.STATIC_VARS:
        assert ds[name].dtype == layers[name].dtype
        np.testing.assert_array_equal(ds[name].values, layers[name].values, err_msg=name)
    np.testing.assert_array_equal(ds["land"].values, source["land"].values)
    coarse = open_static_coarse(any_store).load()
    expected = static_coarse(layers, GRID)
    for name in expected.data_vars:
        np.testing.assert_array_equal(coarse[name].values, expected[name].values, err_msg=name)
    assert report.coarse_land_cells == int(expected["land"].values.sum())

    before = {**snapshot(any_store, "covariates/static"), **snapshot(any_store, "covariates/static_coarse")}
    again = write_static(layers, any_store)
    assert again.unchanged and not again.replaced
    after = {**snapshot(any_store, "covariates/static"), **snapshot(any_store, "covariates/static_coarse")}
    assert after == before


def test_replace_and_incomplete_group(tmp_path: Path, layers: xr.Dataset) -> None:
    store = Store.from_url(tmp_path / "store")
    write_static(layers, store, space_chunk=32)
    assert open_static(store)["elevation"].encoding["chunks"] == (32, 32)
    changed = layers.copy()
    changed["elevation"] = layers["elevation"] + np.float32(1.0)
    report = write_static(changed, store)
    assert report.replaced and not report.unchanged
    np.testing.assert_array_equal(open_static(store)["elevation"].values, changed["elevation"].values)
    # an interrupted write (template written, data not) is refused by readers
    from smci_dask.io import write_zarr

    write_zarr(xr.Dataset(attrs={"complete": False}), store, "covariates/static", mode="a")
    with pytest.raises(StoreError, match="not completely written"):
        open_static(store)


def test_ingest_from_s3(s3_store: tuple[str, dict[str, Any]], tmp_path: Path, static_dir: str, layers: xr.Dataset) -> None:
    url, opts = s3_store
    inputs = Store.from_url(url + "/inputs", opts)
    for name in cv.STATIC_VARS:
        inputs.put_file(Path(static_dir) / f"{name}.tif", f"static/{name}.tif")
    out = Store.from_url(tmp_path / "out")  # writing to S3 is covered by any_store[s3]
    report = ingest_static(inputs.url_of("static"), out, GRID, storage_options=opts)
    assert report.land_cells == int(land_mask_from_landcover(layers["landcover"].values).sum())
    ds = open_static(out)
    for name in cv.STATIC_VARS:
        np.testing.assert_array_equal(ds[name].values, layers[name].values, err_msg=name)
    # a glob on S3 reads the same
    again = read_static_rasters(inputs.url_of("static") + "/*.tif", GRID, storage_options=opts)
    xr.testing.assert_identical(again.drop_attrs(), layers.drop_attrs())


# ------------------------------------------------------------------ other grids
def test_finer_and_larger_rasters(tmp_path: Path, static_dir: str, source: xr.Dataset) -> None:
    """A 15 arc-second raster is averaged (classes: mode) back to the 1 km values; a larger aligned one is cut."""
    d = copy_statics(static_dir, tmp_path / "fine")
    for name in ("elevation", "landcover", "porosity"):
        values = np.repeat(np.repeat(source[name].values, 2, axis=0), 2, axis=1)
        w, _, _, n = GRID.bbox
        rewrite(d / f"{name}.tif", values, transform=Affine(0.5 / 120, 0, w, 0, -0.5 / 120, n))
    big = source["sand"].values
    padded = np.full((big.shape[0] + 24, big.shape[1] + 30), np.nan, dtype=np.float32)
    padded[12:-12, 10:-20] = big
    w, _, _, n = GRID.bbox
    rewrite(d / "sand.tif", padded, transform=Affine(1 / 120, 0, w - 10 / 120, 0, -1 / 120, n + 12 / 120))
    ds = read_static_rasters(d, GRID)
    assert ds["elevation"].attrs["resampling"] == "average"
    assert ds["landcover"].attrs["resampling"] == "mode"
    assert ds["sand"].attrs["resampling"] == "copied"
    for name in ("elevation", "landcover", "porosity", "sand"):
        np.testing.assert_allclose(ds[name].values, source[name].values, rtol=1e-6, err_msg=name)


def test_projected_raster_is_reprojected(tmp_path: Path, static_dir: str, source: xr.Dataset) -> None:
    """Elevation in UTM zone 50N at 250 m comes back close to the 1 km source (smooth field, averaged)."""
    d = copy_statics(static_dir, tmp_path / "utm")
    utm = CRS.from_epsg(32650)
    left, bottom, right, top = transform_bounds(CRS.from_epsg(4326), utm, *GRID.bbox, densify_pts=101)
    # 250 m pixels, 8 more on each side so the region is covered whole
    transform = Affine(250.0, 0.0, left - 8 * 250.0, 0.0, -250.0, top + 8 * 250.0)
    width, height = int(np.ceil((right - left) / 250.0)) + 16, int(np.ceil((top - bottom) / 250.0)) + 16
    dst = np.full((height, width), np.nan, dtype=np.float32)
    elev = source["elevation"].values.astype(np.float32)
    reproject(elev, dst, src_transform=Affine(*GRID.transform), src_crs=CRS.from_epsg(4326), src_nodata=np.nan,
              dst_transform=transform, dst_crs=utm, dst_nodata=np.nan, resampling=Resampling.bilinear)  # fmt: skip
    rewrite(d / "elevation.tif", dst, crs=utm, transform=transform, nodata=np.nan)
    ds = read_static_rasters(d, GRID)
    assert ds["elevation"].attrs["resampling"] == "average"
    got, want = ds["elevation"].values, elev
    both = np.isfinite(got) & np.isfinite(want)
    assert both.sum() > 0.9 * np.isfinite(want).sum()
    rel = np.abs(got[both] - want[both]) / (np.nanmax(want) - np.nanmin(want))
    assert np.median(rel) < 0.01 and np.quantile(rel, 0.95) < 0.05


# ------------------------------------------------------------------ units and bad input
def test_porosity_in_percent_is_converted(tmp_path: Path, static_dir: str, source: xr.Dataset) -> None:
    d = copy_statics(static_dir, tmp_path / "pct")
    rewrite(d / "porosity.tif", source["porosity"].values * np.float32(100.0), units="%")
    rewrite(d / "bulk_density.tif", source["bulk_density"].values * np.float32(1000.0), units="kg/m3")
    ds = read_static_rasters(d, GRID)
    np.testing.assert_allclose(ds["porosity"].values, source["porosity"].values, rtol=1e-6)
    np.testing.assert_allclose(ds["bulk_density"].values, source["bulk_density"].values, rtol=1e-6)
    assert ds["porosity"].attrs["units"] == "m3 m-3" and ds["porosity"].attrs["converted_from"].startswith("%")


def test_wrong_unit_is_reported(tmp_path: Path, static_dir: str) -> None:
    d = copy_statics(static_dir, tmp_path / "bad")
    rewrite(d / "sand.tif", units="kg")
    with pytest.raises(InputError) as err:
        read_static_rasters(d, GRID)
    msg = str(err.value)
    assert "sand.tif" in msg and "'sand'" in msg and "'kg'" in msg and "'%'" in msg and "convert" in msg


def test_percent_values_tagged_as_fraction_are_reported(tmp_path: Path, static_dir: str, source: xr.Dataset) -> None:
    d = copy_statics(static_dir, tmp_path / "pct-untagged")
    rewrite(d / "porosity.tif", source["porosity"].values * np.float32(100.0))  # still tagged m3 m-3
    with pytest.raises(InputError, match=r"porosity.tif.*'porosity'.*look like %"):
        read_static_rasters(d, GRID)


def test_class_layer_with_units_is_reported(tmp_path: Path, static_dir: str) -> None:
    d = copy_statics(static_dir, tmp_path / "lc")
    rewrite(d / "landcover.tif", units="m")
    with pytest.raises(InputError, match=r"landcover.tif.*class layer 'landcover' has units 'm'"):
        read_static_rasters(d, GRID)


def test_missing_variable_is_listed(tmp_path: Path, static_dir: str) -> None:
    d = copy_statics(static_dir, tmp_path / "missing", skip=("clay", "rock_fragment"))
    with pytest.raises(InputError, match=r"missing: clay, rock_fragment"):
        read_static_rasters(d, GRID)
    with pytest.raises(InputError, match=r"missing: clay, rock_fragment"):
        ingest_static(d, Store.from_url(tmp_path / "out"), GRID)
    assert not (tmp_path / "out").exists()  # nothing written


def test_unknown_duplicate_and_uncovered_files(tmp_path: Path, static_dir: str, source: xr.Dataset) -> None:
    d = copy_statics(static_dir, tmp_path / "odd")
    mapping = {name: d / f"{name}.tif" for name in cv.STATIC_VARS}
    ds = read_static_rasters({k: str(v) for k, v in mapping.items()}, GRID)
    np.testing.assert_array_equal(ds["clay"].values, source["clay"].values)
    # a file whose variable cannot be told
    with rasterio.open(d / "sand.tif") as src:
        prof = src.profile
        data = src.read(1)
    with rasterio.open(d / "mystery.tif", "w", **prof) as dst:
        dst.write(data, 1)
    with pytest.raises(InputError, match=r"mystery.tif: cannot tell which variable"):
        read_static_rasters(d, GRID)
    (d / "mystery.tif").unlink()
    # two files for one variable (the 'variable' tag says sand)
    shutil.copy(d / "sand.tif", d / "sand_copy.tif")
    with pytest.raises(InputError, match=r"'sand' is given twice"):
        read_static_rasters(d, GRID)
    (d / "sand_copy.tif").unlink()
    # a raster that covers only the northern half
    half = source["silt"].values[:30]
    rewrite(d / "silt.tif", half)
    with pytest.raises(InputError, match=r"silt.tif: does not cover the region.*1800 of 3600"):
        read_static_rasters(d, GRID)


def test_corrupt_and_absent_files(tmp_path: Path, static_dir: str) -> None:
    d = copy_statics(static_dir, tmp_path / "corrupt")
    raw = (d / "clay.tif").read_bytes()
    (d / "clay.tif").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError, match=r"clay.tif"):
        read_static_rasters(d, GRID)
    with pytest.raises(InputError, match=r"no such file or folder"):
        read_static_rasters(tmp_path / "nowhere", GRID)
    with pytest.raises(InputError, match=r"no file matches"):
        read_static_rasters(str(tmp_path / "nowhere" / "*.tif"), GRID)


def _store_bytes(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _flip_middle(path: Path) -> None:
    """A corrupt byte run in the middle of the file (inside the compressed tiles), the header intact."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda d: _flip_middle(d / "clay.tif"), r"clay.tif"),
        (lambda d: rewrite(d / "porosity.tif", units="kg"), r"porosity.tif.*'kg'"),
        (lambda d: (d / "sand.tif").unlink(), r"missing: sand"),
        (lambda d: rewrite(d / "silt.tif", np.zeros((30, 60), np.float32)), r"silt.tif: does not cover the region"),
    ],
    ids=["corrupt-byte", "wrong-unit", "variable-missing", "region-not-covered"],
)
def test_bad_layer_leaves_an_existing_store_as_it_was(tmp_path: Path, static_dir: str, damage: Any, words: str) -> None:
    store = Store.from_url(tmp_path / "out")
    ingest_static(static_dir, store, GRID)
    before = _store_bytes(tmp_path / "out")
    bad = copy_statics(static_dir, tmp_path / "bad")
    damage(bad)
    with pytest.raises(InputError, match=words):
        ingest_static(bad, store, GRID)
    assert _store_bytes(tmp_path / "out") == before


def test_cli_into_an_s3_store_equals_the_source(
    static_dir: str, source: xr.Dataset, s3_store: tuple[str, dict[str, Any]], s3_server: Any
) -> None:
    from click.testing import CliRunner

    from smci_dask.cli.main import cli

    url, options = s3_store
    env = {"SMCI__STORE__STORAGE_OPTIONS__ENDPOINT_URL": s3_server.endpoint_url}
    res = CliRunner().invoke(cli, ["ingest", "static", static_dir, "--store", url, "--region", "tiny"], env=env)
    assert res.exit_code == 0, res.output
    stored = open_static(Store.from_url(url, options))
    for name in cv.STATIC_VARS:
        np.testing.assert_array_equal(stored[name].values, source[name].values, err_msg=name)
    np.testing.assert_array_equal(stored["land"].values, land_mask_from_landcover(source["landcover"].values))
