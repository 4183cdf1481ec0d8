"""``product/smci_9km``: the 0.1 degree product on ERA5-Land's grid, predicted (default) or the mean of the 1 km product.

``predicted`` (setting ``inference.product_9km``, the default): as SMCI1.0
does, the 1 km product's models predict from covariates aggregated to 0.1
degree (:mod:`smci_dask.features.coarse`: static layers averaged, land cover
majority, LAI averaged, ERA5-Land as is) on the land coarse cells
(:func:`predict_9km`). ``mean_of_1km``: the mean of the 1 km product over the land cells of each
coarse cell that hold a value (coarse cells as :class:`~smci_dask.grid.GridSpec`
defines them: ERA5-Land's centres, 12 x 12 fine cells, the 6 edge cells at the
east / south read the last column / row). Coarse cells without any such value
are fill. The mean is taken on the stored codes, ``rint(sum / count)`` (half
to even), so it is exact and reproducible. Same encoding as the 1 km product (int16 in 0.001 m3/m3, fill -999,
CF attributes), template first with the full time axis, one chunk per day;
the days written are those the 1 km product lists as complete, and its
``complete_days`` follows. Memory: one 1 km tile x ``block_days`` days at a
time. Recomputing a day gives the same values, so re-running is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.grid.spec import GridSpec
from smci_dask.io import Store, open_zarr, write_zarr, zarr_exists
from smci_dask.products.smci1km import (
    COMPLETE_DAYS_ATTR,
    PRODUCT_1KM_RELPATH,
    _bounds,
    _crs_attrs,
    _sm_encoding,
    day_ranges,
    dequantise,
    extend_time_axis,
    open_product,
    product_tile_size,
    quantise,
    ranges_to_days,
    set_complete_days,
)

PRODUCT_9KM_RELPATH: Final = "product/smci_9km"
#: How the 9 km values were made (root attribute ``aggregation``).
MEAN_OF_1KM: Final = "mean of the 1 km product over the land cells of each 0.1 degree cell"
PREDICTED: Final = (
    "predicted by the 1 km product's models from covariates aggregated to 0.1 degree "
    "(static layers averaged, land cover majority, LAI averaged over land cells, ERA5-Land as is)"
)
#: Root attribute naming the method, and its values (setting ``inference.product_9km``).
METHOD_ATTR: Final = "method_9km"
MEAN_OF_1KM_METHOD: Final = "mean_of_1km"
PREDICTED_METHOD: Final = "predicted"
METHODS_9KM: Final = (PREDICTED_METHOD, MEAN_OF_1KM_METHOD)


def coarse_means(
    codes: npt.NDArray[np.int16], grid: GridSpec, rows: slice, cols: slice
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sums and counts of the stored codes (days, depth, tile rows, tile cols; fill skipped) per coarse cell of the grid.

    Integer sums, so the mean ``sum / count`` is exact up to one rounding and
    independent of the order of the cells.
    """
    cr = grid.fine_to_coarse_rows()[rows]
    cc = grid.fine_to_coarse_cols()[cols]
    ncr, ncc = grid.coarse_shape
    key = (cr[:, None] * ncc + cc[None, :]).ravel()
    flat = codes.reshape(codes.shape[0] * codes.shape[1], -1).astype(np.int64)
    ok = flat != cv.PRODUCT_FILL
    sums = np.zeros((flat.shape[0], ncr * ncc), dtype=np.int64)
    counts = np.zeros((flat.shape[0], ncr * ncc), dtype=np.int64)
    for i in range(flat.shape[0]):  # one (day, depth) map at a time: bincount is vectorised over its cells
        counts[i] = np.bincount(key[ok[i]], minlength=ncr * ncc)
        sums[i] = np.bincount(key[ok[i]], weights=flat[i][ok[i]], minlength=ncr * ncc).round().astype(np.int64)
    shape = (*codes.shape[:2], ncr, ncc)
    return sums.reshape(shape), counts.reshape(shape)


