"""Zarr and Parquet through a Store, on local disk, memory:// and the S3 server."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smci_dask.conventions import LAT, LON, SM, TIME
from smci_dask.errors import StoreError
from smci_dask.io import Store, open_zarr, read_parquet, write_parquet, write_zarr, zarr_exists


def _dataset() -> xr.Dataset:
    rng = np.random.default_rng(42)
    shape = (8, 6, 5)
    sm = rng.uniform(0.02, 0.5, shape).astype("float32")
    sm[0, 0, 0] = np.nan
    return xr.Dataset(
        {
            SM: ((TIME, LAT, LON), sm, {"units": "m3/m3", "long_name": "volumetric soil moisture"}),
            "n_obs": ((TIME, LAT, LON), rng.integers(0, 24, shape).astype("int16")),
        },
        coords={
            TIME: pd.date_range("2020-01-01", periods=shape[0], freq="D"),
            LAT: np.linspace(40.0, 39.5, shape[1]),
            LON: np.linspace(110.0, 110.4, shape[2]),
        },
        attrs={"title": "test cube"},
    ).chunk({TIME: 4, LAT: 3, LON: 5})


def _table() -> pd.DataFrame:
    times = pd.date_range("2021-06-01", periods=6, freq="h")
    return pd.DataFrame(
        {
            "station": ["CN-A01", "CN-A01", "CN-B02", "CN-B02", "CN-C03", None],
            "depth": np.array([10, 10, 20, 20, 10, 20], dtype="int16"),
            "time": times.astype("datetime64[ns]"),
            "time_utc": times.tz_localize("UTC"),
            "sm": np.array([0.11, 0.12, 0.3, np.nan, 0.25, 0.2], dtype="float32"),
            "cell": np.arange(6, dtype="int64") * 10**9,
            "flag_ok": [True, False, True, True, False, True],
        }
    )


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["cell"]).reset_index(drop=True)


# ------------------------------------------------------------------ Zarr
def test_zarr_round_trip_is_lazy(any_store: Store) -> None:
    ds = _dataset()
    assert not zarr_exists(any_store, "cube.zarr")
    write_zarr(ds, any_store, "cube.zarr")
    assert zarr_exists(any_store, "cube.zarr")

    back = open_zarr(any_store, "cube.zarr")
    assert isinstance(back[SM].data, da.Array)
    assert isinstance(back["n_obs"].data, da.Array)
    assert back[SM].data.chunks == ds[SM].data.chunks
    assert back["n_obs"].dtype == np.int16
    xr.testing.assert_identical(back.compute(), ds.compute())


def test_template_then_regions_equals_one_shot_write(any_store: Store) -> None:
    ds = _dataset()
    write_zarr(ds, any_store, "whole.zarr")

    write_zarr(ds, any_store, "regions.zarr", compute=False)  # template: coords and metadata, no data
    template = open_zarr(any_store, "regions.zarr")
    assert np.isnan(template[SM].values).all()
    for half in (slice(0, 4), slice(4, 8)):
        part = ds.isel({TIME: half}).drop_vars([LAT, LON])
        write_zarr(part, any_store, "regions.zarr", mode="r+", region={TIME: half})

    whole = open_zarr(any_store, "whole.zarr").compute()
    regions = open_zarr(any_store, "regions.zarr").compute()
    xr.testing.assert_identical(regions, whole)


def test_region_auto_fills_one_chunk(any_store: Store) -> None:
    ds = _dataset()
    write_zarr(ds, any_store, "auto.zarr", compute=False)
    write_zarr(ds.isel({TIME: slice(4, 8)}), any_store, "auto.zarr", mode="r+", region="auto")
    back = open_zarr(any_store, "auto.zarr").compute()
    xr.testing.assert_identical(back.isel({TIME: slice(4, 8)}), ds.isel({TIME: slice(4, 8)}).compute())
    assert np.isnan(back[SM].isel({TIME: slice(0, 4)}).values).all()


def test_open_missing_zarr(any_store: Store) -> None:
    with pytest.raises(StoreError, match=r"no Zarr dataset at 'product/missing\.zarr'") as info:
        open_zarr(any_store, "product/missing.zarr")
    assert any_store.url in str(info.value)


def test_zarr_seen_by_a_fresh_store_object(any_store: Store) -> None:
    """What a writer (e.g. a worker) writes through zarr is found by a reader's own Store."""
    reader = Store.from_url(any_store.url, any_store.storage_options)
    assert not zarr_exists(reader, "late.zarr")
    write_zarr(_dataset(), any_store, "late.zarr")
    assert zarr_exists(reader, "late.zarr")
    assert "late.zarr" in reader.ls()


