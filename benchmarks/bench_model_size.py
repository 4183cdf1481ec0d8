"""Model size at full scale: bytes per depth, fit time and holdout RMSE, fully grown against size-capped forests.

A full-scale depth has ~7 million training rows (1,789 stations x 4018 days).
This script generates a synthetic training table of that shape (``--rows``
training rows x 25 features, float32, plus ``--holdout`` rows scored after the
fit) with a learnable, soil-moisture-like signal: 6 hidden drivers, each
feature a noisy mix of them (covariates are correlated, as ERA5-Land's are),
the target a nonlinear function of the drivers (m3/m3, ~0.05 m3/m3 spread)
plus 0.02 m3/m3 noise. Then, for every configuration, it fits each member
(single-threaded, as in a Dask task) with the paper's best cell (max_features
1, min_samples_leaf 20) and prints, as one JSON line:

* bytes per member and per depth (the ensemble: the members' native model
  files summed), measured at ``--trees`` and scaled to ``--deploy-trees``
  (bytes grow linearly with trees: every tree is stored whole);
* fit seconds (CPU, per member), leaves per tree (mean), holdout RMSE of each
  member and of the ensemble (the members' mean) against the noisy holdout
  targets, and against the noiseless signal.

Configurations: ``full`` (rows per tree 0.632 of all rows, no cap: the
largest), ``samples_<k>`` (``max_samples``: at most k rows per tree),
``leaves_<k>`` (``max_leaves``) and combinations; see ``CONFIGS``.

Tables (``--table``):

* ``iid`` (default): every row draws its own drivers, independent of every
  other row; the holdout is new iid rows.
* ``stations``: rows are station series, ``n_stations x --days`` (default
  4018 days, 11 years as at full scale; ``n_stations = round(--rows / --days)``,
  so the row count is the nearest multiple of the days). Each driver of a row
  (station s, day t) is a fixed mix of three unit-variance parts: a site part
  constant over the station's days (soil, terrain: N(0, 1) per station), a
  regional daily part shared by the stations of one of ``--regions`` regions
  (weather) and a station-specific daily part, both AR(1) in time with
  e-folding times of 20-30 days (per driver). The weights differ by driver
  (some mostly site, some mostly weather; ``STATION_SHARES``). Features and
  target are the same functions of the drivers as in the iid table (a noisy
  mix per feature with row-wise noise; the nonlinear target plus 0.02 m3/m3
  noise per row; ``--station-noise``: both noises persist per station instead,
  see ``make_station_table``). **The holdout is different stations**: other sites in the
  same regions over the same days (the regional weather series are shared),
  as a split by station would score them; no held-out station has a row in
  the training table.

Usage::

    python benchmarks/bench_model_size.py                       # 7M + 1M rows, 200 trees (hours on one core)
    python benchmarks/bench_model_size.py --rows 2000000 --trees 32   # what benchmarks/README.md records
    python benchmarks/bench_model_size.py --quick               # 200k rows, 8 trees: a smoke run
    python benchmarks/bench_model_size.py --table stations --rows 1000000 --trees 16   # station series, held-out stations
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import numpy as np
from scipy.signal import lfilter

from smci_dask.models.estimators import fit_member, model_bytes, predict_member, tree_leaves

#: name -> size controls (``None``: no cap).
CONFIGS: dict[str, dict[str, int | None]] = {
    "full": {"max_samples": None, "max_leaves": None},
    "leaves_4096": {"max_samples": None, "max_leaves": 4096},
    "leaves_2048": {"max_samples": None, "max_leaves": 2048},
    "samples_200k_leaves_2048": {"max_samples": 200_000, "max_leaves": 2048},
    "samples_100k": {"max_samples": 100_000, "max_leaves": None},
    "samples_80k": {"max_samples": 80_000, "max_leaves": None},  # the default (model.max_samples)
    "samples_50k": {"max_samples": 50_000, "max_leaves": None},
}
N_DRIVERS = 6
#: stations table: per driver, the variance shares of (site, regional daily, station daily); each row sums to 1.
STATION_SHARES = np.array(
    [
        [0.50, 0.35, 0.15],
        [0.30, 0.50, 0.20],
        [0.70, 0.20, 0.10],
        [0.20, 0.60, 0.20],
        [0.60, 0.20, 0.20],
        [0.10, 0.60, 0.30],
    ]
)
#: stations table: e-folding time (days) of each driver's daily parts.
STATION_EFOLD_DAYS = np.array([20.0, 25.0, 30.0, 20.0, 30.0, 25.0])


def make_synthetic_table(n: int, n_features: int, seed: int, *, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` (n, n_features) float32, ``y`` and the noiseless signal (m3/m3), in 1M-row chunks to bound memory.

    Hidden drivers z ~ N(0, 1) (6 of them); feature j = z @ W[:, j] + 0.5 e
    (W fixed by the seed of the table's design, not of the rows); the target
    0.22 + 0.05 tanh(z0 + 0.5 z1) + 0.02 sin(2 z2) + 0.015 z3 z4 + 0.01 max(z5, 0) + noise.
    """
    W = _feature_design(n_features)
    rng = np.random.default_rng(seed)
    X = np.empty((n, n_features), dtype=np.float32)
    signal = np.empty(n, dtype=np.float64)
    step = 1_000_000
    for a in range(0, n, step):
        b = min(n, a + step)
        z = rng.normal(size=(b - a, N_DRIVERS))
        X[a:b] = z @ W + 0.5 * rng.normal(size=(b - a, n_features))
        signal[a:b] = _target_signal(z)
    y = signal + noise * rng.normal(size=n)
    return X, y, signal


