"""Partial correlation per cell (SMCI1.0's Fig. 10): the inverse-correlation formula against residual regression by hand."""

from __future__ import annotations

import numpy as np
import pytest

from smci_dask.errors import InputError
from smci_dask.products.partial_corr import partial_correlation


def _by_residuals(y: np.ndarray, x: np.ndarray, others: list[np.ndarray]) -> float:
    """Correlation of the residuals of y and x after least squares on the other drivers (with an intercept)."""
    A = np.column_stack([np.ones_like(y), *others])
    ry = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    rx = x - A @ np.linalg.lstsq(A, x, rcond=None)[0]
    return float(np.corrcoef(ry, rx)[0, 1])


def test_partial_correlation_equals_residual_regression_for_every_cell() -> None:
    rng = np.random.default_rng(5)
    n, ny, nx = 11, 3, 4  # eleven years, as the paper's 2010-2020
    tp, t2m, ssrd = (rng.normal(size=(n, ny, nx)) for _ in range(3))
    t2m = t2m + 0.6 * ssrd  # correlated drivers: partial and plain correlations differ
    sm = 0.8 * tp - 0.3 * t2m + 0.5 * rng.normal(size=(n, ny, nx))
    got = partial_correlation(sm, {"tp": tp, "t2m": t2m, "ssrd": ssrd})
    drivers = {"tp": tp, "t2m": t2m, "ssrd": ssrd}
    for name, x in drivers.items():
        others = [v for k, v in drivers.items() if k != name]
        want = np.array([[_by_residuals(sm[:, i, j], x[:, i, j], [o[:, i, j] for o in others]) for j in range(nx)] for i in range(ny)])
        np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-10)
    plain = np.array([[np.corrcoef(sm[:, i, j], t2m[:, i, j])[0, 1] for j in range(nx)] for i in range(ny)])
    assert np.abs(got["t2m"] - plain).max() > 0.05  # controlling for the others changes the number


def test_cells_with_a_gap_a_constant_series_or_too_few_periods_get_nan_or_an_error() -> None:
    rng = np.random.default_rng(1)
    y, a, b, c = (rng.normal(size=(8, 3)) for _ in range(4))
    y[2, 0] = np.nan  # a gap in cell 0
    a[:, 1] = 3.0  # a constant driver in cell 1
    out = partial_correlation(y, {"a": a, "b": b, "c": c})
    for v in out.values():
        assert np.isnan(v[0]) and np.isfinite(v[2]) and -1 <= v[2] <= 1  # the gap: nothing
    # the constant driver has no partial correlation, and the others are controlled for the one driver left
    assert np.isnan(out["a"][1])
    assert out["b"][1] == pytest.approx(_by_residuals(y[:, 1], b[:, 1], [c[:, 1]]), abs=1e-10)
    assert out["c"][1] == pytest.approx(_by_residuals(y[:, 1], c[:, 1], [b[:, 1]]), abs=1e-10)
    flat = y.copy()
    flat[:, 2] = 0.25  # constant soil moisture: nothing to correlate
    assert all(np.isnan(v[2]) for v in partial_correlation(flat, {"a": a, "b": b, "c": c}).values())
    with pytest.raises(InputError, match="at least 5"):
        partial_correlation(y[:4], {"a": a[:4], "b": b[:4], "c": c[:4]})
