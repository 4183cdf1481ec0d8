"""`smci train`: per-depth hyper-parameter search, refit on all rows, models and CV tables into the store.

Wiring over :mod:`smci_dask.models` (search, CV splits, model store) and
:mod:`smci_dask.training` (the table). For each depth of the training table:

1. X = the features in :data:`~smci_dask.features.FEATURE_NAMES` order
   (float32, as the feature function gives them), y = the matched target
   ``sm_matched`` (m3/m3); rows without a target are dropped;
2. folds by ``model.search.cv`` (grouped by station cell, random k-fold or
   grouped by year);
3. the search over ``model.search`` (the profile's grid; engine ``tasks`` or
   ``dask-ml``), unless the caller gives the parameters for that depth;
4. optionally (``model.search.cv_optimism``) the chosen cell once more with
   random k-fold and grouped-by-station CV: how optimistic random k-fold is;
5. the ensemble refit on all rows and saved with its card.

Below ``models/<run>/<experiment>/<depth>cm/`` (see :mod:`smci_dask.models.store`):
``cv_table.csv`` (the paper's Table 2 for the depth, long form: every
candidate x member with mean/std RMSE, ubRMSE, R, bias and rank),
``cv_folds.csv`` (every fold), ``table2.png`` (ensemble RMSE over
max_features x min_samples_leaf, chosen cell framed), ``cv_optimism.csv``,
``params.json`` (the chosen parameters), then the model files and
``card.json`` last, so a card means the depth is complete. A re-run with the
same run name, training table and settings keeps finished depths.
``models/<run>/run.json`` records the run (config fingerprint, code version,
experiments and depths); ``models/<run>/<experiment>/report.json`` the
:class:`TrainReport`.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from smci_dask import __version__
from smci_dask import conventions as cv
from smci_dask.config import Config
from smci_dask.errors import InputError, StoreError
from smci_dask.features import FEATURE_NAMES
from smci_dask.io import Store
from smci_dask.models.cv import make_folds
from smci_dask.models.estimators import Ensemble
from smci_dask.models.search import (
    ENSEMBLE,
    Candidate,
    SearchResult,
    fixed_from_config,
    refit_best,
    refit_members,
    search_from_config,
)
from smci_dask.models.store import CARD_NAME, fingerprint_table, load_card, model_dir, save_model

Echo = Callable[[str], None]

MODELS_DIR: Final = "models"
RUN_FILE: Final = "run.json"
REPORT_FILE: Final = "report.json"
#: Files written per depth beside the model (relative to its folder).
CV_TABLE: Final = "cv_table.csv"
CV_FOLDS: Final = "cv_folds.csv"
HALVING_ROUNDS: Final = "halving_rounds.csv"
HEATMAP: Final = "table2.png"
OPTIMISM: Final = "cv_optimism.csv"
PARAMS: Final = "params.json"
TARGET: Final = "sm_matched"
#: The two strategies compared by ``cv_optimism.csv``.
OPTIMISM_STRATEGIES: Final = ("grouped_station", "random")
_TABLE_NEEDS: Final = ("depth_cm", "cell_id", "year", TARGET)


# ---------------------------------------------------------------- runs
def new_run_id(cfg: Config | None = None, now: datetime | None = None) -> str:
    """``model.run`` when set, else a UTC timestamp such as ``20260101T120000Z``."""
    if cfg is not None and cfg.model.run:
        return cfg.model.run
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def config_fingerprint(cfg: Config) -> str:
    """SHA-256 of the settings that shape a model (everything but ``store`` and ``cluster``)."""
    data = cfg.to_dict(mask_secrets=True)
    data.pop("store", None)
    data.pop("cluster", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def load_run_info(store: Store, run: str) -> dict[str, Any]:
    """``models/<run>/run.json``; StoreError when the run does not exist."""
    path = f"{MODELS_DIR}/{run}/{RUN_FILE}"
    if not store.exists(path):
        raise StoreError(f"no training run {run!r} in {store.url_of(MODELS_DIR)} ({RUN_FILE} missing); run `smci train` first")
    try:
        return json.loads(store.read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"{store.url_of(path)} is not valid JSON ({exc}); re-run `smci train --run {run}`") from None


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Every run with a ``run.json`` below ``models/``, oldest first (by creation time, then name)."""
    if not store.exists(MODELS_DIR):
        return []
    runs = []
    for name in store.ls(MODELS_DIR):
        name = name.rstrip("/").rsplit("/", 1)[-1]
        if store.exists(f"{MODELS_DIR}/{name}/{RUN_FILE}"):
            with_info = load_run_info(store, name)
            runs.append(with_info)
    return sorted(runs, key=lambda r: (str(r.get("created", "")), str(r.get("run", ""))))


