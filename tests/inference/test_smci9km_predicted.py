"""The predicted 9 km product: covariates aggregated to 0.1 degree, the 1 km models on them, CF layout, the comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from smci_dask import conventions as cv
from smci_dask.covariates.lai import lai_for_days
from smci_dask.covariates.static import open_static_coarse
from smci_dask.errors import InputError
from smci_dask.features import FEATURE_NAMES, open_feature_sources
from smci_dask.features.coarse import coarse_features, coarse_mean, load_coarse_inputs
from smci_dask.inference import predict_product
from smci_dask.io import open_zarr
from smci_dask.models.store import load_model
from smci_dask.products.smci1km import quantise
from smci_dask.products.smci9km import aggregate_9km, compare_9km

if TYPE_CHECKING:
    from conftest import Trained  # tests/inference/conftest.py

ONE_KM = "product/p1"
PRED = "product/p9_pred"
MEAN = "product/p9_mean"


def _quiet(_: str) -> None:
    pass


def _footprints(trained: Trained) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Independently: the fine rows / columns whose centres lie within +- 0.05 degree of each coarse centre."""
    g = trained.grid
    out = []
    for i, clat in enumerate(g.coarse_lat):
        for j, clon in enumerate(g.coarse_lon):
            out.append((i, j, np.flatnonzero(np.abs(g.lat - clat) < 0.05 + 1e-9), np.flatnonzero(np.abs(g.lon - clon) < 0.05 + 1e-9)))
    return out


@pytest.fixture(scope="module")
def products(trained: Trained) -> dict[str, Any]:
    predict_product(trained.config(), trained.store, start=trained.days[0], end=trained.days[1], echo=_quiet, relpath=ONE_KM)
    pred = aggregate_9km(trained.store, trained.grid, relpath_1km=ONE_KM, relpath=PRED, echo=_quiet, method="predicted")
    mean = aggregate_9km(trained.store, trained.grid, relpath_1km=ONE_KM, relpath=MEAN, echo=_quiet, method="mean_of_1km")
    return {"pred": pred, "mean": mean}


def test_lai_and_static_aggregates_match_an_independent_computation(trained: Trained) -> None:
    sources = open_feature_sources(trained.store)
    static = sources.static.compute()
    land = np.asarray(static["land"].values, dtype=bool)
    lai = np.asarray(sources.lai.isel({cv.TIME8: slice(0, 3)}).values, dtype=np.float64)
    lai[:, 3, 4] = np.nan  # a gap is skipped, not averaged as zero
    got = coarse_mean(lai, land, trained.grid)
    coarse_static = open_static_coarse(trained.store).compute()
    for i, j, r, c in _footprints(trained):
        block = lai[:, r][:, :, c]
        m = land[np.ix_(r, c)]
        vals = [b[m & np.isfinite(b)] for b in block]
        want = [v.mean() if v.size else np.nan for v in vals]
        np.testing.assert_allclose(got[:, i, j], want, rtol=1e-6, equal_nan=True)
        if not m.any():
            continue
        sand = np.asarray(static["sand"].values)[np.ix_(r, c)][m]
        np.testing.assert_allclose(coarse_static["sand"].values[i, j], np.nanmean(sand), rtol=1e-5)
        classes, counts = np.unique(np.asarray(static["landcover"].values)[np.ix_(r, c)][m], return_counts=True)
        assert int(coarse_static["landcover"].values[i, j]) == int(classes[np.argmax(counts)])  # majority, ties: smallest
    assert np.isfinite(got).any()


def test_coarse_features_are_era5_as_is_and_the_aggregates(trained: Trained) -> None:
    sources = open_feature_sources(trained.store)
    day = pd.Timestamp(trained.days[0])
    inputs = load_coarse_inputs(trained.store, sources, trained.grid, pd.DatetimeIndex([day]))
    feats = coarse_features(inputs, trained.grid, pd.DatetimeIndex([day]))[0]
    assert feats.shape == (inputs.crow.size, len(FEATURE_NAMES)) and inputs.crow.size > 0
    col = {n: k for k, n in enumerate(FEATURE_NAMES)}
    era5 = sources.era5.sel({cv.TIME: slice(day - pd.Timedelta(days=6), day)}).compute()
    for name in ("t2m", "swvl1", "ssrd"):
        np.testing.assert_allclose(feats[:, col[name]], era5[name].values[-1][inputs.crow, inputs.ccol], rtol=1e-6)
    np.testing.assert_allclose(feats[:, col["tp_sum7"]], era5["tp"].values.sum(axis=0)[inputs.crow, inputs.ccol], rtol=1e-5, atol=1e-4)
    static_c = open_static_coarse(trained.store).compute()
    for name in ("sand", "elevation", "porosity"):
        np.testing.assert_allclose(feats[:, col[name]], static_c[name].values[inputs.crow, inputs.ccol], rtol=1e-6)
    land = np.asarray(sources.static["land"].values, dtype=bool)
    lai_all = sources.lai.compute()
    lai_c = lai_all.isel({cv.LAT: slice(0, len(trained.grid.coarse_lat)), cv.LON: slice(0, len(trained.grid.coarse_lon))}).copy(
        data=coarse_mean(lai_all.values, land, trained.grid)
    )
    want = lai_for_days(lai_c, [day]).values[0][inputs.crow, inputs.ccol]
    np.testing.assert_allclose(feats[:, col["lai"]], want, rtol=1e-5)


