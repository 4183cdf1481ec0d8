"""Feature importance: permutation importance on the test rows, and the models' own split/gain counts.

Permutation importance
    The increase of the test RMSE (m3/m3) when one feature's column, or all
    columns of one family at once (:data:`FAMILIES`, permuted by one shared
    row permutation so the family's internal relations stay intact), is
    shuffled; ``repeats`` shuffles each, mean and standard deviation reported.
    Written here rather than with ``sklearn.inspection.permutation_importance``
    because that function permutes single columns only; one code path keeps
    features and families on the same footing.
Model importance
    LightGBM's ``split`` / ``gain`` and XGBoost's ``weight`` / ``total_gain``
    per feature, each member normalised to sum 1 and then averaged over the
    members with the ensemble's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from smci_dask.evaluation.metrics import rmse
from smci_dask.features.build import FEATURE_NAMES

__all__ = ["FAMILIES", "model_importance", "permutation_importance"]

#: Feature families (the issue's groups, plus evaporation, radiation and land cover).
FAMILIES: Final[dict[str, tuple[str, ...]]] = {
    "precipitation": ("tp", "tp_sum7", "tp_sum28"),
    "temperature": ("t2m", "stl1", "stl2", "stl3", "stl4"),
    "ERA5-Land soil moisture": ("swvl1", "swvl2", "swvl3", "swvl4"),
    "evaporation": ("e", "pev"),
    "radiation": ("ssrd",),
    "LAI": ("lai", "lai_hv", "lai_lv"),
    "soil texture": ("sand", "silt", "clay", "porosity", "bulk_density", "rock_fragment"),
    "terrain": ("elevation",),
    "land cover": ("landcover",),
}


def permutation_importance(
    predict: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    *,
    feature_names: Sequence[str] = FEATURE_NAMES,
    families: Mapping[str, Sequence[str]] = FAMILIES,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Permutation importance of each feature and each family on ``(X, y)`` (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        ``kind`` (``feature`` / ``family``), ``name``, ``importance`` (mean RMSE
        increase, m3/m3), ``std`` (over the repeats), ``baseline_rmse`` (m3/m3).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    names = list(feature_names)
    base = float(rmse(predict(X), y))
    rng = np.random.default_rng(seed)
    groups: list[tuple[str, str, list[int]]] = [("feature", n, [i]) for i, n in enumerate(names)]
    for fam, members in families.items():
        idx = [names.index(m) for m in members if m in names]
        if idx:
            groups.append(("family", fam, idx))
    rows = []
    for kind, name, idx in groups:
        scores = []
        for _ in range(max(int(repeats), 1)):
            perm = rng.permutation(len(X))
            Xp = X.copy()
            Xp[:, idx] = X[perm][:, idx]
            scores.append(float(rmse(predict(Xp), y)) - base)
        rows.append({"kind": kind, "name": name, "importance": float(np.mean(scores)), "std": float(np.std(scores)), "baseline_rmse": base})
    return pd.DataFrame(rows)


def _member_importance(name: str, model: Any, features: Sequence[str]) -> dict[str, npt.NDArray[np.float64]]:
    """``split`` and ``gain`` per feature of one fitted member (native booster or scikit-learn API).

    A residual member (:class:`~smci_dask.models.OffsetModel`) reports its
    forest's splits, i.e. what explains the departure from the offset feature;
    the offset's own share shows in the permutation importance.
    """
    from smci_dask.models import OffsetModel

    if isinstance(model, OffsetModel):
        model = model.model
    n = len(features)
    booster = model.booster_ if hasattr(model, "booster_") else model
    if hasattr(model, "get_booster"):
        booster = model.get_booster()
    mod = type(booster).__module__
    if mod.startswith("lightgbm"):
        return {
            "split": np.asarray(booster.feature_importance(importance_type="split"), dtype=np.float64),
            "gain": np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64),
        }
    if mod.startswith("xgboost"):
        out = {}
        for key, kind in (("split", "weight"), ("gain", "total_gain")):
            score = booster.get_score(importance_type=kind)
            names = booster.feature_names or [f"f{i}" for i in range(n)]
            out[key] = np.array([float(score.get(f, 0.0)) for f in names], dtype=np.float64)
        return out
    if hasattr(model, "feature_importances_"):  # scikit-learn forest: impurity decrease only
        imp = np.asarray(model.feature_importances_, dtype=np.float64)
        return {"split": np.full(n, np.nan), "gain": imp}
    raise TypeError(f"member {name!r}: {type(model).__name__} has no feature importance")


def model_importance(members: Mapping[str, Any], weights: Mapping[str, float], features: Sequence[str]) -> pd.DataFrame:
    """The members' own importances (see the module docstring): ``name``, ``split``, ``gain`` (fractions summing to 1)."""
    total = {k: np.zeros(len(features)) for k in ("split", "gain")}
    wsum = {k: 0.0 for k in total}
    for name, model in members.items():
        w = float(weights.get(name, 1.0))
        for key, values in _member_importance(name, model, features).items():
            s = np.nansum(values)
            if np.isfinite(s) and s > 0:
                total[key] += w * values / s
                wsum[key] += w
    return pd.DataFrame(
        {
            "name": list(features),
            "split": total["split"] / wsum["split"] if wsum["split"] else np.nan,
            "gain": total["gain"] / wsum["gain"] if wsum["gain"] else np.nan,
        }
    )