def latest_run(store: Store, experiment: str | None = None) -> str | None:
    """The newest run (by ``run.json`` creation time); with ``experiment``, the newest that finished it. None if none."""
    runs = list_runs(store)
    if experiment is not None:
        runs = [r for r in runs if r.get("experiments", {}).get(experiment, {}).get("finished")]
    return str(runs[-1]["run"]) if runs else None


def choose_run(store: Store, cfg: Config, experiment: str = "final") -> str:
    """The run to train into: ``model.run`` if set; else the newest run left unfinished with the same settings
    (a re-run after a crash resumes it, keeping finished depths); else a new timestamp (:func:`new_run_id`)."""
    if cfg.model.run:
        return cfg.model.run
    fp = config_fingerprint(cfg)
    for info in reversed(list_runs(store)):
        exp = info.get("experiments", {}).get(experiment)
        if exp is not None and not exp.get("finished") and info.get("config_fingerprint") == fp:
            return str(info["run"])
    return new_run_id(cfg)


def resolve_run(store: Store, run: str | None, experiment: str | None = None) -> str:
    """``run`` itself, or for ``None``/``'latest'`` the newest run; StoreError naming the fix when there is none."""
    if run not in (None, "latest"):
        return str(run)
    found = latest_run(store, experiment)
    if found is None:
        what = f" with experiment {experiment!r} finished" if experiment else ""
        raise StoreError(f"no training run{what} in {store.url_of(MODELS_DIR)}; run `smci train` first")
    return found


def _update_run_info(store: Store, cfg: Config, run: str, experiment: str, **fields: Any) -> dict[str, Any]:
    path = f"{MODELS_DIR}/{run}/{RUN_FILE}"
    now = datetime.now(UTC).isoformat(timespec="seconds")
    info = load_run_info(store, run) if store.exists(path) else {"run": run, "created": now, "experiments": {}}
    info.update(
        {
            "updated": now,
            "code_version": __version__,
            "config_fingerprint": config_fingerprint(cfg),
            "config": {k: v for k, v in cfg.to_dict(mask_secrets=True).items() if k not in ("store", "cluster")},
        }
    )
    exp = info.setdefault("experiments", {}).setdefault(experiment, {})
    exp.update(fields)
    store.write_text(path, json.dumps(info, indent=2, sort_keys=True))
    return info


# ---------------------------------------------------------------- report
@dataclass
class DepthReport:
    """What training did for one depth (RMSE etc. in m3/m3, times in seconds)."""

    depth: int
    n_rows: int
    n_cells: int
    n_dropped: int
    params: dict[str, int]
    searched: bool
    cv: dict[str, dict[str, float]] = field(default_factory=dict)
    optimism: list[dict[str, Any]] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    checksum: str = ""
    kept: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "depth_cm": self.depth,
            "n_rows": self.n_rows,
            "n_cells": self.n_cells,
            "n_dropped": self.n_dropped,
            "params": dict(self.params),
            "searched": self.searched,
            "cv": self.cv,
            "optimism": self.optimism,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "paths": self.paths,
            "checksum": self.checksum,
            "kept": self.kept,
        }


