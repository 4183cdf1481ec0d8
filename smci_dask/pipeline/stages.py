"""Stages that remember what they did: fingerprints, completion records, ``--from`` / ``--only``.

A pipeline is an ordered list of :class:`Stage`. Each stage names what its
result depends on (:attr:`Stage.inputs`: the config sections it reads, the
files it ingests as ``(url, size, modified)`` listings, anything JSON-able).
Its *fingerprint* is the SHA-256 of that material together with the
fingerprints of the stages before it, so a change upstream makes every later
stage out of date, and a change in one stage's own settings only redoes that
stage and what follows.

After a stage finishes, its record (fingerprint, result, seconds, code
version, finish time) is written atomically to
``pipeline/stages/<name>.json`` below the store root. A stage whose record
holds the current fingerprint is *up to date* and skipped. A stage killed
halfway leaves no record (or the previous run's, with an older fingerprint),
so the next run redoes it; each stage's own writes are idempotent, which is
what makes redoing safe.

:func:`run_stages` runs the out-of-date stages in order; ``start`` (``smci run
--from``) forces a stage and every later one to run, ``only`` limits the run
to the named stages (each still skipped when up to date; the others are
neither run nor checked), ``force`` runs every selected stage, done or not.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from smci_dask import __version__
from smci_dask.errors import ConfigError, StoreError
from smci_dask.io import Store

#: Where stage records live below the store root.
RECORDS_RELPATH: Final = "pipeline/stages"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    ``run(context)`` does the work and returns a JSON-able dict of figures
    for the summary; ``inputs(context)`` returns the JSON-able material its
    result depends on (cheap to compute: listings and settings, not data).
    """

    name: str
    doc: str
    run: Callable[[Any], Mapping[str, Any]]
    inputs: Callable[[Any], Any] = lambda context: None


@dataclass
class StageOutcome:
    """What happened to one stage in :func:`run_stages`."""

    name: str
    status: str  # "ran", "up to date", "not selected"
    fingerprint: str
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


def fingerprint(material: Any, upstream: str = "") -> str:
    """SHA-256 (hex) of ``material`` serialised as canonical JSON, chained to ``upstream``'s fingerprint."""
    text = json.dumps(material, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256((upstream + "\n" + text).encode()).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return str(obj)


def file_listing(store: Store, sources: Iterable[str]) -> list[list[Any]]:
    """``[url, size, modified]`` of every file a source names (a file, a folder or a glob), sorted.

    The fingerprint material of ingested inputs: a changed, added or removed
    file changes it, without reading any file's bytes. ``modified`` is the
    object store's ETag or the file's mtime, whichever the filesystem gives.
    """
    fs = store.fs
    out: list[list[Any]] = []
    for source in sources:
        path = fs._strip_protocol(source) if "://" in str(source) else str(source)
        try:
            if any(ch in path for ch in "*?["):
                infos = fs.glob(path, detail=True)
            elif fs.isdir(path):
                infos = fs.find(path, detail=True)
            else:
                infos = {path: fs.info(path)}
        except FileNotFoundError:
            infos = {}
        for name, info in sorted(dict(infos).items()):
            if info.get("type") == "directory":
                continue
            stamp = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or info.get("last_modified")
            out.append([str(name), int(info.get("size") or 0), str(stamp)])
    return out


def read_record(store: Store, name: str) -> dict[str, Any] | None:
    """The completion record of stage ``name`` (None when it never finished)."""
    relpath = f"{RECORDS_RELPATH}/{name}.json"
    if not store.exists(relpath):
        return None
    try:
        return json.loads(store.read_text(relpath))
    except ValueError as exc:  # a record is written atomically; a broken one is someone else's write
        raise StoreError(f"{store.url_of(relpath)}: stage record is not JSON ({exc}); delete it to redo stage '{name}'") from exc


def write_record(store: Store, name: str, fp: str, seconds: float, result: Mapping[str, Any]) -> None:
    """Mark stage ``name`` complete with fingerprint ``fp`` (one atomic write)."""
    record = {
        "stage": name,
        "fingerprint": fp,
        "seconds": round(seconds, 3),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": __version__,
        "result": dict(result),
    }
    store.write_text(f"{RECORDS_RELPATH}/{name}.json", json.dumps(record, indent=2, sort_keys=True, default=_json_default))


def check_names(stages: Sequence[Stage], names: Iterable[str], option: str) -> None:
    """Raise a ConfigError naming the known stages when one of ``names`` is not a stage."""
    known = [s.name for s in stages]
    for n in names:
        if n not in known:
            raise ConfigError(f"{option} {n!r}: no such stage; the stages are {', '.join(known)}")


def run_stages(
    stages: Sequence[Stage],
    context: Any,
    store: Store,
    *,
    start: str | None = None,
    only: Sequence[str] | None = None,
    force: bool = False,
    echo: Echo = print,
) -> list[StageOutcome]:
    """Run the out-of-date stages of ``stages`` in order (see the module docstring); one outcome per stage."""
    if start is not None:
        check_names(stages, [start], "--from")
    if only:
        check_names(stages, only, "--only")
    forced_from = [s.name for s in stages].index(start) if start is not None else len(stages)
    outcomes: list[StageOutcome] = []
    upstream = ""
    n = len(stages)
    for i, stage in enumerate(stages):
        fp = fingerprint({"stage": stage.name, "inputs": stage.inputs(context)}, upstream)
        upstream = fp
        tag = f"[{i + 1}/{n} {stage.name}]"
        if only and stage.name not in only:
            outcomes.append(StageOutcome(stage.name, "not selected", fp))
            continue
        record = read_record(store, stage.name)
        forced = force or i >= forced_from
        if not forced and record is not None and record.get("fingerprint") == fp:
            echo(f"{tag} up to date (finished {record.get('finished')}), skipped")
            outcomes.append(StageOutcome(stage.name, "up to date", fp, float(record.get("seconds", 0.0)), dict(record.get("result", {}))))
            continue
        why = "forced" if forced else ("inputs or settings changed" if record is not None else "not done yet")
        echo(f"{tag} {stage.doc} ({why})")
        t0 = time.perf_counter()
        result = dict(stage.run(context) or {})
        seconds = time.perf_counter() - t0
        write_record(store, stage.name, fp, seconds, result)
        echo(f"{tag} done in {seconds:.1f} s")
        outcomes.append(StageOutcome(stage.name, "ran", fp, seconds, result))
    return outcomes
