"""Stage records: skip what is up to date, redo what changed, --from / --only, a killed stage is redone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smci_dask.errors import ConfigError
from smci_dask.io import Store
from smci_dask.pipeline.stages import Stage, file_listing, read_record, run_stages


class Boom(RuntimeError):
    pass


def make_stages(settings: dict[str, Any], calls: Counter[str], fail: set[str]) -> list[Stage]:
    def work(name: str) -> Any:
        def run(ctx: Any) -> dict[str, Any]:
            calls[name] += 1
            if name in fail:
                raise Boom(name)
            return {"value": settings[name]}

        return run

    return [Stage(n, f"stage {n}", work(n), lambda ctx, n=n: settings[n]) for n in ("a", "b", "c")]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.from_url(str(tmp_path / "root"))


def statuses(outcomes: list[Any]) -> list[str]:
    return [o.status for o in outcomes]


def test_second_run_skips_and_a_change_redoes_that_stage_and_later(store: Store) -> None:
    settings = {"a": 1, "b": 2, "c": 3}
    calls: Counter[str] = Counter()
    lines: list[str] = []
    assert statuses(run_stages(make_stages(settings, calls, set()), None, store, echo=lines.append)) == ["ran"] * 3
    assert statuses(run_stages(make_stages(settings, calls, set()), None, store, echo=lines.append)) == ["up to date"] * 3
    assert calls == Counter({"a": 1, "b": 1, "c": 1})
    assert any("up to date" in line for line in lines)

    settings["b"] = 20
    out = run_stages(make_stages(settings, calls, set()), None, store, echo=lines.append)
    assert statuses(out) == ["up to date", "ran", "ran"]
    assert read_record(store, "b")["result"] == {"value": 20}
    assert calls == Counter({"a": 1, "b": 2, "c": 2})


def test_from_and_only(store: Store) -> None:
    settings = {"a": 1, "b": 2, "c": 3}
    calls: Counter[str] = Counter()
    run_stages(make_stages(settings, calls, set()), None, store, echo=lambda m: None)
    out = run_stages(make_stages(settings, calls, set()), None, store, start="b", echo=lambda m: None)
    assert statuses(out) == ["up to date", "ran", "ran"]
    out = run_stages(make_stages(settings, calls, set()), None, store, only=["a"], echo=lambda m: None)
    assert statuses(out) == ["up to date", "not selected", "not selected"]
    out = run_stages(make_stages(settings, calls, set()), None, store, only=["a"], force=True, echo=lambda m: None)
    assert statuses(out) == ["ran", "not selected", "not selected"]
    assert calls == Counter({"a": 2, "b": 2, "c": 2})
    with pytest.raises(ConfigError, match="no such stage.*a, b, c"):
        run_stages(make_stages(settings, calls, set()), None, store, only=["nope"], echo=lambda m: None)
    with pytest.raises(ConfigError, match="--from 'x'"):
        run_stages(make_stages(settings, calls, set()), None, store, start="x", echo=lambda m: None)


def test_a_stage_killed_halfway_is_redone_and_the_earlier_ones_are_not(store: Store) -> None:
    settings = {"a": 1, "b": 2, "c": 3}
    calls: Counter[str] = Counter()
    with pytest.raises(Boom):
        run_stages(make_stages(settings, calls, {"b"}), None, store, echo=lambda m: None)
    assert read_record(store, "a") is not None and read_record(store, "b") is None and read_record(store, "c") is None
    out = run_stages(make_stages(settings, calls, set()), None, store, echo=lambda m: None)
    assert statuses(out) == ["up to date", "ran", "ran"]
    assert calls == Counter({"a": 1, "b": 2, "c": 1})


def test_file_listing_changes_with_the_files(tmp_path: Path) -> None:
    store = Store.from_url(str(tmp_path))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.nc").write_bytes(b"12345")
    first = file_listing(store, [str(tmp_path / "in" / "*.nc")])
    assert [Path(f[0]).name for f in first] == ["x.nc"] and first[0][1] == 5
    assert file_listing(store, [str(tmp_path / "in")]) == first
    (tmp_path / "in" / "y.nc").write_bytes(b"1")
    assert len(file_listing(store, [str(tmp_path / "in" / "*.nc")])) == 2
    assert file_listing(store, [str(tmp_path / "missing" / "*.nc")]) == []