@dataclass
class TrainReport:
    """Per-depth results of :func:`train_experiment`; ``models`` holds the fitted ensembles (not in :meth:`to_dict`)."""

    run: str
    experiment: str
    store: str
    settings: dict[str, Any]
    depths: dict[int, DepthReport] = field(default_factory=dict)
    seconds: float = 0.0
    models: dict[int, Ensemble] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "experiment": self.experiment,
            "store": self.store,
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
            "depths": {str(d): r.to_dict() for d, r in sorted(self.depths.items())},
        }

    def cv_table(self) -> pd.DataFrame:
        """One row per (depth, member incl. ensemble): the chosen cell's CV RMSE, ubRMSE and R (m3/m3)."""
        rows = [{"depth_cm": d, "member": m, **s} for d, r in sorted(self.depths.items()) for m, s in r.cv.items()]
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """A few lines per depth: chosen parameters, CV RMSE per member and the ensemble, optimism of random k-fold."""
        s = self.settings
        lines = [
            f"training run {self.run!r}, experiment {self.experiment!r} -> {self.store}/{MODELS_DIR}/{self.run}/{self.experiment}",
            f"  search: profile {s.get('profile')}, engine {s.get('engine')}, cv {s.get('cv')} ({s.get('n_folds')} folds), "
            f"{s.get('n_estimators')} trees, members {', '.join(s.get('members', []))}",
        ]
        for d, r in sorted(self.depths.items()):
            p = r.params
            how = "kept from an earlier run" if r.kept else ("searched" if r.searched else "given")
            cvs = ", ".join(f"{m} {v['rmse_mean']:.4f}" for m, v in r.cv.items()) if r.cv else "no CV (parameters given)"
            line = (
                f"  {d:>3} cm: max_features {p['max_features']:>2}, min_samples_leaf {p['min_samples_leaf']:>2} ({how}); "
                f"{r.n_rows} rows, {r.n_cells} cells; CV RMSE {cvs}"
            )
            if r.optimism:
                ens = next((o for o in r.optimism if o["member"] == ENSEMBLE), r.optimism[0])
                line += f"; random k-fold {ens['optimism_pct']:.0f}% lower than grouped"
            lines.append(line)
        lines.append(f"  total {self.seconds:.1f} s")
        return "\n".join(lines)


# ---------------------------------------------------------------- training
def _check_table(table: pd.DataFrame) -> None:
    missing = [c for c in (*_TABLE_NEEDS, *FEATURE_NAMES) if c not in table.columns]
    if missing:
        raise InputError(
            f"training table lacks columns {missing}; it was not built by `smci table` with this version; run `smci table` again"
        )