def _template(
    grid: GridSpec, times: pd.DatetimeIndex, attrs: dict[str, Any], cell_methods: str = "area: mean where land"
) -> tuple[xr.Dataset, dict[str, Any]]:
    import dask.array as dsa

    ncr, ncc = grid.coarse_shape
    chunks = (1, len(cv.DEPTHS_CM), ncr, ncc)
    data = dsa.full((len(times), len(cv.DEPTHS_CM), ncr, ncc), np.nan, dtype=np.float32, chunks=(len(times), *chunks[1:]))
    half = 0.05
    ds = xr.Dataset(
        {cv.SM: ((cv.TIME, cv.DEPTH, cv.LAT, cv.LON), data)},
        coords={
            cv.TIME: times.values.astype("datetime64[ns]"),
            cv.DEPTH: np.asarray(cv.DEPTHS_CM, dtype=np.int32),
            cv.LAT: grid.coarse_lat,
            cv.LON: grid.coarse_lon,
            "depth_bnds": ((cv.DEPTH, "nv"), np.asarray(cv.DEPTH_BOUNDS_CM, dtype=np.int32)),
            "lat_bnds": ((cv.LAT, "nv"), _bounds(grid.coarse_lat, half)),
            "lon_bnds": ((cv.LON, "nv"), _bounds(grid.coarse_lon, half)),
            "crs": ((), np.int32(0), _crs_attrs()),
        },
        attrs=attrs,
    )
    ds[cv.SM].attrs = {
        "long_name": "Volumetric soil moisture of the layer (0.1 degree, ERA5-Land grid)",
        "standard_name": "volume_fraction_of_condensed_water_in_soil",
        "units": "m3 m-3",
        "grid_mapping": "crs",
        "cell_methods": cell_methods,
    }
    ds[cv.DEPTH].attrs = {"standard_name": "depth", "units": "cm", "positive": "down", "axis": "Z", "bounds": "depth_bnds"}
    ds[cv.LAT].attrs = {"standard_name": "latitude", "units": "degrees_north", "axis": "Y", "bounds": "lat_bnds"}
    ds[cv.LON].attrs = {"standard_name": "longitude", "units": "degrees_east", "axis": "X", "bounds": "lon_bnds"}
    ds[cv.TIME].attrs = {"standard_name": "time", "axis": "T"}
    encoding = {
        cv.SM: _sm_encoding(chunks),
        cv.TIME: {"units": f"days since {times[0]:%Y-%m-%d}", "calendar": "proleptic_gregorian", "dtype": "int32"},
    }
    return ds, encoding


