"""The `predict` stage of `smci run`: the last days the covariates hold -> product, map figure, (synthetic world) map-vs-truth."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from smci_dask.config import Config
from smci_dask.grid import grid_for
from smci_dask.inference.mapping import last_covered_days, predict_product, product_period
from smci_dask.io import Store


def predict_recent(
    cfg: Config,
    store: Store,
    *,
    n_days: int | None = None,
    truth_store: Store | None = None,
    client: Any = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Predict the last ``n_days`` (default ``inference.last_days``; None: all) days the ERA5-Land cube holds; figures for a summary.

    Writes ``product/smci_1km`` and ``product/smci_9km`` (``inference.product_9km``), the map of the last day at 10, 50 and 100 cm
    to ``reports/<run>/smci_1km_<YYYYMMDD>.png`` and, when ``truth_store`` (the
    synthetic world) is given, the whole-map scores against the truth beside
    ERA5-Land's to ``reports/<run>/map_vs_truth.csv`` (ubRMSE, R, RMSE, bias
    per depth over all land cells and predicted days), and the 9 km product of the other method beside it
    (``product/smci_9km_<method>``) with both against the truth averaged to 0.1 degree
    (``reports/<run>/smci_9km_methods.csv``).
    """
    from smci_dask.products.figures import write_product_day_figure

    days = last_covered_days(cfg, store, n_days or cfg.inference.last_days or len(product_period(cfg)))
    report = predict_product(cfg, store, start=days[0], end=days[-1], client=client, echo=echo)
    from smci_dask.products.smci9km import aggregate_9km

    grid = grid_for(cfg.region.name, cfg.region.bbox)
    method = cfg.inference.product_9km
    coarse_days = aggregate_9km(store, grid, start=days[0], end=days[-1], echo=echo, method=method)
    figure = write_product_day_figure(store, days[-1], f"reports/{report.run}/smci_1km_{days[-1]:%Y%m%d}.png")
    echo(f"[predict] map of {days[-1]:%Y-%m-%d} at 10, 50, 100 cm -> {figure}")
    out: dict[str, Any] = {
        "predicted days": f"{days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}",
        "predicted land cell-days": report.land_cell_days,
        "product map figure": figure,
        f"9 km days ({method})": len(coarse_days),
    }
    if truth_store is not None:
        from smci_dask.products.truth_scores import map_scores

        table = map_scores(store, truth_store, grid, days, layers=cfg.matching.layers)
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        store.write_text(f"reports/{report.run}/map_vs_truth.csv", buf.getvalue())
        wide = table.pivot(index="depth_cm", columns="source", values=["ubrmse", "r"])
        echo("[predict] whole map vs the synthetic truth (all land cells, predicted days): ubRMSE (m3/m3) and R")
        for depth, row in wide.iterrows():
            echo(
                f"[predict]   {int(depth):>3} cm  ours ubRMSE {row[('ubrmse', 'smci_1km')]:.4f} R {row[('r', 'smci_1km')]:.3f}"
                f"  |  ERA5-Land ubRMSE {row[('ubrmse', 'era5land')]:.4f} R {row[('r', 'era5land')]:.3f}"
            )
        better = int((wide[("ubrmse", "smci_1km")] < wide[("ubrmse", "era5land")]).sum())
        out["map beats ERA5-Land (ubRMSE), depths"] = f"{better}/{len(wide)}"
        out["9 km methods compared"] = _compare_9km_methods(store, grid, days, method, report.run, truth_store, echo)
    return out


def _compare_9km_methods(store: Store, grid: Any, days: Any, method: str, run: str, truth_store: Store, echo: Callable[[str], None]) -> str:
    """The other 9 km method into ``product/smci_9km_<method>`` and both against each other and the truth -> CSV path."""
    from smci_dask.products.smci9km import MEAN_OF_1KM_METHOD, PREDICTED_METHOD, PRODUCT_9KM_RELPATH, aggregate_9km, compare_9km

    other = MEAN_OF_1KM_METHOD if method == PREDICTED_METHOD else PREDICTED_METHOD
    side = f"{PRODUCT_9KM_RELPATH}_{other}"
    aggregate_9km(store, grid, start=days[0], end=days[-1], relpath=side, method=other, echo=echo)
    paths = {method: PRODUCT_9KM_RELPATH, other: side}
    table = compare_9km(
        store, grid, days, predicted=paths[PREDICTED_METHOD], mean_of_1km=paths[MEAN_OF_1KM_METHOD], truth_store=truth_store
    )
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    relpath = f"reports/{run}/smci_9km_methods.csv"
    store.write_text(relpath, buf.getvalue())
    wide = table.pivot(index="depth_cm", columns="pair", values="ubrmse")
    echo("[predict] 9 km products (0.1 degree) vs the truth averaged to 0.1 degree: ubRMSE (m3/m3)")
    for depth, row in wide.iterrows():
        echo(
            f"[predict]   {int(depth):>3} cm  predicted {row['predicted vs truth']:.4f}  mean_of_1km {row['mean_of_1km vs truth']:.4f}"
            f"  |  between them {row['predicted vs mean_of_1km']:.4f}"
        )
    return store.url_of(relpath)