def _feature_design(n_features: int) -> np.ndarray:
    """The (N_DRIVERS, n_features) mixing matrix, fixed by the table's design seed (not the rows')."""
    design = np.random.default_rng(12345)
    W = design.normal(size=(N_DRIVERS, n_features)) * (design.random((N_DRIVERS, n_features)) < 0.5)
    W[np.arange(n_features) % N_DRIVERS, np.arange(n_features)] += 1.0  # every feature carries at least one driver
    return W


def _target_signal(z: np.ndarray) -> np.ndarray:
    """The noiseless target (m3/m3) of drivers ``z`` (rows, N_DRIVERS)."""
    return (
        0.22
        + 0.05 * np.tanh(z[:, 0] + 0.5 * z[:, 1])
        + 0.02 * np.sin(2 * z[:, 2])
        + 0.015 * z[:, 3] * z[:, 4]
        + 0.01 * np.maximum(z[:, 5], 0)
    )


def _ar1(eps: np.ndarray, efold_days: np.ndarray) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 1 of ``eps`` (series, days, N_DRIVERS), one e-folding time per driver.

    x[0] = eps[0]; x[t] = phi x[t-1] + sqrt(1 - phi^2) eps[t], phi = exp(-1 / efold).
    """
    out = np.empty_like(eps)
    for k, tau in enumerate(efold_days):
        phi = float(np.exp(-1.0 / tau))
        scale = float(np.sqrt(1.0 - phi * phi))
        e = eps[:, :, k].copy()
        e[:, 0] /= scale  # so that x[0] = eps[0] ~ N(0, 1): the series starts stationary
        out[:, :, k] = lfilter([scale], [1.0, -phi], e, axis=1)
    return out


def station_layout(rows: int, n_days: int) -> int:
    """Stations of a table of about ``rows`` rows of ``n_days`` days each (at least 1)."""
    return max(1, round(rows / n_days))


def make_station_table(
    n_stations: int,
    n_days: int,
    n_features: int,
    seed: int,
    *,
    n_regions: int = 40,
    noise: float = 0.02,
    station_noise: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` (n_stations * n_days, n_features) float32, ``y`` and the signal: station series, rows station-major.

    The regional daily series (``n_regions`` x ``n_days`` x drivers) come from a
    fixed seed, so tables with different ``seed`` (training and holdout) are
    different stations in the same regions over the same days. Per ``seed``:
    each station's region (uniform), site part (N(0, 1) per driver) and daily
    part (AR(1)), the feature noise and the target noise. Stations are made in
    batches of about 1M rows to bound memory.

    ``station_noise``: the feature noise (sd 0.5) and the target noise (sd
    ``noise``) are not drawn per row but are, in equal variance shares, a
    station-constant offset and an AR(1) series (e-folding 25 days) per
    station: covariates that miss a site's conditions the same way every day,
    and a sensor's representativeness error, which persist.
    """
    W = _feature_design(n_features)
    shares = np.sqrt(STATION_SHARES)
    regional = _ar1(np.random.default_rng(54321).normal(size=(n_regions, n_days, N_DRIVERS)), STATION_EFOLD_DAYS)
    rng = np.random.default_rng(seed)
    n = n_stations * n_days
    X = np.empty((n, n_features), dtype=np.float32)
    signal = np.empty(n, dtype=np.float64)
    y = np.empty(n, dtype=np.float64)
    batch = max(1, 1_000_000 // n_days)
    for s0 in range(0, n_stations, batch):
        s1 = min(n_stations, s0 + batch)
        m = s1 - s0
        region = rng.integers(0, n_regions, size=m)
        site = rng.normal(size=(m, 1, N_DRIVERS))
        local = _ar1(rng.normal(size=(m, n_days, N_DRIVERS)), STATION_EFOLD_DAYS)
        z = shares[:, 0] * site + shares[:, 1] * regional[region] + shares[:, 2] * local
        z = z.reshape(m * n_days, N_DRIVERS)
        a, b = s0 * n_days, s1 * n_days
        signal[a:b] = _target_signal(z)
        if station_noise:
            X[a:b] = z @ W + 0.5 * _persistent_noise(rng, m, n_days, n_features)
            y[a:b] = signal[a:b] + noise * _persistent_noise(rng, m, n_days, 1)[:, 0]
        else:
            X[a:b] = z @ W + 0.5 * rng.normal(size=(b - a, n_features))
            y[a:b] = signal[a:b] + noise * rng.normal(size=b - a)
    return X, y, signal


def _persistent_noise(rng: np.random.Generator, m: int, n_days: int, k: int) -> np.ndarray:
    """(m * n_days, k) unit-variance noise: half a constant per station, half AR(1) in days (e-folding 25 days)."""
    const = rng.normal(size=(m, 1, k))
    daily = _ar1(rng.normal(size=(m, n_days, k)), np.full(k, 25.0))
    return (np.sqrt(0.5) * (const + daily)).reshape(m * n_days, k)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - b) ** 2)))