def aggregate_9km(
    store: Store,
    grid: GridSpec,
    *,
    start: Any = None,
    end: Any = None,
    relpath_1km: str = PRODUCT_1KM_RELPATH,
    relpath: str = PRODUCT_9KM_RELPATH,
    block_days: int = 8,
    echo: Callable[[str], None] = print,
    method: str | None = None,
    client: Any = None,
) -> pd.DatetimeIndex:
    """Write the 9 km product for the complete 1 km days in ``start..end``; returns those days.

    Blocks of ``block_days`` days are independent tasks on ``client`` (else
    on the default client of this process, else run here one after another):
    each writes whole days (one chunk per day), and the product's
    ``complete_days`` moves once every block has been written.

    ``method``: ``"mean_of_1km"`` (the mean of the 1 km product) or
    ``"predicted"`` (the 1 km product's models on covariates aggregated to 0.1
    degree, :func:`predict_9km`). None (what the refresh passes): the method
    of the existing 9 km product, else ``"mean_of_1km"``. Asking for another
    method than an existing product's is an error (remove it first).
    """
    fine = open_zarr(store, relpath_1km, mask_and_scale=False)  # the stored codes: means are taken on them exactly
    times = pd.DatetimeIndex(fine[cv.TIME].values)
    complete = ranges_to_days(fine.attrs.get(COMPLETE_DAYS_ATTR, []))
    first = pd.Timestamp(start) if start is not None else times[0]
    last = pd.Timestamp(end) if end is not None else times[-1]
    days = complete[(complete >= first) & (complete <= last)]
    if not len(days):
        raise InputError(
            f"product {store.url_of(relpath_1km)} holds no complete day in {first:%Y-%m-%d}..{last:%Y-%m-%d}; run `smci predict` first"
        )
    exists = zarr_exists(store, relpath)
    have = str(open_product(store, relpath).attrs.get(METHOD_ATTR, MEAN_OF_1KM_METHOD)) if exists else None
    method = method or have or MEAN_OF_1KM_METHOD
    if method not in METHODS_9KM:
        raise InputError(f"9 km method {method!r} is unknown; use one of {METHODS_9KM} (setting inference.product_9km)")
    if have is not None and have != method:
        raise InputError(
            f"{store.url_of(relpath)} was made by {have!r}, not {method!r}; remove it to rebuild it, or set inference.product_9km: {have}"
        )
    if method == PREDICTED_METHOD:
        return predict_9km(
            store, grid, fine.attrs, times, days, relpath_1km=relpath_1km, relpath=relpath, block_days=block_days, echo=echo, client=client
        )
    if not exists:
        attrs = {k: v for k, v in fine.attrs.items() if k != COMPLETE_DAYS_ATTR}
        attrs.update(
            {
                "aggregation": MEAN_OF_1KM,
                METHOD_ATTR: MEAN_OF_1KM_METHOD,
                "source_product": store.url_of(relpath_1km),
                COMPLETE_DAYS_ATTR: [],
            }
        )
        template, encoding = _template(grid, times, attrs)
        write_zarr(template, store, relpath, mode="w-", encoding=encoding, compute=False)
    else:
        extend_time_axis(store, relpath, times)  # the 1 km axis grew (a refresh past its end): follow it
    tile_size = product_tile_size(fine)
    blocks = [days[k : k + block_days] for k in range(0, len(days), block_days)]
    _map_blocks(
        _mean_block,
        [(store, grid, relpath_1km, relpath, times, block, tile_size) for block in blocks],
        client,
        lambda block: echo(f"[9km] {block[0]:%Y-%m-%d}..{block[-1]:%Y-%m-%d}: {len(block)} day(s) -> {store.url_of(relpath)}"),
    )
    done = ranges_to_days(open_product(store, relpath).attrs.get(COMPLETE_DAYS_ATTR, [])).union(days)
    set_complete_days(store, relpath, done)
    return days


def predict_9km(
    store: Store,
    grid: GridSpec,
    fine_attrs: dict[str, Any],
    times: pd.DatetimeIndex,
    days: pd.DatetimeIndex,
    *,
    relpath_1km: str = PRODUCT_1KM_RELPATH,
    relpath: str = PRODUCT_9KM_RELPATH,
    block_days: int = 8,
    echo: Callable[[str], None] = print,
    client: Any = None,
) -> pd.DatetimeIndex:
    """The 9 km product of ``days`` predicted by the 1 km product's models from covariates at 0.1 degree (SMCI1.0's way).

    The models are those the 1 km product's provenance names (``model_run``,
    ``model_experiment``, ``model_checksums``: checked), the features those of
    :mod:`smci_dask.features.coarse`, the cells the land coarse cells with
    ERA5-Land values; other cells are fill. Same encoding and CF attributes
    as the mean-of-1 km product. Blocks of days are tasks as in
    :func:`aggregate_9km`; the models reach each worker once (the worker's
    model cache, :func:`smci_dask.inference.tasks.load_run_models`). Memory
    per task: one block of ``block_days`` coarse maps, one day's features,
    and one LAI composite of the fine grid at a time.
    """
    run, experiment = fine_attrs.get("model_run"), fine_attrs.get("model_experiment")
    checksums = {int(d): str(s) for d, s in dict(fine_attrs.get("model_checksums", {})).items()}
    if not run or not experiment or not checksums:
        raise InputError(
            f"product {store.url_of(relpath_1km)} names no model run (attributes model_run, model_checksums); run `smci predict` again"
        )
    if not zarr_exists(store, relpath):
        attrs = {k: v for k, v in fine_attrs.items() if k != COMPLETE_DAYS_ATTR}
        attrs.update(
            {"aggregation": PREDICTED, METHOD_ATTR: PREDICTED_METHOD, "source_product": store.url_of(relpath_1km), COMPLETE_DAYS_ATTR: []}
        )
        template, encoding = _template(grid, times, attrs, cell_methods="area: mean where land (covariates); predicted")
        write_zarr(template, store, relpath, mode="w-", encoding=encoding, compute=False)
    else:
        extend_time_axis(store, relpath, times)
    blocks = [days[k : k + block_days] for k in range(0, len(days), block_days)]
    _map_blocks(
        _predicted_block,
        [(store, grid, relpath, times, block, str(run), str(experiment), checksums) for block in blocks],
        client,
        lambda block: echo(
            f"[9km] {block[0]:%Y-%m-%d}..{block[-1]:%Y-%m-%d}: {len(block)} day(s) predicted at 0.1 degree -> {store.url_of(relpath)}"
        ),
    )
    done = ranges_to_days(open_product(store, relpath).attrs.get(COMPLETE_DAYS_ATTR, [])).union(days)
    set_complete_days(store, relpath, done)
    return days


