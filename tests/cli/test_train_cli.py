"""`smci train` through the CLI: one depth on a copy of the session's training table; errors as one line."""

from __future__ import annotations

import io
import json
import shutil
from typing import Any

import pandas as pd
from click.testing import CliRunner

from smci_dask.cli.main import cli
from smci_dask.io import Store
from smci_dask.models import load_card, load_model, model_dir

#: A one-worker in-process cluster and a tiny search (2 x 1 grid, 2 folds, 8 trees) through the environment.
ENV = {
    "SMCI__CLUSTER__LOCAL__PROCESSES": "false",
    "SMCI__CLUSTER__LOCAL__N_WORKERS": "1",
    "SMCI__MODEL__N_ESTIMATORS": "8",
    "SMCI__MODEL__SEARCH__MAX_FEATURES": "[4, 12]",
    "SMCI__MODEL__SEARCH__MIN_SAMPLES_LEAF": "[50]",
    "SMCI__MODEL__SEARCH__N_FOLDS": "2",
}


def test_train_one_depth_with_dask_ml_and_random_cv(tiny_trained: tuple[Store, dict[str, Any]], tmp_path) -> None:  # noqa: ANN001
    source, _ = tiny_trained
    root = tmp_path / "stores"
    shutil.copytree(source.join("training/table"), root / "training" / "table")
    args = ["train", "--store", str(root), "--run", "cli", "--depths", "10", "--profile", "demo", "--engine", "dask-ml", "--cv", "random"]
    res = CliRunner().invoke(cli, [*args, "--format", "json"], env=ENV)
    assert res.exit_code == 0, res.output
    assert "[train] 10 cm:" in res.output and "search: 0/" in res.output  # progress lines
    report = json.loads(res.output[res.output.index("{") :])
    assert report["run"] == "cli" and list(report["depths"]) == ["10"]
    assert report["settings"]["profile"] == "demo" and report["settings"]["n_estimators"] == 8 and report["settings"]["engine"] == "dask-ml"
    store = Store.from_url(str(root))
    folder = model_dir("cli", "final", 10)
    card = load_card(store, "cli", "final", 10)
    assert card["train_settings"]["cv"] == "random" and card["cv_scores"]["folds"]["ensemble"]["n_folds"] == 2
    table = pd.read_csv(io.StringIO(store.read_text(f"{folder}/cv_table.csv")))
    ens = table[table["member"] == "ensemble"]
    assert report["depths"]["10"]["params"]["max_features"] == int(ens.loc[ens["rmse_mean"].idxmin(), "max_features"])
    # the demo profile compares random k-fold with grouped-by-station CV; the configured one here is random
    opt = pd.read_csv(io.StringIO(store.read_text(f"{folder}/cv_optimism.csv"))).set_index("member")
    assert opt.loc["ensemble", "rmse_random"] == ens["rmse_mean"].min()
    assert load_model(store, "cli", "final", 10).feature_names == card["features"]

    # a second run with the same name keeps the depth (text output)
    again = CliRunner().invoke(cli, [*args, "--no-cluster"], env=ENV)
    assert again.exit_code == 0, again.output
    assert "already trained with this table and these settings: kept" in again.output and "kept from an earlier run" in again.output


def test_train_without_table_is_one_line(tmp_path) -> None:  # noqa: ANN001
    res = CliRunner().invoke(cli, ["train", "--store", str(tmp_path / "nothing"), "--no-cluster"], env=ENV)
    assert res.exit_code == 3, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "run `smci table` first" in errors[0] and "Traceback" not in res.output
    bad = CliRunner().invoke(cli, ["train", "--store", str(tmp_path), "--depths", "10,15", "--no-cluster"], env=ENV)
    assert bad.exit_code == 2 and "not product depths" in bad.output
    unknown = CliRunner().invoke(cli, ["train", "--store", str(tmp_path), "--profile", "fastest", "--no-cluster"], env=ENV)
    assert unknown.exit_code == 2 and "not a profile" in unknown.output


def test_train_help_names_outputs_and_units() -> None:
    res = CliRunner().invoke(cli, ["train", "--help"])
    assert res.exit_code == 0
    for words in ("cv_table.csv", "table2.png", "m3/m3", "--profile", "--engine", "grouped_year"):
        assert words in res.output
