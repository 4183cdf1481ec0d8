"""Seeded random generators and smooth random fields for the synthetic world.

Two helpers shared by the synthetic modules:

* :func:`component_rng` derives an independent :class:`numpy.random.Generator`
  for each named component of the world from the world seed, through
  :class:`numpy.random.SeedSequence` (component names are hashed with CRC-32,
  so the derivation is stable across Python runs and machines). It derives
  seeds for every synthetic component (weather, truth, ERA5, statics, LAI, stations), so they are
  interchangeable.
* :func:`smooth_field` draws a smooth, stationary, unit-variance Gaussian-like
  random field as a sum of random plane waves (random Fourier features of a
  Gaussian covariance). The waves are fixed by the generator alone and are
  evaluated at absolute longitudes and latitudes: the same generator gives the
  same value at the same place whatever the region, its extent or its tiling,
  and there is no wrap-around at the edges as with FFT-filtered noise.

:func:`soft_clip` squeezes values smoothly into an interval, used where a hard
clip would create artificial plateaus (which QC would rightly flag).
"""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Kilometres per degree of latitude (mean Earth radius 6371 km).
KM_PER_DEG = 111.195
#: Fixed reference latitude (degrees) for converting longitude to km, so a field
#: does not depend on the region it is evaluated in (cos(37 deg): North China Plain).
REFERENCE_LAT = 37.0


def component_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator for one named component of the synthetic world.

    Parameters
    ----------
    seed : int
        World seed.
    *keys : str or int
        Component names (hashed with CRC-32) and indices such as a year.

    Returns
    -------
    numpy.random.Generator
        Seeded from ``SeedSequence([seed, *keys])``: independent of every other
        ``keys`` and identical for identical arguments.
    """
    words = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


def smooth_field(
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    length_km: float,
    rng: np.random.Generator,
    *,
    n_waves: int = 96,
) -> FloatArray:
    """A smooth random field on the (lat, lon) grid, mean 0 and variance 1 in expectation.

    The field is ``sqrt(2 / n) * sum_k cos(kx_k * x + ky_k * y + phi_k)`` with
    wave vectors drawn from ``N(0, 1 / length_km**2)`` per axis (the spectrum
    of a Gaussian covariance ``exp(-r**2 / (2 * length_km**2))``) and uniform
    phases; ``x``, ``y`` are km east and north of (0 E, 0 N), using a fixed
    reference latitude for the longitude scale. The sum separates into two
    matrix products, so a China-size grid costs about a second.

    Parameters
    ----------
    lat : array_like, shape (rows,)
        Cell-centre latitudes, degrees.
    lon : array_like, shape (cols,)
        Cell-centre longitudes, degrees.
    length_km : float
        Correlation length, km (> 0).
    rng : numpy.random.Generator
        Source of the waves; the same generator state gives the same field.
    n_waves : int
        Number of plane waves (more: closer to Gaussian).

    Returns
    -------
    ndarray, shape (rows, cols), float64, dimensionless
    """
    if length_km <= 0:
        raise ValueError(f"length_km must be > 0, got {length_km}")
    k = rng.normal(0.0, 1.0 / float(length_km), size=(n_waves, 2))  # rad/km
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
    y = np.asarray(lat, dtype=np.float64) * KM_PER_DEG
    x = np.asarray(lon, dtype=np.float64) * KM_PER_DEG * np.cos(np.deg2rad(REFERENCE_LAT))
    # cos(a + b) = cos a cos b - sin a sin b, with a = kx x + phi (per column), b = ky y (per row)
    ax = np.outer(x, k[:, 0]) + phase  # (cols, n)
    by = np.outer(y, k[:, 1])  # (rows, n)
    field = np.cos(by) @ np.cos(ax).T - np.sin(by) @ np.sin(ax).T
    return field * np.sqrt(2.0 / n_waves)


def soft_clip(values: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike, margin: float) -> FloatArray:
    """Squeeze values into ``(lo, hi)`` smoothly: unchanged inside ``[lo + margin, hi - margin]``.

    Beyond the inner interval values approach the bounds exponentially
    (continuous, with a continuous first derivative), so no two distinct inputs
    give the same output and no plateau appears.

    Parameters
    ----------
    values, lo, hi : array_like (broadcastable)
        Values and bounds, in the same units.
    margin : float
        Width of the transition zone, same units (> 0).

    Returns
    -------
    ndarray, float64, units of ``values``
    """
    v = np.array(values, dtype=np.float64)  # a copy, changed in place below
    lo_b = np.broadcast_to(np.asarray(lo, dtype=np.float64), v.shape)
    hi_b = np.broadcast_to(np.asarray(hi, dtype=np.float64), v.shape)
    top = hi_b - margin
    high = v > top  # only the few values near the bounds pay for the exponentials
    v[high] = hi_b[high] - margin * np.exp(-(v[high] - top[high]) / margin)
    bottom = lo_b + margin
    low = v < bottom
    v[low] = lo_b[low] + margin * np.exp(-(bottom[low] - v[low]) / margin)
    return v