def _depth_arrays(table: pd.DataFrame, depth: int, offset: int | None = None) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, int]:
    """Features, target and rows of one depth; rows without a target (or, for the residual form, without the
    ERA5-Land layer it follows: days the covariates do not cover) are dropped and counted."""
    sub = table[table["depth_cm"].astype(int) == int(depth)]
    keep = sub[TARGET].notna().to_numpy()
    if offset is not None:
        keep = keep & sub[FEATURE_NAMES[offset]].notna().to_numpy()
    sub = sub[keep].reset_index(drop=True)
    X = sub[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    y = sub[TARGET].to_numpy(dtype=np.float64)
    return X, y, sub, int((~keep).sum())


def _settings(cfg: Config) -> dict[str, Any]:
    m, s = cfg.model, cfg.model.search
    return {
        "profile": s.profile,
        "engine": s.engine,
        "cv": s.cv,
        "n_folds": s.n_folds,
        "n_iter": s.n_iter,
        "max_features": list(s.max_features),
        "min_samples_leaf": list(s.min_samples_leaf),
        "cv_optimism": s.cv_optimism,
        "members": list(m.members),
        "ensemble": m.ensemble,
        "target": TARGET,
        "residual": bool(m.residual),
        **{k: v for k, v in fixed_from_config(m).items()},
    }


def offset_column(cfg: Config, depth: int) -> int | None:
    """The feature column a depth's forests learn the residual of (``model.residual``), else None.

    ERA5-Land's volumetric soil water of the layer the depth is matched to
    (``matching.layers``: ``swvl2`` for 10-30 cm, ``swvl3`` below by default):
    the matched target has that layer's mean and spread at every station cell.
    """
    if not cfg.model.residual:
        return None
    layer = cfg.matching.layers.get(int(depth))
    if layer is None:
        raise InputError(f"depth {depth} cm has no ERA5-Land layer in matching.layers; add it or set model.residual: false")
    return FEATURE_NAMES.index(f"swvl{int(layer)}")


def _progress(echo: Echo, label: str) -> Callable[[int, int], None]:
    """Progress lines at every quarter of the tasks (and the last)."""
    state = {"next": 0}

    def report(done: int, total: int) -> None:
        if done >= state["next"] or done == total:
            echo(f"[train]   {label}: {done}/{total} tasks ({100 * done // max(total, 1)}%)")
            state["next"] = done + max(1, total // 4)

    return report


def train_experiment(
    cfg: Config,
    store: Store,
    *,
    run: str,
    experiment: str,
    table: pd.DataFrame,
    depths: Sequence[int] | None = None,
    params: Mapping[int, Mapping[str, int]] | None = None,
    client: Any = None,
    echo: Echo = print,
    resume: bool = True,
) -> TrainReport:
    """Search (or take) the parameters of each depth, refit on all rows, save the models and CV tables.

    Parameters
    ----------
    cfg
        Settings; ``model`` (members, trees, ``search``: profile, engine, cv,
        grid, folds, n_iter, cv_optimism, seed) drives everything.
    store
        Store root; models go to ``models/<run>/<experiment>/<depth>cm/``.
    run, experiment
        Names (no ``/``): e.g. :func:`new_run_id` and ``'final'``, ``'year'``, ``'station'``.
    table
        The training table (:mod:`smci_dask.training.table`), or the part of
        it to train on (e.g. an experiment's training years).
    depths
        Depths (cm) to train; default every depth in the table, in order.
    params
        ``{depth: {'max_features': .., 'min_samples_leaf': ..}}``: for these
        depths no search, only the refit (and no CV table); others are searched.
    client
        A :class:`distributed.Client` for the search and refit tasks; ``None``
        runs them here, one after another.
    echo
        Receives progress lines.
    resume
        Keep a depth whose card says it was trained on the same table rows with
        the same settings (a re-run after a crash finishes the job).

    Returns
    -------
    TrainReport
        Written as ``models/<run>/<experiment>/report.json`` too.
    """
    t_start = time.perf_counter()
    model_dir(run, experiment, 10)  # validates the names
    _check_table(table)
    present = sorted(int(d) for d in pd.unique(table["depth_cm"]))
    wanted = [int(d) for d in (depths if depths is not None else present)]
    bad = [d for d in wanted if d not in cv.DEPTHS_CM]
    if bad:
        raise InputError(f"depths {bad} are not product depths; use some of {list(cv.DEPTHS_CM)}")
    absent = [d for d in wanted if d not in present]
    if absent:
        raise InputError(f"the training table has no rows for depths {absent} cm (it has {present}); run `smci table` or drop them")
    if not wanted:
        raise InputError("the training table is empty; run `smci table` first (it needs station targets from `smci ingest stations`)")
    params = {int(k): dict(v) for k, v in (params or {}).items()}
    for d, p in params.items():
        if not {"max_features", "min_samples_leaf"} <= set(p):
            raise InputError(f"params for depth {d} cm must give max_features and min_samples_leaf, got {sorted(p)}")

    settings = _settings(cfg)
    report = TrainReport(run=run, experiment=experiment, store=store.url, settings=settings)
    _update_run_info(store, cfg, run, experiment, started=datetime.now(UTC).isoformat(timespec="seconds"), finished=None, depths=wanted)
    echo(
        f"[train] run {run!r}, experiment {experiment!r}: {len(wanted)} depth(s), profile {settings['profile']}, "
        f"engine {settings['engine']}, cv {settings['cv']} ({settings['n_folds']} folds)"
    )

    def one(depth: int) -> tuple[DepthReport, Ensemble | None]:
        return _train_depth(cfg, store, run, experiment, table, depth, params.get(depth), settings, client, echo, resume)

    done = _each_depth(one, wanted, concurrent=client is not None and settings["engine"] == "tasks")
    for depth, (dep, ens) in zip(wanted, done, strict=True):
        report.depths[depth] = dep
        if ens is not None:
            report.models[depth] = ens
    report.seconds = time.perf_counter() - t_start
    store.write_text(f"{MODELS_DIR}/{run}/{experiment}/{REPORT_FILE}", json.dumps(report.to_dict(), indent=2, default=_json))
    _update_run_info(store, cfg, run, experiment, finished=datetime.now(UTC).isoformat(timespec="seconds"), depths=wanted)
    return report


#: Depths trained at the same time on a cluster: while one depth waits for the last tasks of its search (or
#: its cross-validation check, or its refit), the other's tasks keep the workers busy. On 2 cores (2 workers)
#: the tiny world's 10 depths took 28.2 s instead of 40.4 s; the small world's (CPU-bound) 102.0 s vs 102.8 s
#: for 4 depths (benchmarks/README.md).
DEPTHS_AT_ONCE: Final = 2


def _each_depth(one: Callable[[int], Any], depths: Sequence[int], *, concurrent: bool) -> list[Any]:
    """``[one(d) for d in depths]``; with ``concurrent``, :data:`DEPTHS_AT_ONCE` depths at a time in threads (results in order).

    The first failure (or an interrupt) is raised at once and depths not
    started yet are not started; a depth still running ends with the
    cluster's tasks (a re-run keeps every depth that finished).
    """
    if not concurrent or len(depths) < 2:
        return [one(d) for d in depths]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=DEPTHS_AT_ONCE, thread_name_prefix="smci-train-depth")
    try:
        futures = [pool.submit(one, d) for d in depths]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _train_depth(
    cfg: Config,
    store: Store,
    run: str,
    experiment: str,
    table: pd.DataFrame,
    depth: int,
    given: Mapping[str, int] | None,
    settings: dict[str, Any],
    client: Any,
    echo: Echo,
    resume: bool,
) -> tuple[DepthReport, Ensemble | None]:
    folder = model_dir(run, experiment, depth)
    X, y, sub, n_dropped = _depth_arrays(table, depth, offset_column(cfg, depth))
    n_cells = int(sub["cell_id"].nunique())
    if len(y) == 0:
        raise InputError(f"depth {depth} cm: no row has a matched target ({TARGET}); run `smci ingest stations` with --match")
    fp = fingerprint_table(X, y, FEATURE_NAMES)
    depth_settings = {**settings, "given_params": dict(given) if given else None}
    paths = {"folder": store.url_of(folder)}
    seconds: dict[str, float] = {}

    kept = _kept_depth(store, run, experiment, depth, fp, depth_settings) if resume else None
    if kept is not None:
        echo(f"[train] {depth} cm: already trained with this table and these settings: kept ({store.url_of(folder)})")
        dep = DepthReport(
            depth, len(y), n_cells, n_dropped, dict(kept["card"]["train_settings"].get("chosen", {})), given is None, kept=True
        )
        dep.cv = dict(kept["card"].get("cv_scores", {}).get("summary", {}))
        dep.optimism = kept["card"].get("cv_scores", {}).get("optimism")
        dep.checksum = str(kept["card"].get("checksum", ""))
        dep.paths = {**paths, **{k: store.url_of(folder, v) for k, v in kept["files"].items()}}
        return dep, None

    m = cfg.model
    result: SearchResult | None = None
    t0 = time.perf_counter()
    if given is None:
        folds = make_folds(
            m.search.cv, len(y), m.search.n_folds, m.search.seed, groups=sub["cell_id"].to_numpy(), years=sub["year"].to_numpy()
        )
        n_members = len(m.members)
        echo(
            f"[train] {depth} cm: {len(y)} rows ({n_dropped} without target or ERA5-Land layer dropped), {n_cells} cells, "
            f"{len(folds)} folds ({m.search.cv}), searching ({m.search.engine}) with {n_members} member(s)"
        )
        result = search_from_config(
            X, y, folds, m, client=client, progress=_progress(echo, f"{depth} cm search"), offset_column=offset_column(cfg, depth)
        )
        chosen = dict(result.best)
    else:
        chosen = {"max_features": int(given["max_features"]), "min_samples_leaf": int(given["min_samples_leaf"])}
        echo(f"[train] {depth} cm: {len(y)} rows, {n_cells} cells, parameters given {chosen}: refit only")
    seconds["search"] = time.perf_counter() - t0

    files: dict[str, str] = {}
    cv_summary: dict[str, dict[str, float]] = {}
    optimism: list[dict[str, Any]] | None = None
    if result is not None:
        files.update(_write_search_outputs(store, folder, depth, result))
        cv_summary = _cv_summary(result)
        if m.search.cv_optimism:
            t0 = time.perf_counter()
            opt = cv_optimism(cfg, X, y, sub, result, client=client)
            seconds["cv_optimism"] = time.perf_counter() - t0
            store.write_text(f"{folder}/{OPTIMISM}", opt.to_csv(index=False))
            files["cv_optimism"] = OPTIMISM
            optimism = opt.to_dict(orient="records")
    store.write_text(f"{folder}/{PARAMS}", json.dumps({"depth_cm": depth, **chosen, "searched": result is not None}, indent=2))
    files["params"] = PARAMS

    t0 = time.perf_counter()
    if result is not None:
        ens = refit_best(X, y, result, feature_names=FEATURE_NAMES, ensemble=m.ensemble, client=client)
    else:
        if m.ensemble == "weights":
            echo(f"[train] {depth} cm: ensemble 'weights' needs out-of-fold predictions from a search; using the mean")
        ens = refit_members(
            X,
            y,
            members=list(m.members),
            hyper={**fixed_from_config(m, offset_column(cfg, depth)), **chosen},
            feature_names=FEATURE_NAMES,
            client=client,
        )
    seconds["refit"] = time.perf_counter() - t0
    card = save_model(
        store,
        run,
        experiment,
        depth,
        ens,
        training_fingerprint=fp,
        cv_scores=_card_scores(result, cv_summary, optimism),
        drop_reference=True,
        settings={**depth_settings, "chosen": chosen, "n_rows": len(y), "n_cells": n_cells, "files": files},
    )
    files["card"] = CARD_NAME
    rmse = cv_summary.get(ENSEMBLE, next(iter(cv_summary.values()), {})).get("rmse_mean")
    echo(
        f"[train] {depth} cm: chosen max_features {chosen['max_features']}, min_samples_leaf {chosen['min_samples_leaf']}"
        + (f", CV RMSE {rmse:.4f} m3/m3" if rmse is not None else "")
        + f" -> {store.url_of(folder)}"
    )
    dep = DepthReport(depth, len(y), n_cells, n_dropped, chosen, result is not None, cv_summary, optimism, seconds)
    dep.paths = {**paths, **{k: store.url_of(folder, v) for k, v in files.items()}}
    dep.checksum = str(card["checksum"])
    return dep, ens


def _kept_depth(store: Store, run: str, experiment: str, depth: int, fp: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The card and files of a finished depth trained on the same rows with the same settings, else None."""
    folder = model_dir(run, experiment, depth)
    if not store.exists(f"{folder}/{CARD_NAME}"):
        return None
    try:
        card = load_card(store, run, experiment, depth)
    except InputError:
        return None
    stored = dict(card.get("train_settings") or {})
    files = dict(stored.pop("files", {}) or {})
    for k in ("chosen", "n_rows", "n_cells"):
        stored.pop(k, None)
    if card.get("training_fingerprint") != fp or stored != json.loads(json.dumps(settings)):
        return None
    if not all(store.exists(f"{folder}/{f}") for f in files.values()):
        return None
    return {"card": card, "files": {**files, "card": CARD_NAME}}


def _cv_summary(result: SearchResult) -> dict[str, dict[str, float]]:
    """The chosen cell's mean/std scores per member and the ensemble."""
    t = result.table
    sel = t[(t["max_features"] == result.best["max_features"]) & (t["min_samples_leaf"] == result.best["min_samples_leaf"])]
    cols = ["rmse_mean", "rmse_std", "ubrmse_mean", "r_mean", "bias_mean"]
    return {str(r["member"]): {c: float(r[c]) for c in cols} for _, r in sel.iterrows()}


def _card_scores(result: SearchResult | None, summary: dict[str, Any], optimism: list[dict[str, Any]] | None) -> dict[str, Any]:
    if result is None:
        return {}
    members = [*result.members, ENSEMBLE] if len(result.members) > 1 else list(result.members)
    return {
        "selected_by": result.selected_by,
        "engine": result.engine,
        "folds": {m: result.cv_scores(m) for m in members},
        "summary": summary,
        "optimism": optimism,
    }


def _write_search_outputs(store: Store, folder: str, depth: int, result: SearchResult) -> dict[str, str]:
    table = result.table.copy()
    table.insert(0, "depth_cm", depth)
    table["chosen"] = (table["max_features"] == result.best["max_features"]) & (
        table["min_samples_leaf"] == result.best["min_samples_leaf"]
    )
    store.write_text(f"{folder}/{CV_TABLE}", table.to_csv(index=False))
    folds = result.folds.copy()
    folds.insert(0, "depth_cm", depth)
    store.write_text(f"{folder}/{CV_FOLDS}", folds.to_csv(index=False))
    store.write_bytes(f"{folder}/{HEATMAP}", table2_figure(result, title=f"{depth} cm"))
    written = {"cv_table": CV_TABLE, "cv_folds": CV_FOLDS, "heatmap": HEATMAP}
    rounds = getattr(result, "rounds", None)  # successive halving: every round's candidates and scores
    if isinstance(rounds, pd.DataFrame):
        store.write_text(f"{folder}/{HALVING_ROUNDS}", rounds.assign(depth_cm=depth).to_csv(index=False))
        written["halving_rounds"] = HALVING_ROUNDS
    return written


def table2_figure(result: SearchResult, *, member: str | None = None, title: str = "") -> bytes:
    """PNG bytes: mean CV RMSE (m3/m3) of ``member`` (default the selecting one) over max_features x min_samples_leaf.

    Cells not scored (random search) are blank; the chosen cell is framed.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    member = member or result.selected_by
    grid = result.table_2(member)
    fig = Figure(figsize=(1.0 + 0.9 * grid.shape[1], 1.2 + 0.6 * grid.shape[0]), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    values = grid.to_numpy(dtype=np.float64)
    img = ax.imshow(np.ma.masked_invalid(values), cmap="viridis_r", aspect="auto", origin="upper")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
    ax.set_xlabel("max_features")
    ax.set_ylabel("min_samples_leaf")
    finite = values[np.isfinite(values)]
    mid = float(np.mean(finite)) if finite.size else 0.0
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.4f}", ha="center", va="center", fontsize=7, color="white" if values[i, j] > mid else "black")
    bi = list(grid.index).index(result.best["min_samples_leaf"])
    bj = list(grid.columns).index(result.best["max_features"])
    ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_title(f"{title} CV RMSE ({member}), m3/m3".strip(), fontsize=9)
    fig.colorbar(img, ax=ax, label="RMSE (m3/m3)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def cv_optimism(cfg: Config, X: np.ndarray, y: np.ndarray, rows: pd.DataFrame, result: SearchResult, *, client: Any = None) -> pd.DataFrame:
    """The chosen cell's CV scores under random k-fold and grouped-by-station CV, per member and the ensemble.

    The configured strategy's scores come from ``result``; the other(s) are
    one more CV run of the chosen cell (engine ``tasks``, same folds count and
    seed). ``optimism_pct`` = how much lower random k-fold's RMSE is, in % of
    the grouped one's.
    """
    m = cfg.model
    best = Candidate(result.best["max_features"], result.best["min_samples_leaf"])
    per: dict[str, pd.DataFrame] = {}
    for strategy in OPTIMISM_STRATEGIES:
        if strategy == m.search.cv:
            res = result
        else:
            folds = make_folds(strategy, len(y), m.search.n_folds, m.search.seed, groups=rows["cell_id"].to_numpy())
            res = search_from_config(
                X, y, folds, m, client=client, candidates=[best], engine="tasks", offset_column=result.fixed.get("offset_column")
            )
        t = res.table
        sel = t[(t["max_features"] == best.max_features) & (t["min_samples_leaf"] == best.min_samples_leaf)]
        per[strategy] = sel.set_index("member")[["rmse_mean", "ubrmse_mean", "r_mean"]]
    g, r = per["grouped_station"], per["random"]
    out = pd.DataFrame(
        {
            "max_features": best.max_features,
            "min_samples_leaf": best.min_samples_leaf,
            "rmse_grouped_station": g["rmse_mean"],
            "rmse_random": r["rmse_mean"],
            "ubrmse_grouped_station": g["ubrmse_mean"],
            "ubrmse_random": r["ubrmse_mean"],
            "r_grouped_station": g["r_mean"],
            "r_random": r["r_mean"],
        }
    )
    out["optimism_pct"] = 100.0 * (out["rmse_grouped_station"] - out["rmse_random"]) / out["rmse_grouped_station"]
    return out.rename_axis("member").reset_index()


def _json(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def train_final(cfg: Config, store: Store, *, run: str, client: Any = None, echo: Echo = print, **kwargs: Any) -> TrainReport:
    """The final models (all stations, all years): the store's training table -> :func:`train_experiment` with ``'final'``.

    ``kwargs`` go to :func:`train_experiment` (``depths``, ``params``, ``resume``).
    """
    from smci_dask.training import TABLE_RELPATH, load_training_table

    if not store.exists(TABLE_RELPATH):
        raise StoreError(f"no training table at {store.url_of(TABLE_RELPATH)}; run `smci table` first")
    depths = kwargs.get("depths")
    table = load_training_table(store, depths=depths)
    if table.empty:
        which = f" for depths {list(depths)} cm" if depths else ""
        raise InputError(f"the training table at {store.url_of(TABLE_RELPATH)} has no rows{which}; run `smci table` first")
    return train_experiment(cfg, store, run=run, experiment="final", table=table, client=client, echo=echo, **kwargs)
