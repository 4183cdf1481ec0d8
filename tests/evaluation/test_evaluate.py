"""`smci evaluate` end to end on the tiny world: both experiments, the report, and the CLI re-using the trained models."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from smci_dask.cli.main import cli
from smci_dask.evaluation.metrics import pearson_r, ubrmse
from smci_dask.evaluation.report import changes_since
from smci_dask.evaluation.scoring import ALL_DEPTHS
from smci_dask.io import read_parquet
from smci_dask.models.store import load_card
from smci_dask.pipeline.evaluate import EvaluationReport, evaluate

RUN = "evaltest"


@pytest.fixture(scope="module")
def evaluated(eval_store) -> EvaluationReport:  # noqa: ANN001 - fixture
    lines: list[str] = []
    report = evaluate(eval_store.config(), eval_store.store, run=RUN, echo=lines.append)
    assert any("station cells train" in line for line in lines)
    return report


def _pooled(scores: pd.DataFrame, experiment: str, estimate: str, depth: int = ALL_DEPTHS, reference: str = "matched") -> pd.Series:
    sel = scores[
        (scores["experiment"] == experiment)
        & (scores["estimate"] == estimate)
        & (scores["reference"] == reference)
        & (scores["depth"] == depth)
        & (scores["group_by"] == "all")
    ]
    assert len(sel) == 1, (experiment, estimate, depth, reference)
    return sel.iloc[0]


@pytest.mark.slow
def test_both_experiments_are_trained_held_out_and_scored(eval_store, evaluated: EvaluationReport) -> None:  # noqa: ANN001
    store, table = eval_store.store, eval_store.table
    pred = read_parquet(store, f"reports/{RUN}/predictions.parquet")
    year = pred[pred["experiment"] == "year"]
    station = pred[pred["experiment"] == "station"]
    assert set(year["year"]) == {2020}
    station_test_cells = set(station["cell_id"])
    for depth in (10, 40, 100):
        card = load_card(store, RUN, "station", depth)
        assert card["experiment"] == "station"
        year_card = load_card(store, RUN, "year", depth)
        # the models were trained on the training rows only: their fingerprints differ from the full table's
        assert card["training_fingerprint"] != year_card["training_fingerprint"]
    # no test cell in the station training part
    counts = evaluated.counts.set_index("experiment")
    assert counts.loc["station", "train_cells"] + counts.loc["station", "test_cells"] == table["cell_id"].nunique()
    assert counts.loc["station", "test_cells"] == len(station_test_cells)
    # ours beats ERA5-Land's ubRMSE pooled over the depths, in both experiments
    for exp in ("year", "station"):
        ours, era = _pooled(evaluated.scores, exp, "smci"), _pooled(evaluated.scores, exp, "era5land")
        assert ours["ubrmse"] < era["ubrmse"], exp
        assert ours["ubrmse_lo"] <= ours["ubrmse"] <= ours["ubrmse_hi"]
    # held-out cells are matched on their own rows, so ERA5-Land has no bias against them: by construction
    assert abs(_pooled(evaluated.scores, "station", "era5land")["bias"]) < 1e-9
    # a score recomputed by hand from the stored predictions
    y10 = year[year["depth_cm"] == 10]
    row = _pooled(evaluated.scores, "year", "smci", 10)
    ok = y10[["smci", "obs_matched"]].dropna()
    assert row["ubrmse"] == pytest.approx(np.std(ok["smci"] - ok["obs_matched"]))
    raw = _pooled(evaluated.scores, "year", "smci", 10, "raw")
    assert raw["r"] == pytest.approx(float(pearson_r(y10["smci"], y10["obs_raw"])))
    assert raw["ubrmse"] == pytest.approx(float(ubrmse(y10["smci"], y10["obs_raw"])))
    # the extra product is scored where its depth map reaches (10, 40 cm; not 100 cm)
    somo = evaluated.scores[(evaluated.scores["estimate"] == "somo_like") & (evaluated.scores["group_by"] == "all")]
    assert set(somo["depth"]) == {10, 40, ALL_DEPTHS}
    assert station["somo_like"][station["depth_cm"] == 100].isna().all()


@pytest.mark.slow
def test_report_folder_is_complete(eval_store, evaluated: EvaluationReport) -> None:  # noqa: ANN001
    store = eval_store.store
    folder = f"reports/{RUN}"
    md = store.read_text(f"{folder}/evaluation.md")
    for part in ("## Set-up", "## Headline", "## Experiment `year`", "## Experiment `station`", "by construction", "## Importance"):
        assert part in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert len(images) >= 10
    for name in images:
        assert store.read_bytes(f"{folder}/{name}")[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads(store.read_text(f"{folder}/metrics.json"))
    assert metrics["run"] == RUN and len(metrics["headline"]) == 2 * 4  # 3 depths + all, two experiments
    csv = pd.read_csv(store.url_of(folder, "metrics.csv"))
    assert len(csv) == len(evaluated.scores)
    imp = pd.read_csv(store.url_of(folder, "importance.csv"))
    assert set(imp["kind"]) == {"feature", "family"} and set(imp["depth"]) == {10, 40, 100}
    assert "ubRMSE ours" in evaluated.summary()


@pytest.mark.slow
def test_cli_reuses_the_trained_models(eval_store, evaluated: EvaluationReport, tmp_path) -> None:  # noqa: ANN001
    cfg = eval_store.config().to_dict()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({k: cfg[k] for k in ("region", "model", "evaluation")}))
    card = load_card(eval_store.store, RUN, "year", 40)
    runner = CliRunner()
    args = ["--config", str(path), "evaluate", "--experiment", "year", "--run", RUN, "--store", str(eval_store.root), "--no-cluster"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "already trained with this table and these settings: kept" in res.output  # same split, same targets: same models
    assert load_card(eval_store.store, RUN, "year", 40)["checksum"] == card["checksum"]
    assert "ubRMSE ours" in res.output and f"reports/{RUN}/evaluation.md" in res.output
    bad = runner.invoke(cli, ["--config", str(path), "evaluate", "--store", str(eval_store.root / "nowhere"), "--no-cluster"])
    assert bad.exit_code != 0 and bad.output.startswith("error:")


def test_changes_since_the_previous_run() -> None:
    current = pd.DataFrame({"experiment": ["year"], "depth": ["10 cm"], "ubrmse_smci": [0.040], "r_smci": [0.9]})
    previous = {
        "run": "old",
        "created": "2026-01-01",
        "headline": [{"experiment": "year", "depth": "10 cm", "ubrmse_smci": 0.050, "r_smci": 0.8}],
    }
    text = changes_since(previous, current)
    assert "Against run `old`" in text and "-0.0100" in text and "0.1000" in text
    assert "No earlier" in changes_since(None, current)


def test_reuse_params_reads_the_final_models_choice(tmp_path) -> None:  # noqa: ANN001
    from smci_dask.io import Store
    from smci_dask.pipeline.evaluate import _final_params

    store = Store.from_url(str(tmp_path))
    store.write_text("models/r1/final/40cm/params.json", json.dumps({"depth_cm": 40, "max_features": 3, "min_samples_leaf": 15}))
    assert _final_params(store, "r1", [10, 40]) == {40: {"max_features": 3, "min_samples_leaf": 15}}
    assert _final_params(store, "other", [40]) == {}


@pytest.mark.slow
def test_permutation_importance_on_the_cluster_equals_the_local_one(eval_store, evaluated: EvaluationReport) -> None:  # noqa: ANN001
    """One cluster task per depth (each reading its model from the store) gives the driver's numbers, row for row."""
    from distributed import Client, LocalCluster, get_task_stream

    from smci_dask.features import FEATURE_NAMES
    from smci_dask.models.store import load_model
    from smci_dask.pipeline.evaluate import _importance

    cfg = eval_store.config()
    models = {d: load_model(eval_store.store, RUN, "year", d, features=FEATURE_NAMES) for d in (10, 100)}
    rows = eval_store.table[eval_store.table["year"] == eval_store.table["year"].max()]
    here, own_here = _importance(cfg, eval_store.store, RUN, "year", rows, models, lambda _: None, None)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        there, own_there = _importance(cfg, eval_store.store, RUN, "year", rows, models, lambda _: None, client)
    assert sorted(str(t["key"]).split("cm-")[0] for t in stream.data) == ["importance-year-10", "importance-year-100"]
    assert set(here["depth"]) == {10, 100} and len(here) > 2 * len(FEATURE_NAMES)
    pd.testing.assert_frame_equal(here, there)
    pd.testing.assert_frame_equal(own_here, own_there)