# ------------------------------------------------------------------ blocks of days: the tasks
def _write_days(store: Store, relpath: str, times: pd.DatetimeIndex, block: pd.DatetimeIndex, values: npt.NDArray[np.float32]) -> None:
    """Write ``values`` (days of ``block``, depth, coarse rows, coarse cols; m3/m3) as chunk-aligned region writes."""
    for run_days in day_ranges(block):  # contiguous runs (one chunk per day)
        idx = pd.date_range(run_days[0], run_days[1], freq="D")
        at = block.get_indexer(idx)
        t0 = int(times.get_loc(idx[0]))
        piece = xr.Dataset({cv.SM: ((cv.TIME, cv.DEPTH, cv.LAT, cv.LON), values[at])})
        write_zarr(piece, store, relpath, mode="r+", region={cv.TIME: slice(t0, t0 + len(idx))})


def _mean_block(
    store: Store, grid: GridSpec, relpath_1km: str, relpath: str, times: pd.DatetimeIndex, block: pd.DatetimeIndex, tile_size: int
) -> pd.DatetimeIndex:
    """One block of days of the mean-of-1 km product, 1 km tile by tile (exact on the stored codes)."""
    fine = open_zarr(store, relpath_1km, mask_and_scale=False)
    ncr, ncc = grid.coarse_shape
    sums = np.zeros((len(block), len(cv.DEPTHS_CM), ncr, ncc), dtype=np.int64)
    counts = np.zeros(sums.shape, dtype=np.int64)
    for tile in grid.tiles(tile_size):
        codes = np.asarray(fine[cv.SM].sel({cv.TIME: block}).isel({cv.LAT: tile.rows, cv.LON: tile.cols}).values, dtype=np.int16)
        s, c = coarse_means(codes, grid, tile.rows, tile.cols)
        sums += s
        counts += c
    mean_codes = np.where(counts > 0, np.rint(sums / np.maximum(counts, 1)), cv.PRODUCT_FILL).astype(np.int16)
    _write_days(store, relpath, times, block, dequantise(mean_codes))  # through the CF encoding: stores exactly mean_codes
    return block


