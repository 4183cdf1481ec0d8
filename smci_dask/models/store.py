"""Fitted models as data: the libraries' own formats plus a JSON card, in any Store.

Layout below a store: ``models/<run>/<experiment>/<depth>cm/`` holding

- ``lightgbm.txt``: LightGBM's text model (``Booster.model_to_string``);
- ``xgboost.ubj``: XGBoost's UBJSON model (``Booster.save_raw('ubj')``);
- ``card.json``: features in order, hyper-parameters, ensemble weights, CV
  scores, training-data fingerprint, library versions, SHA-256 and size of
  each member file, created time (UTC), code version.

The scikit-learn forest is a reference only: scikit-learn has no format but
pickle, and no pickle is ever written to or read from a store, so it is not
stored (:func:`save_model` refuses an ensemble that needs it unless told to
drop it). Loading checks every file's checksum against the card before the
library parses it, and the feature list against the caller's (by default
the current feature function's).
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from smci_dask.errors import InputError
from smci_dask.features.build import FEATURE_NAMES
from smci_dask.io import Store
from smci_dask.models.estimators import Ensemble, OffsetModel

CARD_NAME: Final[str] = "card.json"
CARD_SCHEMA: Final[int] = 1
#: File name of each stored member, in its library's own format.
MEMBER_FILES: Final[dict[str, str]] = {"lightgbm": "lightgbm.txt", "xgboost": "xgboost.ubj"}


def model_dir(run: str, experiment: str, depth: int) -> str:
    """``models/<run>/<experiment>/<depth>cm``, relative to a store root."""
    for name, value in (("run", run), ("experiment", experiment)):
        if not value or "/" in value or value in (".", ".."):
            raise InputError(f"model {name} {value!r} must be a non-empty name without '/'")
    return f"models/{run}/{experiment}/{int(depth)}cm"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint_table(X: Any, y: Any, feature_names: Sequence[str] | None = None) -> str:
    """SHA-256 of a training table: its shape, feature names and every value of X (float64) and y.

    ``X`` is a 2-D array or a DataFrame (its columns, in ``feature_names``
    order when given). The same table gives the same fingerprint on any machine.
    """
    if hasattr(X, "columns"):
        names = [str(c) for c in (feature_names or X.columns)]
        X = X[names].to_numpy(dtype=np.float64)
    else:
        names = [str(c) for c in feature_names] if feature_names is not None else []
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    y = np.ascontiguousarray(np.asarray(y, dtype=np.float64))
    h = hashlib.sha256()
    h.update(json.dumps({"shape": list(X.shape), "features": names}).encode())
    h.update(X.tobytes(order="C"))
    h.update(y.tobytes())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import lightgbm
    import sklearn
    import xgboost

    import smci_dask

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lightgbm": lightgbm.__version__,
        "xgboost": xgboost.__version__,
        "scikit-learn": sklearn.__version__,
        "smci_dask": smci_dask.__version__,
    }


def _member_bytes(name: str, model: Any) -> bytes:
    """The native bytes of a fitted LightGBM or XGBoost member (sklearn API or booster; an OffsetModel's inner model)."""
    if isinstance(model, OffsetModel):
        model = model.model
    if name == "lightgbm":
        booster = getattr(model, "booster_", model)
        return booster.model_to_string().encode("utf-8")
    if name == "xgboost":
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        return bytes(booster.save_raw(raw_format="ubj"))
    raise InputError(f"member {name!r} has no native model format here; only {sorted(MEMBER_FILES)} are stored")


def model_checksum(card: Mapping[str, Any]) -> str:
    """A checksum of what a model computes: features, weights and member file checksums (not times).

    Workers cache loaded models by it; two cards with the same checksum predict the same.
    """
    core = {
        "features": list(card["features"]),
        "weights": {k: float(v) for k, v in card["ensemble"]["weights"].items()},
        "members": {k: v["sha256"] for k, v in card["members"].items()},
    }
    if card["ensemble"].get("offset_feature"):  # a residual model predicts differently from the same trees without it
        core["offset_feature"] = str(card["ensemble"]["offset_feature"])
    return sha256(json.dumps(core, sort_keys=True).encode())


def save_model(
    store: Store,
    run: str,
    experiment: str,
    depth: int,
    ensemble: Ensemble,
    *,
    training_fingerprint: str,
    cv_scores: Mapping[str, Any] | None = None,
    hyper_parameters: Mapping[str, Any] | None = None,
    drop_reference: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the members and the card of one depth's model; returns the card.

    Member files go first and the card last, so a card only ever points at
    complete files (each write is atomic).

    Parameters
    ----------
    drop_reference
        An ensemble with an ``'sklearn'`` member cannot be stored (that would
        need pickle). ``True`` drops it and re-normalises the other weights;
        ``False`` (default) raises :class:`InputError`.
    settings
        What produced the model beyond its hyper-parameters (search settings,
        CV strategy, ...), stored as the card's ``train_settings``: a re-run
        with the same settings and training table keeps the model.
    """
    from smci_dask import __version__

    members = dict(ensemble.members)
    weights = dict(ensemble.weights)
    dropped = [n for n in members if n not in MEMBER_FILES]
    if dropped and not drop_reference:
        raise InputError(
            f"model {run}/{experiment}/{depth}cm: members {dropped} cannot be stored (scikit-learn has no format but pickle, "
            "and pickle is never stored); drop them from model.members or save with drop_reference=True"
        )
    for n in dropped:
        members.pop(n)
        weights.pop(n)
    if not members:
        raise InputError(f"model {run}/{experiment}/{depth}cm: no LightGBM or XGBoost member to store")
    total = sum(weights.values())
    weights = {n: (w / total if total > 0 else 1.0 / len(weights)) for n, w in weights.items()}

    offsets = {m.column if isinstance(m, OffsetModel) else None for m in members.values()}
    if len(offsets) != 1:
        raise InputError(
            f"model {run}/{experiment}/{depth}cm: the members learned different targets (offset columns {offsets}); refit them together"
        )
    offset = offsets.pop()
    offset_feature = None if offset is None else str(list(ensemble.feature_names)[offset])

    folder = model_dir(run, experiment, depth)
    member_cards: dict[str, Any] = {}
    for name, model in members.items():
        data = _member_bytes(name, model)
        fname = MEMBER_FILES[name]
        store.write_bytes(f"{folder}/{fname}", data)
        member_cards[name] = {"file": fname, "format": "text" if name == "lightgbm" else "ubj", "sha256": sha256(data), "bytes": len(data)}
    card: dict[str, Any] = {
        "schema": CARD_SCHEMA,
        "run": run,
        "experiment": experiment,
        "depth_cm": int(depth),
        "features": list(ensemble.feature_names),
        "ensemble": {"method": ensemble.method, "weights": weights, "dropped": dropped, "offset_feature": offset_feature},
        "hyper_parameters": dict(hyper_parameters if hyper_parameters is not None else ensemble.params),
        "members": member_cards,
        "cv_scores": dict(cv_scores or {}),
        "training_fingerprint": training_fingerprint,
        "train_settings": dict(settings or {}),
        "library_versions": library_versions(),
        "code_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    card["checksum"] = model_checksum(card)
    store.write_text(f"{folder}/{CARD_NAME}", json.dumps(card, indent=2, sort_keys=True, default=_json_default))
    for name, fname in MEMBER_FILES.items():  # files of an earlier model that the new card no longer names
        if name not in member_cards:
            store.rm(f"{folder}/{fname}")
    return card


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def load_card(store: Store, run: str, experiment: str, depth: int) -> dict[str, Any]:
    """The JSON card of a stored model; InputError if it is missing a field or is not JSON."""
    path = f"{model_dir(run, experiment, depth)}/{CARD_NAME}"
    try:
        card = json.loads(store.read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"model card {store.url_of(path)} is not valid JSON ({exc}); re-run training for this depth") from None
    missing = [k for k in ("features", "members", "ensemble") if k not in card]
    if missing:
        raise InputError(f"model card {store.url_of(path)} lacks {missing}; it was not written by save_model")
    return card


def load_model(
    store: Store,
    run: str,
    experiment: str,
    depth: int,
    *,
    features: Sequence[str] | None = FEATURE_NAMES,
    n_jobs: int = 1,
) -> Ensemble:
    """Load one depth's ensemble after checking every member file's SHA-256 and the features.

    Parameters
    ----------
    features
        The feature names, in order, the caller will predict with; default the
        current feature function's list (:data:`~smci_dask.features.FEATURE_NAMES`).
        A different list or order is an error; ``None`` skips the check.
    n_jobs
        Threads for prediction inside a task.

    Raises
    ------
    InputError
        A member file whose checksum differs from the card's (altered or
        truncated), a file that is not in a native format, or a feature mismatch.
    StoreError
        The card or a member file does not exist or cannot be read.
    """
    card = load_card(store, run, experiment, depth)
    folder = model_dir(run, experiment, depth)
    if features is not None and list(features) != list(card["features"]):
        stored = list(card["features"])
        extra, absent = sorted(set(features) - set(stored)), sorted(set(stored) - set(features))
        what = f"missing {absent}, unexpected {extra}" if extra or absent else "same names in a different order"
        raise InputError(
            f"model {store.url_of(folder)} was trained on features {stored}; the caller has {list(features)} ({what}); "
            "re-train the model with the current feature function"
        )
    members: dict[str, Any] = {}
    for name, entry in card["members"].items():
        fname = str(entry["file"])
        if name not in MEMBER_FILES or fname != MEMBER_FILES[name]:
            raise InputError(
                f"model {store.url_of(folder)}: member {name!r} file {fname!r} is not a native LightGBM/XGBoost model; refusing to load it"
            )
        data = store.read_bytes(f"{folder}/{fname}")
        digest = sha256(data)
        if digest != entry["sha256"]:
            raise InputError(
                f"model file {store.url_of(folder, fname)}: SHA-256 {digest[:12]}... "
                f"does not match the card's {str(entry['sha256'])[:12]}...; "
                "the file was altered or partly written; re-run training for this depth"
            )
        members[name] = _load_member(name, data, n_jobs)
    offset_feature = card["ensemble"].get("offset_feature")
    if offset_feature:
        if offset_feature not in card["features"]:
            raise InputError(f"model card {store.url_of(folder, CARD_NAME)}: offset feature {offset_feature!r} is not one of its features")
        column = list(card["features"]).index(offset_feature)
        members = {name: OffsetModel(m, column) for name, m in members.items()}
    weights = {k: float(v) for k, v in card["ensemble"]["weights"].items()}
    return Ensemble(
        members, list(card["features"]), card["ensemble"].get("method", "mean"), weights, dict(card.get("hyper_parameters", {}))
    )


#: Models loaded in this process (a worker), by model checksum: a model is read once per worker.
_LOADED: dict[str, Ensemble] = {}
_LOADED_MAX: Final[int] = 32


def load_model_cached(
    store: Store, run: str, experiment: str, depth: int, *, features: Sequence[str] | None = FEATURE_NAMES, n_jobs: int = 1
) -> Ensemble:
    """:func:`load_model` through a per-process cache keyed by :func:`model_checksum`.

    Meant for inference tasks: each worker reads a depth's card (small) per
    task and its member files only the first time it meets that checksum
    (verified then). A re-trained model has a new checksum and is loaded anew.
    """
    card = load_card(store, run, experiment, depth)
    key = model_checksum(card)
    if card.get("checksum") not in (None, key):
        raise InputError(
            f"model card {store.url_of(model_dir(run, experiment, depth), CARD_NAME)}: its checksum does not match its content"
        )
    hit = _LOADED.get(key)
    if hit is not None:
        if features is not None and list(features) != hit.feature_names:
            return load_model(store, run, experiment, depth, features=features, n_jobs=n_jobs)  # raises with the full message
        return hit
    ens = load_model(store, run, experiment, depth, features=features, n_jobs=n_jobs)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = ens
    return ens


def _load_member(name: str, data: bytes, n_jobs: int) -> Any:
    if name == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_str=data.decode("utf-8"))
        booster.params["num_threads"] = n_jobs  # read by predict_member
        return booster
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    booster.set_param({"nthread": n_jobs})
    return booster