# ------------------------------------------------------------------ Parquet
def test_parquet_file_round_trip_keeps_dtypes(any_store: Store) -> None:
    df = _table()
    write_parquet(df, any_store, "insitu/daily.parquet")
    assert any_store.ls("insitu") == ["daily.parquet"]
    back = read_parquet(any_store, "insitu/daily.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert back["time"].dtype == np.dtype("datetime64[ns]")
    assert str(back["time_utc"].dtype.tz) == "UTC"


def test_parquet_partitioned_round_trip_keeps_dtypes(any_store: Store) -> None:
    df = _table()
    write_parquet(df, any_store, "training/table", partition_cols=["depth"])
    assert any_store.ls("training/table") == ["depth=10", "depth=20"]
    back = read_parquet(any_store, "training/table")
    assert list(back.columns) == list(df.columns)
    pd.testing.assert_frame_equal(_sorted(back), _sorted(df))


def test_parquet_partition_rewrite_replaces_only_that_partition(any_store: Store) -> None:
    df = _table()
    write_parquet(df, any_store, "t", partition_cols=["depth"])
    new10 = df[df["depth"] == 10].assign(sm=np.float32(0.5))
    write_parquet(new10, any_store, "t", partition_cols=["depth"])
    back = _sorted(read_parquet(any_store, "t"))
    expected = _sorted(pd.concat([new10, df[df["depth"] == 20]]))
    pd.testing.assert_frame_equal(back, expected)


def test_parquet_filters_and_columns(any_store: Store) -> None:
    df = _table()
    write_parquet(df, any_store, "one.parquet")
    write_parquet(df, any_store, "parts", partition_cols=["depth"])

    wet = read_parquet(any_store, "one.parquet", filters=[("sm", ">", 0.22)])
    assert sorted(wet["cell"]) == [2 * 10**9, 4 * 10**9]

    deep = read_parquet(any_store, "parts", filters=[("depth", "==", 20)], columns=["cell", "depth", "sm"])
    assert list(deep.columns) == ["cell", "depth", "sm"]
    assert deep["depth"].dtype == np.int16
    assert sorted(deep["cell"]) == [2 * 10**9, 3 * 10**9, 5 * 10**9]


def test_read_missing_parquet(any_store: Store) -> None:
    with pytest.raises(StoreError, match=r"no Parquet table at 'insitu/none\.parquet'"):
        read_parquet(any_store, "insitu/none.parquet")


def test_read_corrupt_parquet(any_store: Store) -> None:
    any_store.write_bytes("bad.parquet", b"this is not parquet")
    with pytest.raises(StoreError, match=r"cannot read Parquet 'bad\.parquet'"):
        read_parquet(any_store, "bad.parquet")


def test_error_inside_a_dask_task_keeps_its_type(tmp_path):
    """A computation that fails while writing is not disguised as a store failure."""
    import dask.array as da

    from smci_dask.io import Store, write_zarr

    def boom(block):
        raise ZeroDivisionError("bad block")

    arr = da.ones((4,), chunks=2).map_blocks(boom, dtype=float)
    ds = xr.Dataset({"a": (("t",), arr)})
    with pytest.raises(ZeroDivisionError, match="bad block"):
        write_zarr(ds, Store.from_url(str(tmp_path / "s")), "x.zarr")


def _chunk_heads_while_reading(monkeypatch: pytest.MonkeyPatch, zstore: object) -> int:
    """HEAD requests (s3fs ``_info``) of chunk keys while the array behind ``zstore`` is read whole."""
    import s3fs
    import zarr

    heads: list[str] = []
    info = s3fs.S3FileSystem._info

    async def counting_info(self, path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if "/c/" in path:
            heads.append(path)
        return await info(self, path, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(s3fs.S3FileSystem, "_info", counting_info)
        values = zarr.open_array(zstore, mode="r")[:]
    assert values.shape == (6, 4, 4) and float(values[5, 0, 0]) == 5.0
    return len(heads)


@pytest.mark.s3
def test_zarr_chunks_on_s3_are_read_with_one_request_each(s3_store, monkeypatch: pytest.MonkeyPatch) -> None:
    import zarr
    from zarr.storage import FsspecStore

    from smci_dask.io.arrays import zarr_fs_options, zarr_store

    url, opts = s3_store
    store = Store.from_url(url, opts)
    array = zarr.create_array(zarr_store(store, "a.zarr"), shape=(6, 4, 4), chunks=(1, 4, 4), dtype="f4")
    array[:] = np.arange(6, dtype="f4")[:, None, None] * np.ones((6, 4, 4), dtype="f4")
    # s3fs's defaults (max_concurrency 10) look at every chunk's size first; the stores' own options do not
    plain = FsspecStore.from_url(store.url_of("a.zarr"), storage_options={**store.fs_options, "skip_instance_cache": True}, read_only=True)
    assert _chunk_heads_while_reading(monkeypatch, plain) == 6
    assert _chunk_heads_while_reading(monkeypatch, zarr_store(store, "a.zarr", read_only=True)) == 0
    # a setting of the user's wins
    assert zarr_fs_options(Store.from_url(url, {**opts, "max_concurrency": 4}))["max_concurrency"] == 4
    assert "max_concurrency" not in zarr_fs_options(Store.from_url("memory://x/y"))