def test_report_figures_drawn_on_the_cluster_equal_those_drawn_here(eval_store, evaluated: EvaluationReport, tmp_path) -> None:  # noqa: ANN001
    from distributed import Client, LocalCluster

    from smci_dask.evaluation import figures as fig
    from smci_dask.io import Store
    from smci_dask.pipeline.evaluate import _Figures

    pred = read_parquet(eval_store.store, f"reports/{RUN}/predictions.parquet")
    year = pred[pred["experiment"] == "year"]
    written = {}
    for where in ("here", "cluster"):
        store = Store.from_url(tmp_path / where)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
            drawn = _Figures(client if where == "cluster" else None)
            shared = drawn.share(year)
            drawn.add("b.png", (fig.station_mean_scatter, shared, ["smci", "era5land"], "year"), "scatter")
            drawn.add("a.png", (fig.metric_by_depth, evaluated.scores), "metrics")
            drawn.add("c.png", (fig.distributions, shared, ["smci", "era5land"], "year"), "distributions")
            names = drawn.write(store, "figs")
        assert names == [("b.png", "scatter"), ("a.png", "metrics"), ("c.png", "distributions")]  # the order they were added
        written[where] = {n: store.read_bytes(f"figs/{n}") for n, _ in names}
    assert written["here"]["b.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert written["cluster"] == written["here"]
