"""The one feature function (:mod:`smci_dask.features.build`): covariate blocks -> features of days x 1 km cells."""

from __future__ import annotations

from smci_dask.features.build import (
    FEATURE_NAMES,
    FEATURE_UNITS,
    FEATURES,
    LOOKBACK_DAYS,
    TP_SUMS,
    CoarseSampling,
    Feature,
    FeatureBlock,
    FeatureSources,
    build_features,
    coarse_sampling,
    delayed_features_for_tile,
    features_at_cells,
    features_for_tile,
    open_feature_sources,
)

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_UNITS",
    "LOOKBACK_DAYS",
    "TP_SUMS",
    "CoarseSampling",
    "Feature",
    "FeatureBlock",
    "FeatureSources",
    "build_features",
    "coarse_sampling",
    "delayed_features_for_tile",
    "features_at_cells",
    "features_for_tile",
    "open_feature_sources",
]