def _predicted_block(
    store: Store,
    grid: GridSpec,
    relpath: str,
    times: pd.DatetimeIndex,
    block: pd.DatetimeIndex,
    run: str,
    experiment: str,
    checksums: dict[int, str],
) -> pd.DatetimeIndex:
    """One block of days of the predicted 9 km product: coarse inputs read once, features a day at a time, every depth."""
    from smci_dask.features.build import open_feature_sources
    from smci_dask.features.coarse import coarse_features, load_coarse_inputs
    from smci_dask.inference.tasks import load_run_models

    models = load_run_models(store, run, experiment, checksums)
    inputs = load_coarse_inputs(store, open_feature_sources(store), grid, block)
    depths = [int(d) for d in cv.DEPTHS_CM]
    coarse = np.full((len(block), len(depths), *grid.coarse_shape), np.nan, dtype=np.float32)
    for i, day in enumerate(block):
        feats = coarse_features(inputs, grid, pd.DatetimeIndex([day]))[0]
        for j, depth in enumerate(depths):
            coarse[i, j, inputs.crow, inputs.ccol] = dequantise(quantise(models[depth].predict(feats)))
    _write_days(store, relpath, times, block, coarse)
    return block


def _map_blocks(
    fn: Callable[..., pd.DatetimeIndex], calls: list[tuple[Any, ...]], client: Any, done: Callable[[pd.DatetimeIndex], None]
) -> None:
    """``fn(*args)`` for each ``args`` of ``calls`` (one block of days each): tasks on the active client, else here in turn.

    ``done`` gets each finished block (progress lines).
    """
    from smci_dask.cluster import active_client

    client = active_client(client)
    if client is None:
        for args in calls:
            done(fn(*args))
        return
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = [client.submit(fn, *args, key=f"smci9km-{fn.__name__.strip('_')}-{i}-{token}", pure=False) for i, args in enumerate(calls)]
    try:
        for future in as_completed(futures):
            done(future.result())
    finally:
        for future in futures:
            if not future.done():
                future.cancel()


def compare_9km(
    store: Store,
    grid: GridSpec,
    days: Any,
    *,
    predicted: str,
    mean_of_1km: str,
    truth_store: Store | None = None,
) -> pd.DataFrame:
    """How the two 9 km products differ, per depth, over the coarse cells both hold on ``days``.

    Rows (depth_cm, pair): ``predicted vs mean_of_1km`` (the first as
    estimate, the second as reference) and, with ``truth_store`` (the
    synthetic world), each product against the truth averaged to 0.1 degree
    over the land fine cells of each footprint (:func:`smci_dask.features.coarse.coarse_mean`).
    Columns ``n`` and ubrmse, r, rmse, bias (m3/m3; r dimensionless).
    """
    from smci_dask.evaluation.metrics import scores
    from smci_dask.features.build import open_feature_sources
    from smci_dask.features.coarse import coarse_mean
    from smci_dask.products.truth_scores import MAP_METRICS, TRUTH_RELPATH

    days = pd.DatetimeIndex(days).normalize()
    a = open_product(store, predicted)[cv.SM].sel({cv.TIME: days})
    b = open_product(store, mean_of_1km)[cv.SM].sel({cv.TIME: days})
    truth = open_zarr(truth_store, TRUTH_RELPATH)[cv.SM_TRUTH].sel({cv.TIME: days}) if truth_store is not None else None
    land = np.asarray(open_feature_sources(store).static["land"].values, dtype=bool) if truth is not None else None
    rows: list[dict[str, Any]] = []
    for depth in cv.DEPTHS_CM:
        va = np.asarray(a.sel({cv.DEPTH: depth}).values, dtype=np.float64)
        vb = np.asarray(b.sel({cv.DEPTH: depth}).values, dtype=np.float64)
        both = np.isfinite(va) & np.isfinite(vb)
        pairs = [(f"{PREDICTED_METHOD} vs {MEAN_OF_1KM_METHOD}", va, vb)]
        if truth is not None:
            t = coarse_mean(np.asarray(truth.sel({cv.DEPTH: depth}).values), land, grid).astype(np.float64)
            both &= np.isfinite(t)
            pairs += [(f"{PREDICTED_METHOD} vs truth", va, t), (f"{MEAN_OF_1KM_METHOD} vs truth", vb, t)]
        for name, est, ref in pairs:
            rows.append({"depth_cm": int(depth), "pair": name, **scores(est[both], ref[both], names=list(MAP_METRICS))})
    out = pd.DataFrame(rows)
    out["n"] = out["n"].astype(np.int64)
    return out
