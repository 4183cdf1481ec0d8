"""`smci evaluate`: the year-to-year and station-to-station experiments, scores, importance, figures, report.

For each experiment (:mod:`smci_dask.evaluation.experiments`):

1. split the training table's rows (test years / test station cells);
2. re-match the in-situ targets with matching statistics of the training
   rows only (:func:`~smci_dask.evaluation.experiments.rematch`);
3. train every depth on the training rows through
   :func:`smci_dask.pipeline.train.train_experiment` (its own search, or the
   parameters of the run's final models with ``experiments.reuse_params:
   final``); models go to ``models/<run>/<experiment>/<depth>cm``;
4. predict the test rows; take ERA5-Land soil moisture of the matching layer
   at the same rows (the baseline) and every extra product of
   ``evaluation.products`` sampled at the same cells and days;
5. permutation importance per depth on the test rows, and the models' own
   split/gain importance.

Then every score (:mod:`smci_dask.evaluation.scoring`) and the report
(``reports/<run>/``: ``evaluation.md``, ``metrics.csv``, ``metrics.json``,
``stations.csv``, ``importance.csv``, ``predictions.parquet``, PNG figures).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import numpy as np
import pandas as pd

from smci_dask import conventions as cv
from smci_dask.cluster import active_client
from smci_dask.config import Config
from smci_dask.covariates.era5land_store import open_era5land_daily
from smci_dask.errors import ConfigError, InputError
from smci_dask.evaluation import figures as fig
from smci_dask.evaluation.experiments import (
    EXPERIMENTS,
    Split,
    era5_at_table,
    era5_baseline,
    rematch,
    station_split,
    year_split,
)
from smci_dask.evaluation.importance import model_importance, permutation_importance
from smci_dask.evaluation.products import open_product, sample_product
from smci_dask.evaluation.report import headline, headline_text, metrics_json, render_markdown, report_dir
from smci_dask.evaluation.scoring import score_predictions, station_scores
from smci_dask.features.build import FEATURE_NAMES
from smci_dask.grid import grid_for
from smci_dask.io import Store, store_from_config, write_parquet
from smci_dask.models.store import load_model, model_dir
from smci_dask.training.table import load_training_table

Echo = Callable[[str], None]

ERA5_RELPATH: Final = "covariates/era5land"
#: The final models' experiment name (``smci train``), whose parameters ``reuse_params: final`` takes.
FINAL_EXPERIMENT: Final = "final"
OURS: Final = "smci"
BASELINE: Final = "era5land"


@dataclass
class EvaluationReport:
    """What :func:`evaluate` did; ``scores`` is every metric (also in ``metrics.csv``)."""

    run: str
    experiments: list[str]
    report: str
    scores: pd.DataFrame
    counts: pd.DataFrame
    written: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def headline(self) -> pd.DataFrame:
        """ubRMSE and R per depth, ours vs ERA5-Land, per experiment (matched targets)."""
        return headline(self.scores)

    def summary(self) -> str:
        return "\n".join(
            [
                f"evaluation of run {self.run!r} ({', '.join(self.experiments)}) in {self.seconds:.0f} s",
                "ubRMSE (m3/m3) and R against matched in-situ targets, ours vs ERA5-Land:",
                headline_text(self.scores),
                f"report: {self.report}",
            ]
        )


# ------------------------------------------------------------------ pieces
def _split(cfg: Config, table: pd.DataFrame, name: str) -> Split:
    if name == "year":
        return year_split(table, cfg.experiments.year.test_years, tuple(cfg.years) if cfg.years else None)  # type: ignore[arg-type]
    if name == "station":
        return station_split(table, cfg.experiments.station.train_fraction, cfg.experiments.station.seed)
    raise ConfigError(f"experiment {name!r} is unknown; use one of {', '.join(EXPERIMENTS)} or all")


def _final_params(store: Store, run: str, depths: Sequence[int]) -> dict[int, dict[str, int]]:
    """Parameters of the run's final models (``params.json`` of each depth) where they exist."""
    out: dict[int, dict[str, int]] = {}
    for d in depths:
        path = f"{model_dir(run, FINAL_EXPERIMENT, d)}/params.json"
        if store.exists(path):
            p = json.loads(store.read_text(path))
            out[int(d)] = {"max_features": int(p["max_features"]), "min_samples_leaf": int(p["min_samples_leaf"])}
    return out


