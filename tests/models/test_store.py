"""Model store: native formats + JSON card, checksums and features verified, no pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smci_dask.errors import InputError, StoreError
from smci_dask.features import FEATURE_NAMES
from smci_dask.io import Store
from smci_dask.models import (
    fingerprint_table,
    fit_member,
    load_card,
    load_model,
    load_model_cached,
    make_ensemble,
    model_checksum,
    model_dir,
    save_model,
)

HYPER = {"n_estimators": 20, "subsample": 0.632, "max_depth": None, "seed": 1, "max_features": 3, "min_samples_leaf": 10}
FEATURES = [f"x{i}" for i in range(6)]


@pytest.fixture(scope="module")
def trained() -> dict[str, object]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 6))
    y = X[:, 0] ** 2 + np.sin(X[:, 1]) + 0.1 * rng.normal(size=1200)
    members = {m: fit_member(m, X, y, **HYPER) for m in ("lightgbm", "xgboost", "sklearn")}
    return {"X": X, "y": y, "members": members}


def _ensemble(trained: dict[str, object], names: tuple[str, ...] = ("lightgbm", "xgboost")):  # noqa: ANN202
    return make_ensemble({n: trained["members"][n] for n in names}, FEATURES, params=HYPER)


def test_round_trip_gives_identical_predictions(any_store: Store, trained: dict[str, object]) -> None:
    ens = _ensemble(trained)
    fp = fingerprint_table(trained["X"], trained["y"], FEATURES)
    card = save_model(any_store, "r1", "final", 10, ens, training_fingerprint=fp, cv_scores={"rmse_mean": 0.1})
    folder = model_dir("r1", "final", 10)
    assert any_store.ls(folder) == ["card.json", "lightgbm.txt", "xgboost.ubj"]
    assert any_store.read_text(f"{folder}/lightgbm.txt").startswith("tree")
    loaded = load_model(any_store, "r1", "final", 10, features=FEATURES)
    X = trained["X"][:300]
    np.testing.assert_array_equal(loaded.predict(X), ens.predict(X))
    for name, pred in ens.predict_members(X).items():
        np.testing.assert_array_equal(loaded.predict_members(X)[name], pred)
    stored = load_card(any_store, "r1", "final", 10)
    assert stored["features"] == FEATURES and stored["training_fingerprint"] == fp
    assert stored["hyper_parameters"]["min_samples_leaf"] == 10 and stored["cv_scores"]["rmse_mean"] == 0.1
    assert {"lightgbm", "xgboost", "scikit-learn", "numpy"} <= set(stored["library_versions"])
    assert stored["code_version"] and stored["created"].endswith("+00:00")
    assert stored["checksum"] == model_checksum(stored) == card["checksum"]


def test_tampered_file_is_a_clear_error(tmp_path, trained: dict[str, object]) -> None:  # noqa: ANN001
    store = Store.from_url(tmp_path)
    save_model(store, "r1", "final", 20, _ensemble(trained), training_fingerprint="x")
    path = f"{model_dir('r1', 'final', 20)}/xgboost.ubj"
    data = bytearray(store.read_bytes(path))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(path, bytes(data))
    with pytest.raises(InputError, match=r"xgboost\.ubj: SHA-256 .* does not match"):
        load_model(store, "r1", "final", 20, features=FEATURES)


def test_feature_mismatch_and_missing_model(tmp_path, trained: dict[str, object]) -> None:  # noqa: ANN001
    store = Store.from_url(tmp_path)
    save_model(store, "r1", "year", 30, _ensemble(trained), training_fingerprint="x")
    with pytest.raises(InputError, match="different order"):
        load_model(store, "r1", "year", 30, features=FEATURES[::-1])
    with pytest.raises(InputError, match=r"missing \['x5'\]"):
        load_model(store, "r1", "year", 30, features=FEATURES[:5])
    with pytest.raises(StoreError, match="does not exist"):
        load_model(store, "r1", "year", 40, features=FEATURES)


def test_default_check_is_the_current_feature_function(tmp_path, trained: dict[str, object]) -> None:  # noqa: ANN001
    """A model trained on another feature list (e.g. before the feature function changed) is refused by default."""
    store = Store.from_url(tmp_path)
    save_model(store, "old", "final", 10, _ensemble(trained), training_fingerprint="x")
    with pytest.raises(InputError, match="re-train the model with the current feature function") as info:
        load_model(store, "old", "final", 10)
    assert f"missing {sorted(FEATURES)}, unexpected {sorted(FEATURE_NAMES)}" in str(info.value)
    with pytest.raises(InputError, match="re-train"):
        load_model_cached(store, "old", "final", 10)
    assert load_model(store, "old", "final", 10, features=None).feature_names == FEATURES  # None: no check
    # a model on the current list loads with the default
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, len(FEATURE_NAMES)))
    ens = make_ensemble({"xgboost": fit_member("xgboost", X, X[:, 0], **HYPER)}, FEATURE_NAMES)
    save_model(store, "new", "final", 10, ens, training_fingerprint="y")
    np.testing.assert_array_equal(load_model(store, "new", "final", 10).predict(X[:50]), ens.predict(X[:50]))


def test_never_reads_pickle_and_sklearn_is_not_stored(tmp_path, trained: dict[str, object]) -> None:  # noqa: ANN001
    store = Store.from_url(tmp_path)
    with_ref = _ensemble(trained, ("lightgbm", "xgboost", "sklearn"))
    with pytest.raises(InputError, match="pickle"):
        save_model(store, "r1", "final", 10, with_ref, training_fingerprint="x")
    card = save_model(store, "r1", "final", 10, with_ref, training_fingerprint="x", drop_reference=True)
    assert set(card["members"]) == {"lightgbm", "xgboost"} and card["ensemble"]["dropped"] == ["sklearn"]
    assert sum(card["ensemble"]["weights"].values()) == pytest.approx(1)
    # a card pointing at a pickle is refused before anything is read
    folder = model_dir("r1", "final", 10)
    bad = json.loads(store.read_text(f"{folder}/card.json"))
    bad["members"]["xgboost"]["file"] = "model.pkl"
    store.write_text(f"{folder}/card.json", json.dumps(bad))
    with pytest.raises(InputError, match="refusing to load"):
        load_model(store, "r1", "final", 10, features=FEATURES)


def test_fingerprint_tracks_the_table(trained: dict[str, object]) -> None:
    X, y = trained["X"], trained["y"]
    a = fingerprint_table(X, y, FEATURES)
    assert a == fingerprint_table(X.copy(), y.copy(), FEATURES)
    X2 = X.copy()
    X2[5, 2] += 1e-9
    assert fingerprint_table(X2, y, FEATURES) != a
    assert fingerprint_table(X, y, FEATURES[::-1]) != a
    import pandas as pd

    assert fingerprint_table(pd.DataFrame(X, columns=FEATURES), y) == a


def test_cached_load_reads_members_once(tmp_path, trained: dict[str, object]) -> None:  # noqa: ANN001
    store = Store.from_url(tmp_path)
    save_model(store, "r2", "final", 10, _ensemble(trained), training_fingerprint="x")
    first = load_model_cached(store, "r2", "final", 10, features=FEATURES)
    assert load_model_cached(store, "r2", "final", 10, features=FEATURES) is first
    # a re-trained model (new files, new card) is loaded anew
    retrained = make_ensemble({"xgboost": trained["members"]["xgboost"]}, FEATURES)
    save_model(store, "r2", "final", 10, retrained, training_fingerprint="y")
    second = load_model_cached(store, "r2", "final", 10, features=None)
    assert second is not first and list(second.members) == ["xgboost"]
    assert store.ls(model_dir("r2", "final", 10)) == ["card.json", "xgboost.ubj"]
    with pytest.raises(InputError, match="different order"):
        load_model_cached(store, "r2", "final", 10, features=FEATURES[::-1])
