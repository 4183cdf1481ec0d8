"""insitu/observations written station by station reads back as one table, whatever the stations' columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from smci_dask.io import Store, read_parquet
from smci_dask.pipeline.stations import _ObservationParts


def _station(sid: str, n: int, *, flags: bool, good: bool) -> pd.DataFrame:
    rng = np.random.default_rng(len(sid) + n)
    out = pd.DataFrame(
        {
            "station_id": pd.Categorical([sid] * n),
            "time": pd.date_range("2020-01-01", periods=n, freq="h"),
            "variable": pd.Categorical(np.where(np.arange(n) % 3 == 0, "ts", "sm")),
            "value": rng.random(n),
            "qc_good": pd.array(rng.random(n) > 0.5 if good else [pd.NA] * n, dtype="boolean"),
        }
    )
    if flags:  # 300 distinct codes: int16 categorical codes, where the other station has none
        out["qc_flags"] = pd.Categorical([f"D{i % 300:03d}" for i in range(n)])
    return out


def test_parts_with_different_columns_read_back_as_one_table(tmp_path: Path) -> None:
    store = Store.from_url(str(tmp_path))
    store.write_bytes("insitu/observations/variable=old/stale.parquet", b"left by an earlier run")
    a = _station("N/A1", 900, flags=True, good=True)
    b = _station("N/B2", 500, flags=False, good=False)
    writer = _ObservationParts(store, "insitu/observations")
    writer.write(1, b)  # out of order, as tasks finish
    writer.write(0, a)
    writer.close()
    got = read_parquet(store, "insitu/observations")
    assert not store.exists("insitu/observations/variable=old")
    assert len(got) == len(a) + len(b)
    assert list(got.columns[:5]) == ["station_id", "time", "variable", "value", "qc_good"]
    got = got.sort_values(["station_id", "time"]).reset_index(drop=True)
    want = pd.concat([a, b], ignore_index=True).sort_values(["station_id", "time"]).reset_index(drop=True)
    np.testing.assert_array_equal(got["value"].to_numpy(), want["value"].to_numpy())
    assert got["variable"].astype(str).tolist() == want["variable"].astype(str).tolist()
    assert got["qc_good"].astype("boolean").isna().sum() == len(b)
    in_b = (got["station_id"].astype(str) == "N/B2").to_numpy()
    assert got.loc[in_b, "qc_flags"].isna().all()
    assert got.loc[~in_b, "qc_flags"].astype(str).tolist() == want.loc[~in_b, "qc_flags"].astype(str).tolist()