def _sample_products(cfg: Config, table: pd.DataFrame, echo: Echo) -> dict[str, np.ndarray]:
    out = {}
    for name, spec in cfg.evaluation.products.items():
        if name in (OURS, BASELINE):
            raise ConfigError(f"evaluation.products.{name}: the names {OURS!r} and {BASELINE!r} are taken; rename the product")
        echo(f"[evaluate] sampling product {name!r} ({spec.url}) at {table['cell_id'].nunique()} station cells")
        ds = open_product(spec.url, storage_options=spec.storage_options or None)
        out[name] = sample_product(
            ds,
            spec.variable,
            table["lat"].to_numpy(),
            table["lon"].to_numpy(),
            table[cv.TIME].to_numpy(),
            table["depth_cm"].to_numpy(),
            depth_map=spec.depth_map,
            depth_dim=spec.depth_dim,
            depth_index=spec.depth_index,
            scale=spec.scale,
            url=spec.url,
        )
    return out


def _predictions(
    exp_table: pd.DataFrame, split: Split, name: str, models: Mapping[int, Any], baseline: np.ndarray, products: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    test = exp_table.loc[split.test]
    pred = pd.DataFrame(
        {
            "experiment": name,
            "cell_id": test["cell_id"].to_numpy(np.int64),
            "row": test["row"].to_numpy(np.int64),
            "col": test["col"].to_numpy(np.int64),
            "lat": test["lat"].to_numpy(np.float64),
            "lon": test["lon"].to_numpy(np.float64),
            "depth_cm": test["depth_cm"].to_numpy(np.int64),
            cv.TIME: test[cv.TIME].to_numpy("datetime64[ns]"),
            "year": test["year"].to_numpy(np.int64),
            "climate_zone": test["climate_zone"].to_numpy(np.int64),
            "obs_matched": test["sm_matched"].to_numpy(np.float64),
            "obs_raw": test["sm_raw"].to_numpy(np.float64),
            OURS: np.nan,
            BASELINE: baseline[split.test],
            "tp": test["tp"].to_numpy(np.float64),
        }
    )
    for pname, values in products.items():
        pred[pname] = values[split.test]
    X = test[list(FEATURE_NAMES)].to_numpy(np.float64)
    depth = pred["depth_cm"].to_numpy()
    ours = np.full(len(pred), np.nan)
    for d, ens in models.items():
        sel = depth == d
        if sel.any():
            ours[sel] = ens.predict(X[sel])
    pred[OURS] = ours
    return pred[np.isin(depth, list(models))].reset_index(drop=True)


def _depth_permutation(
    store: Store, run: str, name: str, depth: int, X: np.ndarray, y: np.ndarray, repeats: int, seed: int
) -> pd.DataFrame:
    """Permutation importance of one depth's model (a cluster task: the model is read from the store there)."""
    ens = load_model(store, run, name, depth, features=FEATURE_NAMES)
    return permutation_importance(ens.predict, X, y, repeats=repeats, seed=seed)


def _importance(
    cfg: Config,
    store: Store,
    run: str,
    name: str,
    pred_X: pd.DataFrame,
    models: Mapping[int, Any],
    echo: Echo,
    client: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Permutation importance per depth (one cluster task per depth when there is a client) and the members' own."""
    ev = cfg.evaluation
    jobs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    own = []
    for d, ens in models.items():
        rows = pred_X[(pred_X["depth_cm"] == d) & np.isfinite(pred_X["sm_matched"])]
        if len(rows) < 10:
            continue
        if len(rows) > ev.importance_rows:
            rows = rows.sample(ev.importance_rows, random_state=ev.seed)
        jobs[int(d)] = (rows[list(FEATURE_NAMES)].to_numpy(np.float64), rows["sm_matched"].to_numpy(np.float64))
        m = model_importance(ens.members, ens.weights, FEATURE_NAMES)
        m.insert(0, "depth", int(d))
        m.insert(0, "experiment", name)
        own.append(m)
    reps, seed = ev.importance_repeats, ev.seed
    if client is not None and jobs:
        futures = [
            client.submit(_depth_permutation, store, run, name, d, X, y, reps, seed, key=f"importance-{name}-{d}cm-{run}", pure=False)
            for d, (X, y) in jobs.items()
        ]
        tables = client.gather(futures)
    else:
        tables = [permutation_importance(models[d].predict, X, y, repeats=reps, seed=seed) for d, (X, y) in jobs.items()]
    perm = []
    for d, p in zip(jobs, tables, strict=True):
        p.insert(0, "depth", d)
        p.insert(0, "experiment", name)
        perm.append(p)
    echo(f"[evaluate] {name}: permutation importance on {len(perm)} depth(s), {ev.importance_repeats} repeats")
    return (pd.concat(perm, ignore_index=True) if perm else pd.DataFrame(), pd.concat(own, ignore_index=True) if own else pd.DataFrame())


# ------------------------------------------------------------------ the experiments
def run_experiment(
    cfg: Config,
    store: Store,
    table: pd.DataFrame,
    era5_rows: pd.DataFrame,
    baseline: np.ndarray,
    products: Mapping[str, np.ndarray],
    *,
    name: str,
    run: str,
    client: Any = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """One experiment: split, re-match, train, predict, importance. Returns its predictions, counts and importance."""
    from smci_dask.pipeline.train import train_experiment

    split = _split(cfg, table, name)
    echo(f"[evaluate] {name}: {split.description}")
    exp_table, stats = rematch(table, era5_rows, split.train, layers=dict(cfg.matching.layers))
    target_ok = np.isfinite(exp_table["sm_matched"].to_numpy())
    train_rows = exp_table.loc[split.train & target_ok]
    test_depths = set(exp_table.loc[split.test & target_ok, "depth_cm"].astype(int))
    depths = sorted(set(train_rows["depth_cm"].astype(int)) & test_depths)
    if not depths:
        raise InputError(
            f"experiment {name}: no depth has matched targets on both the training and the test side; check the split settings"
        )
    params: dict[int, dict[str, int]] | None = None
    if cfg.experiments.reuse_params == "final":
        params = _final_params(store, run, depths)
        echo(f"[evaluate] {name}: reusing the final models' parameters for {sorted(params) or 'no'} depth(s); searching the others")
    t0 = time.perf_counter()
    train_experiment(cfg, store, run=run, experiment=name, table=train_rows, depths=depths, params=params or None, client=client, echo=echo)
    echo(f"[evaluate] {name}: models of {len(depths)} depth(s) in {time.perf_counter() - t0:.1f} s")
    models = {d: load_model(store, run, name, d, features=FEATURE_NAMES) for d in depths}
    t0 = time.perf_counter()
    pred = _predictions(exp_table, split, name, models, baseline, products)
    echo(f"[evaluate] {name}: {len(pred)} test rows predicted in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    perm, own = _importance(cfg, store, run, name, exp_table.loc[split.test], models, echo, active_client(client))
    echo(f"[evaluate] {name}: importance in {time.perf_counter() - t0:.1f} s")
    counts = {
        "experiment": name,
        **split.counts(table),
        "depths": len(depths),
        "test_rows_scored": int(np.isfinite(pred["obs_matched"]).sum()),
    }
    counts["series_matched_on_own_rows"] = int((~stats["from_training"] & stats["valid"]).sum())
    return {"split": split, "predictions": pred, "permutation": perm, "model_importance": own, "counts": counts}


def _previous(store: Store, run: str) -> dict[str, Any] | None:
    """The newest other run's ``metrics.json`` (by its creation time)."""
    root = "reports"
    if not store.exists(root):
        return None
    best: dict[str, Any] | None = None
    for entry in store.ls(root):
        other = entry.rstrip("/").rsplit("/", 1)[-1]
        path = f"{root}/{other}/metrics.json"
        if other == run or not store.exists(path):
            continue
        try:
            data = json.loads(store.read_text(path))
        except json.JSONDecodeError:
            continue
        if best is None or str(data.get("created", "")) > str(best.get("created", "")):
            best = data
    return best


def evaluate(
    cfg: Config,
    store: Store | None = None,
    *,
    experiments: Sequence[str] = EXPERIMENTS,
    run: str | None = None,
    table: pd.DataFrame | None = None,
    client: Any = None,
    echo: Echo = print,
) -> EvaluationReport:
    """Run the experiments, score them and write ``reports/<run>/`` (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Settings: region, matching layers, ``experiments``, ``evaluation``, ``model``.
    store : Store, optional
        Store root with the training table and the ERA5-Land cube; default ``cfg.store``.
    experiments : sequence of {'year', 'station'}
        Experiments to run, in order.
    run : str, optional
        Run name (models/<run>/<experiment>, reports/<run>); default ``model.run``,
        else the newest training run in the store, else a new UTC timestamp.
    table : pandas.DataFrame, optional
        The training table; default ``training/table`` of the store.
    client : distributed.Client, optional
        For the searches and refits.
    echo : callable
        Progress lines.
    """
    from smci_dask.pipeline.train import latest_run, new_run_id

    t0 = time.perf_counter()
    store = store if store is not None else store_from_config(cfg)
    names = list(dict.fromkeys(experiments))
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names:
        raise ConfigError(f"experiments {unknown or names} unknown; use {', '.join(EXPERIMENTS)} (or all)")
    run = run or cfg.model.run or latest_run(store) or new_run_id(cfg)
    grid = grid_for(cfg.region.name, cfg.region.bbox)
    table = load_training_table(store) if table is None else table
    table = table[np.isfinite(table["sm_raw"].to_numpy(dtype=np.float64))].reset_index(drop=True)
    if table.empty:
        raise InputError(f"the training table in {store.url} has no rows with in-situ targets; run `smci table` first")
    layers = dict(cfg.matching.layers)
    echo(f"[evaluate] run {run!r}: {len(table)} table rows, {table['cell_id'].nunique()} station cells; ERA5-Land at the cells")
    era5_rows = era5_at_table(open_era5land_daily(store, ERA5_RELPATH), grid, table, layers)
    baseline = era5_baseline(table, era5_rows, layers)
    products = _sample_products(cfg, table, echo)

    results = [run_experiment(cfg, store, table, era5_rows, baseline, products, name=n, run=run, client=client, echo=echo) for n in names]
    pred = pd.concat([r["predictions"] for r in results], ignore_index=True)
    estimates = [OURS, BASELINE, *products]
    echo(f"[evaluate] scoring {len(pred)} test rows ({', '.join(estimates)}), bootstrap {cfg.evaluation.bootstrap} draws")
    t1 = time.perf_counter()
    scores = score_predictions(pred, estimates, bootstrap=cfg.evaluation.bootstrap, seed=cfg.evaluation.seed)
    stations = station_scores(pred, estimates)
    echo(f"[evaluate] scored in {time.perf_counter() - t1:.1f} s")
    perm = pd.concat([r["permutation"] for r in results], ignore_index=True)
    own = pd.concat([r["model_importance"] for r in results], ignore_index=True)
    counts = pd.DataFrame([r["counts"] for r in results])
    t1 = time.perf_counter()
    written = _write_report(
        cfg, store, run, names, table, pred, scores, stations, perm, own, counts, list(products), grid.bbox, active_client(client)
    )
    n_png = sum(str(w).endswith(".png") for w in written)
    echo(f"[evaluate] report, tables and {n_png} figure(s) written in {time.perf_counter() - t1:.1f} s")
    report = EvaluationReport(run, names, store.url_of(report_dir(run), "evaluation.md"), scores, counts, written, time.perf_counter() - t0)
    echo(report.summary())
    return report


# ------------------------------------------------------------------ report
#: pyplot keeps process-wide state: one figure at a time per process (a worker may run several tasks in threads).
_PYPLOT_LOCK = threading.Lock()


def _draw(func: Callable[..., bytes], *args: Any) -> bytes:
    """``func(*args)`` (a figure function of :mod:`smci_dask.evaluation.figures`) under this process's pyplot lock."""
    with _PYPLOT_LOCK:
        return func(*args)


class _Figures:
    """The report's figures, drawn as cluster tasks when there is a client (its workers are idle by then), else here.

    :meth:`add` takes ``(function, *args)`` returning PNG bytes; :meth:`write`
    writes them in the order added and returns ``(name, caption)`` pairs.
    """

    def __init__(self, client: Any = None) -> None:
        self.client = client
        self.items: list[tuple[str, Any, str]] = []

    def share(self, frame: pd.DataFrame) -> Any:
        """``frame`` as an argument of several figures: sent to the cluster once."""
        return frame if self.client is None else self.client.scatter(frame, hash=False)

    def add(self, name: str, call: tuple[Any, ...], caption: str) -> None:
        func, *args = call
        self.items.append((name, func(*args) if self.client is None else self.client.submit(_draw, func, *args, pure=False), caption))

    def write(self, store: Store, folder: str) -> list[tuple[str, str]]:
        futures = [data for _, data, _ in self.items if not isinstance(data, bytes)]
        done = iter(self.client.gather(futures)) if futures else iter(())
        for name, data, _ in self.items:
            store.write_bytes(f"{folder}/{name}", data if isinstance(data, bytes) else next(done))
        return [(name, caption) for name, _, caption in self.items]


def _write_report(
    cfg: Config,
    store: Store,
    run: str,
    names: Sequence[str],
    table: pd.DataFrame,
    pred: pd.DataFrame,
    scores: pd.DataFrame,
    stations: pd.DataFrame,
    perm: pd.DataFrame,
    own: pd.DataFrame,
    counts: pd.DataFrame,
    products: Sequence[str],
    bbox: Sequence[float],
    client: Any = None,
) -> list[str]:
    folder = report_dir(run)
    previous = _previous(store, run)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    estimates = [OURS, BASELINE, *products]
    drawn = _Figures(client)
    put = drawn.add

    put("metric_by_depth.png", (fig.metric_by_depth, scores), "ubRMSE, R and bias by depth: ours vs ERA5-Land and extra products")
    for exp in names:
        p = pred[pred["experiment"] == exp]
        if p.empty:
            continue
        shared = drawn.share(p)
        put(
            f"scatter_{exp}.png",
            (fig.station_mean_scatter, shared, estimates, f"{exp}: per-station means"),
            f"{exp}: per-station mean estimate vs observation",
        )
        put(
            f"distributions_{exp}.png",
            (fig.distributions, shared, estimates, f"{exp}: frequency distributions"),
            f"{exp}: distributions of estimates and observations",
        )
        st = stations[(stations["experiment"] == exp) & (stations["estimate"] == OURS)]
        if not st.empty:
            put(
                f"map_ubrmse_{exp}.png",
                (fig.station_map, st, "ubrmse", f"{exp}: per-station ubRMSE (ours)", bbox),
                f"{exp}: map of per-station ubRMSE",
            )
            put(f"map_r_{exp}.png", (fig.station_map, st, "r", f"{exp}: per-station R (ours)", bbox), f"{exp}: map of per-station R")
            put(
                f"map_bias_{exp}.png",
                (fig.station_map, st, "bias", f"{exp}: per-station bias (ours)", bbox),
                f"{exp}: map of per-station bias",
            )
        stz = stations[(stations["experiment"] == exp) & stations["estimate"].isin([OURS, BASELINE])]
        if not stz.empty:
            put(
                f"violins_{exp}.png",
                (partial(fig.violins_by_zone, title=f"{exp}: per-station ubRMSE by climate zone"), stz, "ubrmse"),
                f"{exp}: ubRMSE by climate zone",
            )
        shallow = int(p["depth_cm"].min())
        sp = p[p["depth_cm"] == shallow]
        busiest = sp.groupby("cell_id")["obs_matched"].count().sort_values(ascending=False).index[:2]
        for i, cell in enumerate(busiest):
            one = sp[sp["cell_id"] == cell].sort_values(cv.TIME)
            prec = pd.Series(one["tp"].to_numpy(), index=pd.DatetimeIndex(one[cv.TIME]))
            title = f"{exp}: station cell {int(cell)} ({one['lat'].iloc[0]:.3f} N, {one['lon'].iloc[0]:.3f} E), {shallow} cm"
            put(
                f"series_{exp}_{i + 1}.png",
                (fig.time_series, one, estimates, prec, title),
                f"{exp}: time series at a sample station ({shallow} cm)",
            )
        pe = perm[perm["experiment"] == exp] if len(perm) else perm
        if len(pe):
            put(
                f"importance_{exp}.png",
                (fig.importance_bars, pe, "family", f"{exp}: permutation importance by feature family"),
                f"{exp}: importance by family",
            )
            put(
                f"importance_features_{exp}.png",
                (fig.importance_bars, pe, "feature", f"{exp}: permutation importance, top features"),
                f"{exp}: importance of single features",
            )

    years = sorted(int(y) for y in table["year"].unique())
    setup = {
        "run": run,
        "store": store.url,
        "region": f"{cfg.region.name} {list(grid_for(cfg.region.name, cfg.region.bbox).bbox)}",
        "period": f"{years[0]}-{years[-1]}",
        "experiments": ", ".join(names),
        "model": f"{', '.join(cfg.model.members)} ({cfg.model.ensemble}), search profile {cfg.model.search.profile}, "
        f"parameters: {'own search per experiment' if cfg.experiments.reuse_params == 'search' else 'reused from the final models'}",
        "matching layers": ", ".join(f"{d} cm -> swvl{k}" for d, k in sorted(cfg.matching.layers.items())),
        "extra products": ", ".join(products) or "none",
        "bootstrap draws": cfg.evaluation.bootstrap,
        "created": created,
    }
    figures = drawn.write(store, folder)
    md = render_markdown(
        run=run,
        setup=setup,
        counts=counts,
        scores=scores,
        importance=perm,
        figures=figures,
        previous=previous,
        products=products,
        zone_names=cv.KOPPEN_CLASSES,
    )
    store.write_text(f"{folder}/metrics.csv", scores.to_csv(index=False))
    store.write_text(f"{folder}/stations.csv", stations.to_csv(index=False))
    store.write_text(f"{folder}/importance.csv", perm.to_csv(index=False))
    store.write_text(f"{folder}/model_importance.csv", own.to_csv(index=False))
    store.rm(f"{folder}/predictions.parquet")
    write_parquet(pred, store, f"{folder}/predictions.parquet")
    store.write_text(f"{folder}/metrics.json", metrics_json(run, created, scores, setup))
    store.write_text(f"{folder}/evaluation.md", md)  # last: a report means the folder is complete
    return [f"{folder}/{n}" for n, _ in figures] + [
        f"{folder}/{n}"
        for n in (
            "metrics.csv",
            "stations.csv",
            "importance.csv",
            "model_importance.csv",
            "predictions.parquet",
            "metrics.json",
            "evaluation.md",
        )
    ]
