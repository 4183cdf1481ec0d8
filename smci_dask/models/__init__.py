"""Models: random-forest-mode LightGBM/XGBoost (scikit-learn's forest as reference), CV splits, search, model store.

- :mod:`~smci_dask.models.estimators`: :func:`make_estimator`, :func:`fit_member`, :class:`Ensemble`.
- :mod:`~smci_dask.models.cv`: grouped-by-cell and random k-fold splits.
- :mod:`~smci_dask.models.search`: grid search as Dask tasks, :func:`refit_best`.
- :mod:`~smci_dask.models.store`: native model files + JSON card; :func:`load_model` never reads pickle.
"""

from __future__ import annotations

from smci_dask.models.cv import cell_groups, grouped_kfold, make_folds, random_kfold
from smci_dask.models.estimators import (
    MEMBERS,
    Ensemble,
    OffsetModel,
    fit_member,
    fit_weights,
    make_ensemble,
    make_estimator,
    predict_member,
)
from smci_dask.models.search import Candidate, SearchResult, candidate_grid, refit_best, scores, search_from_config, search_hyperparameters
from smci_dask.models.store import fingerprint_table, load_card, load_model, load_model_cached, model_checksum, model_dir, save_model

__all__ = [
    "MEMBERS",
    "Candidate",
    "Ensemble",
    "SearchResult",
    "candidate_grid",
    "cell_groups",
    "fingerprint_table",
    "fit_member",
    "fit_weights",
    "grouped_kfold",
    "load_card",
    "load_model",
    "load_model_cached",
    "make_ensemble",
    "make_estimator",
    "make_folds",
    "model_checksum",
    "model_dir",
    "predict_member",
    "OffsetModel",
    "random_kfold",
    "refit_best",
    "save_model",
    "scores",
    "search_from_config",
    "search_hyperparameters",
]