def test_predicted_9km_product_has_cf_layout_and_the_models_values(trained: Trained, products: dict[str, Any]) -> None:
    assert list(products["pred"]) == list(pd.date_range(*trained.days))
    raw = open_zarr(trained.store, PRED, mask_and_scale=False)
    sm = raw[cv.SM]
    assert sm.dims == (cv.TIME, cv.DEPTH, cv.LAT, cv.LON) and sm.dtype == np.int16
    assert sm.attrs["_FillValue"] == -999 and sm.attrs["scale_factor"] == cv.PRODUCT_SCALE
    assert sm.attrs["units"] == "m3 m-3" and sm.attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    assert sm.attrs["grid_mapping"] == "crs" and "lat_bnds" in raw.variables and "depth_bnds" in raw.variables
    assert raw.attrs["method_9km"] == "predicted" and raw.attrs["model_run"] == trained.run
    assert raw.attrs["complete_days"] == [list(trained.days)]
    # values: the models of each depth on the coarse features, quantised
    sources = open_feature_sources(trained.store)
    day = pd.Timestamp(trained.days[1])
    inputs = load_coarse_inputs(trained.store, sources, trained.grid, pd.DatetimeIndex([day]))
    feats = coarse_features(inputs, trained.grid, pd.DatetimeIndex([day]))[0]
    codes = sm.sel({cv.TIME: day}).values
    for k, depth in enumerate(cv.DEPTHS_CM):
        model = load_model(trained.store, trained.run, "final", depth)
        assert np.array_equal(codes[k][inputs.crow, inputs.ccol], quantise(model.predict(feats)))
    other = np.ones(codes.shape[1:], dtype=bool)
    other[inputs.crow, inputs.ccol] = False
    assert (codes[:, other] == -999).all()


def test_method_of_an_existing_9km_product_is_kept_and_a_conflict_is_refused(trained: Trained, products: dict[str, Any]) -> None:
    days = aggregate_9km(
        trained.store, trained.grid, relpath_1km=ONE_KM, relpath=PRED, start=trained.days[1], echo=_quiet
    )  # refresh's call
    assert open_zarr(trained.store, PRED).attrs["method_9km"] == "predicted" and len(days) == 1
    with pytest.raises(InputError, match="remove it"):
        aggregate_9km(trained.store, trained.grid, relpath_1km=ONE_KM, relpath=PRED, echo=_quiet, method="mean_of_1km")


def test_comparison_of_the_two_9km_products_against_each_other_and_the_truth(trained: Trained, products: dict[str, Any]) -> None:
    table = compare_9km(
        trained.store, trained.grid, pd.date_range(*trained.days), predicted=PRED, mean_of_1km=MEAN, truth_store=trained.world
    )
    assert set(table["pair"]) == {"predicted vs mean_of_1km", "predicted vs truth", "mean_of_1km vs truth"}
    assert len(table) == 30 and (table["n"] > 0).all()
    a = open_zarr(trained.store, PRED)[cv.SM].sel({cv.TIME: slice(*trained.days), cv.DEPTH: 10}).values
    b = open_zarr(trained.store, MEAN)[cv.SM].sel({cv.TIME: slice(*trained.days), cv.DEPTH: 10}).values
    ok = np.isfinite(a) & np.isfinite(b)
    row = table[(table["depth_cm"] == 10) & (table["pair"] == "predicted vs mean_of_1km")].iloc[0]
    assert row["bias"] == pytest.approx(np.mean(a[ok] - b[ok]), abs=1e-9)
    assert 0.0 <= row["ubrmse"] < 0.1


def test_both_9km_methods_as_cluster_tasks_equal_the_in_process_products(trained: Trained, products: dict[str, Any]) -> None:
    """Blocks of days are tasks on a client (worker processes, their own model caches): the stored codes are the same."""
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="2GiB") as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        for method, here in (("predicted", PRED), ("mean_of_1km", MEAN)):
            there = f"{here}_cluster"
            days = aggregate_9km(
                trained.store, trained.grid, relpath_1km=ONE_KM, relpath=there, echo=_quiet, method=method, block_days=1, client=client
            )
            assert list(days) == list(pd.date_range(*trained.days))
            a = open_zarr(trained.store, here, mask_and_scale=False)
            b = open_zarr(trained.store, there, mask_and_scale=False)
            np.testing.assert_array_equal(a[cv.SM].values, b[cv.SM].values)
            assert b.attrs["complete_days"] == a.attrs["complete_days"] and b.attrs["method_9km"] == method
    names = [str(t["key"]) for t in stream.data]
    n_days = len(pd.date_range(*trained.days))
    assert sum(n.startswith("smci9km-predicted_block-") for n in names) == n_days  # one task per block of one day
    assert sum(n.startswith("smci9km-mean_block-") for n in names) == n_days