def run_config(
    name: str,
    size: dict[str, int | None],
    X: np.ndarray,
    y: np.ndarray,
    Xh: np.ndarray,
    yh: np.ndarray,
    sh: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    hyper = {
        "max_features": args.max_features,
        "min_samples_leaf": args.min_samples_leaf,
        "n_estimators": args.trees,
        "subsample": 0.632,
        "max_depth": None,
        "seed": 0,
        **size,
    }
    out: dict[str, Any] = {"config": name, **{k: v for k, v in size.items()}}
    preds = []
    total_bytes = 0
    scale = args.deploy_trees / args.trees
    for member in args.members:
        t0 = time.process_time()
        model = fit_member(member, X, y, **hyper)
        fit_s = time.process_time() - t0
        t0 = time.process_time()
        p = predict_member(model, Xh)
        predict_s = time.process_time() - t0
        nbytes = len(model_bytes(model))
        leaves = tree_leaves(model)
        total_bytes += nbytes
        preds.append(p)
        out[member] = {
            "fit_cpu_s": round(fit_s, 1),
            "predict_cpu_s": round(predict_s, 1),
            "leaves_per_tree": round(float(leaves.mean())),
            "bytes_per_tree": round(nbytes / len(leaves)),
            "mb_deploy": round(nbytes * scale / 1e6, 1),
            "rmse": round(_rmse(p, yh), 5),
            "rmse_signal": round(_rmse(p, sh), 5),
        }
        print(json.dumps({"progress": name, "member": member, **out[member]}), flush=True)
    ens = np.mean(preds, axis=0)
    out["ensemble"] = {
        "mb_deploy": round(total_bytes * scale / 1e6, 1),
        "fit_cpu_s": round(sum(out[m]["fit_cpu_s"] for m in args.members), 1),
        "rmse": round(_rmse(ens, yh), 5),
        "rmse_signal": round(_rmse(ens, sh), 5),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=7_000_000, help="training rows (full scale: 7 million)")
    ap.add_argument("--holdout", type=int, default=1_000_000, help="held-out rows scored after the fit")
    ap.add_argument("--features", type=int, default=25)
    ap.add_argument("--trees", type=int, default=200, help="trees fitted per member")
    ap.add_argument("--deploy-trees", type=int, default=200, help="trees per member in the shipped model (bytes are scaled to it)")
    ap.add_argument("--max-features", type=int, default=1)
    ap.add_argument("--min-samples-leaf", type=int, default=20)
    ap.add_argument("--members", default="lightgbm,xgboost")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--table", choices=("iid", "stations"), default="iid", help="iid rows, or station series scored on held-out stations")
    ap.add_argument("--days", type=int, default=4018, help="stations table: days per station (stations = rows / days)")
    ap.add_argument("--regions", type=int, default=40, help="stations table: regions sharing one daily weather series")
    ap.add_argument(
        "--station-noise",
        action="store_true",
        help="stations table: feature and target noise persistent per station (half constant, half AR(1)) instead of per row",
    )
    ap.add_argument("--quick", action="store_true", help="200k + 100k rows, 8 trees, three configurations")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.holdout, args.trees, args.configs = 200_000, 100_000, 8, "full,samples_50k,leaves_4096"
    args.members = [m.strip() for m in args.members.split(",") if m.strip()]
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    t0 = time.perf_counter()
    layout: dict[str, Any] = {}
    if args.table == "stations":
        n_train, n_hold = station_layout(args.rows, args.days), station_layout(args.holdout, args.days)
        X, y, _ = make_station_table(n_train, args.days, args.features, 0, n_regions=args.regions, station_noise=args.station_noise)
        Xh, yh, sh = make_station_table(n_hold, args.days, args.features, 1, n_regions=args.regions, station_noise=args.station_noise)
        args.rows, args.holdout = len(y), len(yh)
        layout = {
            "days": args.days,
            "stations": n_train,
            "holdout_stations": n_hold,
            "regions": args.regions,
            "station_noise": args.station_noise,
        }
    else:
        X, y, _ = make_synthetic_table(args.rows, args.features, 0)
        Xh, yh, sh = make_synthetic_table(args.holdout, args.features, 1)
    gen_s = time.perf_counter() - t0
    results = [run_config(n, CONFIGS[n], X, y, Xh, yh, sh, args) for n in names]
    largest = results[0]["ensemble"]["rmse"]
    figures: dict[str, dict[str, Any]] = {}
    for r in results:
        e = r["ensemble"]
        figures[f"{r['config']}_ensemble_mb"] = {"value": e["mb_deploy"], "unit": f"MB per depth ({args.deploy_trees} trees per member)"}
        figures[f"{r['config']}_rmse_vs_largest"] = {
            "value": round(e["rmse"] / largest, 4),
            "unit": "holdout RMSE ratio to the first config",
        }
        figures[f"{r['config']}_fit_cpu_s"] = {"value": e["fit_cpu_s"], "unit": f"CPU s, all members, {args.trees} trees"}
    setup = {
        "table": args.table,
        **layout,
        "rows": args.rows,
        "holdout": args.holdout,
        "features": args.features,
        "trees": args.trees,
        "deploy_trees": args.deploy_trees,
        "max_features": args.max_features,
        "min_samples_leaf": args.min_samples_leaf,
        "members": args.members,
        "generate_s": round(gen_s, 1),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "target_sd": round(float(np.std(yh)), 4),
    }
    print(json.dumps({"name": "model_size", "setup": setup, "configs": results, "figures": figures}))


if __name__ == "__main__":
    main()
