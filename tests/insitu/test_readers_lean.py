"""The ISMN reader keeps no Python object per record: size per record, dtypes, and values against a plain parse."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from smci_dask.insitu import read_ismn
from smci_dask.insitu.readers import OBSERVATION_COLUMNS, finish_observations
from smci_dask.io import Store
from smci_dask.synthetic.world import ISMN_DIR

#: Bytes per record of the observations table: time, value and the two depths are 8-byte numbers (32 bytes) and
#: the seven text columns one-byte categorical codes (7 bytes) = 39. One text column kept as Python strings adds at
#: least a pointer and a str object (> 50 bytes) per record, so 48 leaves room for index and categories only.
MAX_BYTES_PER_RECORD = 48


@pytest.fixture(scope="module")
def tiny_ismn(tiny_world: tuple[Store, dict[str, Any]]) -> tuple[Path, Any]:
    store, _ = tiny_world
    folder = Path(store.url_of(ISMN_DIR).removeprefix("file://"))
    return folder, read_ismn(folder)


def _plain_parse(path: Path) -> pd.DataFrame:
    """One header+values file read line by line with the standard library: time, value, qflag, provider_flag."""
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            parts = line.split()
            if not parts:
                continue
            value = float(parts[2])
            if not np.isfinite(value):
                continue
            rows.append(
                (
                    dt.datetime.strptime(parts[0] + " " + parts[1], "%Y/%m/%d %H:%M"),
                    value,
                    parts[3] if len(parts) > 3 else "",
                    parts[4] if len(parts) > 4 else "",
                )
            )
    return pd.DataFrame(rows, columns=["time", "value", "qflag", "provider_flag"])


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, dtypes (categories included), index and values; categorical columns compared by codes (fast)."""
    assert list(a.columns) == list(b.columns) and a.index.equals(b.index)
    for c in a.columns:
        assert a[c].dtype == b[c].dtype, c
        if isinstance(a[c].dtype, pd.CategoricalDtype):
            assert a[c].cat.categories.equals(b[c].cat.categories), c
            np.testing.assert_array_equal(a[c].cat.codes.to_numpy(), b[c].cat.codes.to_numpy(), err_msg=c)
        else:
            np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=c)


def test_tiny_world_observations_are_lean(tiny_ismn: tuple[Path, Any]) -> None:
    _, data = tiny_ismn
    obs = data.observations
    assert len(obs) > 100_000
    per_record = obs.memory_usage(deep=True).sum() / len(obs)
    assert per_record < MAX_BYTES_PER_RECORD, obs.memory_usage(deep=True) / len(obs)
    for c in ("station_id", "network", "station", "variable", "sensor", "qflag", "provider_flag"):
        assert isinstance(obs[c].dtype, pd.CategoricalDtype), c
    # exactly what the shared finishing step gives (order, dtypes, categories, sort)
    _assert_same_table(finish_observations(obs), obs)
    assert list(obs.columns) == list(OBSERVATION_COLUMNS)


@pytest.mark.parametrize("variable", ["sm", "ts", "p"])
def test_values_times_flags_match_a_plain_parse(tiny_ismn: tuple[Path, Any], variable: str) -> None:
    folder, data = tiny_ismn
    files = sorted(p for p in folder.rglob("*.stm") if f"_{variable}_" in p.name)
    path = files[len(files) // 2]
    row = data.sensors[data.sensors["file"].map(lambda f: os.path.basename(str(f))) == path.name]
    assert len(row) == 1
    r = row.iloc[0]
    obs = data.observations
    mine = obs[
        (obs["station_id"] == r["station_id"])
        & (obs["variable"] == variable)
        & (obs["depth_from_m"] == r["depth_from_m"])
        & (obs["sensor"] == r["sensor"])
    ]
    expected = _plain_parse(path)
    assert len(expected) > 1000 and len(mine) == len(expected)
    np.testing.assert_array_equal(mine["time"].to_numpy(), expected["time"].to_numpy(dtype="datetime64[ns]"))
    np.testing.assert_array_equal(mine["value"].to_numpy(), expected["value"].to_numpy())
    for c in ("qflag", "provider_flag"):
        assert mine[c].astype(str).tolist() == expected[c].tolist()


def test_duplicates_across_copies_and_order(tmp_path: Path, tiny_ismn: tuple[Path, Any]) -> None:
    """A series in two files (a copy with a later name, one value changed) keeps the first file's records, sorted."""
    folder, _ = tiny_ismn
    src = sorted(folder.rglob("*_sm_*.stm"))[0]
    header, *records = [line for line in src.read_text().splitlines() if line.strip()]
    a = tmp_path / "X" / src.name
    b = tmp_path / "Y" / src.name
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text("\n".join([header, *records[:100][::-1]]) + "\n")  # records 0-99, reversed
    changed = records[49].split()
    changed[2] = "0.9999"
    b.write_text("\n".join([header, *records[39:49], " ".join(changed), *records[50:159]]) + "\n")  # 39-158: 61 repeat X's
    data = read_ismn(tmp_path)
    obs = data.observations
    assert len(obs) == 159 and obs["time"].is_monotonic_increasing
    assert 0.9999 not in obs["value"].to_numpy()
    dup = [i for i in data.issues if "duplicate timestamps" in i]
    assert len(dup) == 1 and "/Y/" in dup[0] and ": 61 duplicate timestamps" in dup[0]
    _assert_same_table(finish_observations(obs), obs)


def test_files_parsed_on_a_cluster_give_the_same_tables_as_here(tiny_ismn: tuple[Path, Any], tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    folder, _ = tiny_ismn
    # three stations; with variables sm and p only, the files of other variables are skipped
    sub = tmp_path / "ismn"
    for station in sorted(p.name for p in (folder / "SYNTH").iterdir())[:3]:
        shutil.copytree(folder / "SYNTH" / station, sub / "SYNTH" / station)
    variables = ("sm", "p")
    here = read_ismn(sub, variables=variables)
    # worker processes: the tasks and their files' loaders go through pickle as on a real cluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        there = read_ismn(sub, variables=variables, client=client)
    assert len(here.observations) > 100_000 and set(here.observations["variable"].astype(str)) == set(variables)
    _assert_same_table(there.observations, here.observations)
    pd.testing.assert_frame_equal(there.stations, here.stations)
    pd.testing.assert_frame_equal(there.sensors, here.sensors)
    other = [f for f in sub.rglob("*.stm") if f.name.split("_")[3] not in variables]
    assert there.issues == here.issues and any(f"skipped {len(other)} files" in i for i in here.issues), here.issues
