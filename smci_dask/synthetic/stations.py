"""Synthetic in-situ stations: placement, hourly series with sensor errors and faults, station files.

* :func:`place_stations` puts ``n`` stations on land, denser in the east than
  in the west (longitude drawn, stratified, from a density growing as
  ``exp(2 x)`` from the west edge ``x = 0`` to the east edge ``x = 1``: 7.4
  times denser at the east edge, 73 % of the stations in the eastern half),
  about 17 % of them sharing a 1 km cell with another station.
  About 60 % are CMA-like (``FDR-CMA``, all ten product depths), the others
  ISMN-like (``ThetaProbe-ML2X``, four to six depths).
* :func:`make_station_series` turns the daily truth at the stations into
  hourly sensor readings: linear interpolation between daily centres (noon
  UTC), a small diurnal wiggle, a per-sensor bias U(-0.05, 0.05) m3/m3 and a
  sensor error (:func:`sensor_error`: a slow AR(1) drift of 0.008 m3/m3
  standard deviation and 100 h e-folding time, plus 0.001 m3/m3 white noise),
  squeezed smoothly into (0, saturation). Hour to hour such a record is calm,
  as real probe records are, so the isolated spikes and steps below are what
  the Dorigo et al. (2013) criteria are designed for (their spike and break
  tests compare second differences either side of the hour to 5-20 %, which
  hourly white noise of 0.01 m3/m3 would swamp). It then injects the faults
  the checks are built to catch and records every corrupted (or removed)
  hourly record in a fault table:

  =====================  ==================================================
  fault                  what happens to the readings
  =====================  ==================================================
  ``negative``           1-6 h of values U(-0.05, -0.01) m3/m3
  ``above_0.6``          1-6 h of values U(0.61, 0.85) m3/m3
  ``spike``              one hour moved by +-U(0.08, 0.25) m3/m3, 12 clean
                         hours either side
  ``break``              level shift of +-U(0.10, 0.20) m3/m3 for 3-20 days
  ``saturation_plateau`` 12-48 h at the station's saturation, starting at
                         a rainy hour where there is one
  ``low_plateau``        sudden drop to a constant U(0.01, 0.05) m3/m3
                         (at least 0.08 below the reading), 12-72 h
  ``frozen``             every hour with soil temperature < 0 C at the
                         sensor's depth: liquid water only, 30-60 % of the
                         reading (the colder, the lower)
  ``gap``                2 h to 30 days of records removed (log-uniform
                         length), per sensor or for the whole station
  =====================  ==================================================

  Every record carries at most one fault. Faults other than frozen readings
  keep clean records around them (a day around gaps and plateaus, two days
  around breaks, 12 hours around spikes, two around out-of-range values), so each
  can be seen on its own. The clean readings never leave [0, saturation].
* :func:`write_ismn`, :func:`write_station_csv`, :func:`write_station_table`,
  :func:`write_faults` write the ISMN header+values files, a long CSV table,
  the station metadata and the fault table.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr
from scipy import ndimage, signal

from smci_dask import conventions as cv
from smci_dask.errors import GridError, InputError
from smci_dask.grid.spec import GridSpec
from smci_dask.synthetic.fields import component_rng, soft_clip

FloatArray = npt.NDArray[np.float64]

NETWORK = "SYNTH"
SENSOR_CMA = "FDR-CMA"
SENSOR_ML2X = "ThetaProbe-ML2X"
#: Sensors of the other ISMN variables (soil temperature, air temperature, precipitation).
SENSOR_TS = "PT-100"
SENSOR_TA = "HMP155"
SENSOR_P = "Pluviometer"
#: ISMN depths (m) of air temperature (2 m above ground) and precipitation.
DEPTH_TA_M = -2.0
DEPTH_P_M = 0.0

#: Fault types, in the order they are coded in :func:`make_station_series` (code = index + 1).
FAULT_TYPES: tuple[str, ...] = ("gap", "frozen", "break", "saturation_plateau", "low_plateau", "spike", "negative", "above_0.6")
_CODE = {name: i + 1 for i, name in enumerate(FAULT_TYPES)}

#: Depth layouts (cm) of the ISMN-like stations.
_ML2X_LAYOUTS: tuple[tuple[int, ...], ...] = ((10, 20, 40, 60, 100), (10, 20, 50, 100), (10, 30, 60, 90), (10, 20, 30, 50, 70, 100))
_EAST_EXPONENT = 2.0
_SHARED_SHARE = 0.085  # pairs per station: ~17 % of stations share a cell

#: Expected fault events per sensor and year (8766 h).
FAULT_RATES: dict[str, float] = {
    "gap_station": 1.2,
    "gap": 0.5,
    "break": 0.8,
    "saturation_plateau": 1.0,
    "low_plateau": 1.0,
    "spike": 10.0,
    "negative": 2.0,
    "above_0.6": 2.0,
}
_HOURS_PER_YEAR = 8766.0
#: Sensor error, m3/m3: a slow drift (AR(1), this standard deviation, e-folding time SENSOR_DRIFT_HOURS) ...
SENSOR_DRIFT_M3M3 = 0.008
SENSOR_DRIFT_HOURS = 100.0
#: ... plus white noise of this standard deviation, hour to hour.
SENSOR_NOISE_M3M3 = 0.001
#: Size of a break (level shift), m3/m3: from .. to.
BREAK_SHIFT_M3M3 = (0.10, 0.20)
#: Clean hours kept on each side of a spike (Dorigo's spike test looks at the 12 h either side).
SPIKE_MARGIN_HOURS = 12


# ------------------------------------------------------------------ placement
def place_stations(grid: GridSpec, statics: xr.Dataset, n: int, seed: int) -> pd.DataFrame:
    """Place ``n`` stations on land fine cells, denser in the east (see the module docstring).

    Parameters
    ----------
    grid : GridSpec
        Fine grid of the region.
    statics : xarray.Dataset
        From :func:`~smci_dask.synthetic.statics.make_statics`.
    n : int
        Number of stations.
    seed : int
        World seed.

    Returns
    -------
    pandas.DataFrame
        One row per station, sorted by ``station``: ``station`` (``SYN0001``
        ...), ``network`` (``SYNTH``), ``lat``, ``lon`` (degrees, 5 decimals,
        inside the cell, never on its centre), ``elevation`` (m),
        ``depths`` (list of product depths in cm), ``sensor``,
        ``saturation`` (m3/m3, the cell's porosity to 2 decimals), ``row``,
        ``col`` (fine cell), ``landcover`` (IGBP), ``climate_zone`` (Koppen
        code, e.g. ``Dwa``), ``sand``, ``silt``, ``clay`` (%), ``porosity``
        (m3/m3).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 station, got {n}")
    rng = component_rng(seed, "stations", "place")
    land = np.asarray(statics["landcover"].values) != cv.WATER_CLASS
    if land.sum() < n:
        raise ValueError(f"the region has {int(land.sum())} land cells, fewer than the {n} stations asked for")
    n_pairs = int(round(_SHARED_SHARE * n)) if n >= 4 else 0
    n_sites = n - n_pairs
    k = _EAST_EXPONENT
    cells: list[tuple[int, int]] = []
    used: set[tuple[int, int]] = set()
    # stratified in longitude (one station per quantile of the exp(k x) density), uniform in latitude;
    # a draw on water or on a taken cell is drawn again within the same stratum
    for stratum in rng.permutation(n_sites):
        for _ in range(500):
            u = (stratum + rng.random()) / n_sites
            xf = np.log1p(u * np.expm1(k)) / k  # inverse CDF of the density ~ exp(k x) on [0, 1)
            r = min(int(rng.random() * grid.nrows), grid.nrows - 1)
            c = min(int(xf * grid.ncols), grid.ncols - 1)
            if land[r, c] and (r, c) not in used:
                break
        else:
            free = np.argwhere(land)
            free = [tuple(int(v) for v in rc) for rc in free if tuple(int(v) for v in rc) not in used]
            if not free:
                raise ValueError(f"could not place {n} stations on the land of region {grid.bbox}")
            r, c = free[int(rng.integers(len(free)))]
        used.add((r, c))
        cells.append((r, c))
    hosts = rng.choice(n_sites, size=n_pairs, replace=False) if n_pairs else np.array([], dtype=int)
    all_cells = cells + [cells[int(h)] for h in hosts]
    order = rng.permutation(n)
    rows = np.array([all_cells[i][0] for i in order], dtype=np.int64)
    cols = np.array([all_cells[i][1] for i in order], dtype=np.int64)
    # offsets from the cell centre: 0.05-0.45 cell in each direction, never on the centre
    off = rng.uniform(0.05, 0.45, size=(n, 2)) * rng.choice([-1.0, 1.0], size=(n, 2))
    clat, clon = grid.latlon(rows, cols)
    lat = np.round(clat + off[:, 0] / cv.FINE_PER_DEGREE, 5)
    lon = np.round(clon + off[:, 1] / cv.FINE_PER_DEGREE, 5)
    r2, c2 = grid.rowcol(lat, lon)
    if not ((r2 == rows).all() and (c2 == cols).all()):  # cannot happen: offsets stay 0.05 cell from the edges
        raise GridError("station placement: a rounded position left its cell")

    cma = rng.random(n) < 0.6
    layouts = rng.integers(len(_ML2X_LAYOUTS), size=n)
    depths = [list(cv.DEPTHS_CM) if cma[i] else list(_ML2X_LAYOUTS[layouts[i]]) for i in range(n)]

    def at(name: str) -> npt.NDArray[np.float64]:
        return np.asarray(statics[name].values, dtype=np.float64)[rows, cols]

    elevation = np.round(at("elevation") + rng.normal(0.0, 3.0, size=n), 2)
    climate = np.asarray(statics["climate_zone"].values)[rows, cols]
    return pd.DataFrame(
        {
            "station": [f"SYN{i + 1:04d}" for i in range(n)],
            "network": NETWORK,
            "lat": lat,
            "lon": lon,
            "elevation": elevation,
            "depths": depths,
            "sensor": np.where(cma, SENSOR_CMA, SENSOR_ML2X),
            "saturation": np.round(at("porosity"), 2),
            "row": rows,
            "col": cols,
            "landcover": np.asarray(statics["landcover"].values)[rows, cols].astype(np.int64),
            "climate_zone": [cv.KOPPEN_CLASSES.get(int(z), "") for z in climate],
            "sand": np.round(at("sand"), 2),
            "silt": np.round(at("silt"), 2),
            "clay": np.round(at("clay"), 2),
            "porosity": np.round(at("porosity"), 4),
        }
    )


# ------------------------------------------------------------------ hourly series
def _sensor_table(stations: pd.DataFrame) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(station index, depth cm) of every sensor, ordered by station then depth."""
    idx: list[int] = []
    dep: list[int] = []
    for i, ds in enumerate(stations["depths"]):
        for d in sorted(int(x) for x in ds):
            if d not in cv.DEPTHS_CM:
                raise InputError(f"station {stations['station'].iloc[i]}: depth {d} cm is not a product depth {cv.DEPTHS_CM}")
            idx.append(i)
            dep.append(d)
    return np.array(idx, dtype=np.int64), np.array(dep, dtype=np.int64)


def soil_temperature_at_depth(t_top: FloatArray, depth_cm: float) -> FloatArray:
    """Hourly soil temperature (deg C) at ``depth_cm`` from the temperature at 10 cm.

    The diurnal part (deviation from a 5-day running mean) is damped with an
    e-folding depth of 12 cm, the slower part (deviation of the running mean
    from the series mean) with 250 cm; at 10 cm the input is returned.

    Parameters
    ----------
    t_top : ndarray, shape (hours, ...)
        Soil temperature at 10 cm, deg C.
    depth_cm : float
        Sensor depth, cm.

    Returns
    -------
    ndarray, shape of ``t_top``, deg C
    """
    dz = max(float(depth_cm) - 10.0, 0.0)
    if dz == 0.0:
        return np.asarray(t_top, dtype=np.float64)
    t = np.asarray(t_top, dtype=np.float64)
    slow = ndimage.uniform_filter1d(t, size=121, axis=0, mode="nearest")
    mean = t.mean(axis=0, keepdims=True)
    return mean + (slow - mean) * np.exp(-dz / 250.0) + (t - slow) * np.exp(-dz / 12.0)


class _Faults:
    """Placement of fault events on (sensor, hour) arrays with clean margins."""

    def __init__(self, n_sensors: int, n_hours: int, rng: np.random.Generator) -> None:
        self.code = np.zeros((n_sensors, n_hours), dtype=np.int8)
        self.reserved = np.zeros((n_sensors, n_hours), dtype=bool)
        self.rng = rng
        self.n_hours = n_hours

    def free(self, s: int, a: int, b: int, margin: int) -> bool:
        lo, hi = a - margin, b + margin
        if lo < 0 or hi > self.n_hours:
            return False
        return not self.reserved[s, lo:hi].any()

    def place_gap(self, sensors: npt.NDArray[np.int64], length: int, margin: int = 24, tries: int = 30) -> None:
        length = min(length, self.n_hours)
        for _ in range(tries):
            a = int(self.rng.integers(0, self.n_hours - length + 1))
            if not self.reserved[sensors, max(a - margin, 0) : a + length + margin].any():
                self.mark(sensors, a, a + length, "gap", margin)
                return

    def mark(self, s: int | npt.NDArray[np.int64], a: int, b: int, fault: str, margin: int) -> None:
        self.code[s, a:b] = _CODE[fault]
        self.reserved[s, max(a - margin, 0) : min(b + margin, self.n_hours)] = True

    def count(self, rate_per_year: float) -> int:
        """Number of events of a fault with ``rate_per_year`` events per sensor-year (Poisson)."""
        return int(self.rng.poisson(rate_per_year * self.n_hours / _HOURS_PER_YEAR))


def sensor_error(rng: np.random.Generator, n_sensors: int, n_hours: int) -> FloatArray:
    """Hourly sensor error (m3/m3), shape (sensors, hours): a stationary AR(1) drift plus white noise.

    The drift (standard deviation :data:`SENSOR_DRIFT_M3M3`, lag-one
    correlation ``exp(-1 / SENSOR_DRIFT_HOURS)``) stands for the slow
    temperature and calibration wander of capacitance probes; the white part
    (:data:`SENSOR_NOISE_M3M3`) for the reading's own scatter. Hour-to-hour
    differences stay small, as in real hourly records, so a spike or a step
    stands out as the Dorigo et al. (2013) criteria expect.
    """
    rho = float(np.exp(-1.0 / SENSOR_DRIFT_HOURS))
    shocks = rng.normal(0.0, SENSOR_DRIFT_M3M3 * np.sqrt(1.0 - rho * rho), size=(n_sensors, n_hours))
    start = rng.normal(0.0, SENSOR_DRIFT_M3M3, size=(n_sensors, 1))  # the stationary state before the first hour
    drift = signal.lfilter([1.0], [1.0, -rho], shocks, axis=1, zi=rho * start)[0]
    drift += rng.normal(0.0, SENSOR_NOISE_M3M3, size=(n_sensors, n_hours))
    return drift


def _gap_length(rng: np.random.Generator) -> int:
    return int(np.exp(rng.uniform(np.log(2.0), np.log(720.0))))


def make_station_series(
    stations: pd.DataFrame,
    truth_at_stations: npt.ArrayLike,
    days: pd.DatetimeIndex,
    soil_temp_hourly: npt.ArrayLike,
    air_temp_hourly: npt.ArrayLike,
    precip_hourly: npt.ArrayLike,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly sensor readings at the stations with errors and recorded faults.

    Parameters
    ----------
    stations : pandas.DataFrame
        From :func:`place_stations` (``station``, ``lon``, ``depths``, ``saturation``).
    truth_at_stations : array_like, shape (days, 10, stations)
        Daily true soil moisture at the stations' cells for the product
        depths ``conventions.DEPTHS_CM``, m3/m3.
    days : pandas.DatetimeIndex
        The days of ``truth_at_stations`` (consecutive, UTC midnight).
    soil_temp_hourly : array_like, shape (hours, stations) or (hours, 10, stations)
        Soil temperature, deg C: at 10 cm (damped to deeper sensors with
        :func:`soil_temperature_at_depth`) or per product depth.
        ``hours = 24 * len(days)``, starting at ``days[0]`` 00:00 UTC.
    air_temp_hourly : array_like, shape (hours, stations)
        Air temperature at 2 m, deg C.
    precip_hourly : array_like, shape (hours, stations)
        Precipitation in the hour, mm.
    seed : int
        World seed.

    Returns
    -------
    observations : pandas.DataFrame
        Long form, sorted by station, depth, time; gaps dropped: ``station``
        (categorical), ``time`` (hourly, UTC, tz-naive), ``depth_cm``,
        ``sm`` (m3/m3, 4 decimals), ``soil_temperature`` (deg C, 2 decimals),
        ``air_temperature`` (deg C, 2 decimals), ``precipitation`` (mm, 2
        decimals).
    faults : pandas.DataFrame
        One row per corrupted or removed record, same order: ``station``,
        ``depth_cm``, ``time``, ``fault`` (one of :data:`FAULT_TYPES`),
        ``sm_clean`` (the reading without the fault, m3/m3) and ``sm`` (the
        corrupted reading; NaN for gaps).
    """
    days = pd.DatetimeIndex(days)
    n = len(stations)
    truth = np.asarray(truth_at_stations, dtype=np.float64)
    n_days = len(days)
    if truth.shape != (n_days, len(cv.DEPTHS_CM), n):
        raise InputError(f"truth_at_stations has shape {truth.shape}; expected (days, depths, stations) = {(n_days, len(cv.DEPTHS_CM), n)}")
    if n_days > 1 and (np.diff(days.values) != np.timedelta64(1, "D")).any():
        raise InputError("days must be consecutive calendar days (one per row of truth_at_stations)")
    n_hours = 24 * n_days
    hours = pd.date_range(days[0].normalize(), periods=n_hours, freq="h")
    ts_in = np.asarray(soil_temp_hourly, dtype=np.float64)
    ta = np.asarray(air_temp_hourly, dtype=np.float64)
    pr = np.asarray(precip_hourly, dtype=np.float64)
    for name, arr in (("air_temp_hourly", ta), ("precip_hourly", pr)):
        if arr.shape != (n_hours, n):
            raise InputError(f"{name} has shape {arr.shape}; expected (hours, stations) = {(n_hours, n)}")
    if ts_in.shape not in ((n_hours, n), (n_hours, len(cv.DEPTHS_CM), n)):
        raise InputError(f"soil_temp_hourly has shape {ts_in.shape}; expected {(n_hours, n)} or {(n_hours, len(cv.DEPTHS_CM), n)}")

    st_idx, depth = _sensor_table(stations)
    n_sensors = st_idx.size
    d_idx = np.searchsorted(np.asarray(cv.DEPTHS_CM), depth)
    sat = stations["saturation"].to_numpy(dtype=np.float64)[st_idx][:, None]
    lon = stations["lon"].to_numpy(dtype=np.float64)[st_idx][:, None]

    # clean hourly readings, shape (sensors, hours): linear between daily centres (noon UTC)
    daily = truth[:, d_idx, st_idx].T  # (sensors, days)
    interp = np.empty((n_sensors, n_hours), dtype=np.float64)
    interp[:, :12] = daily[:, :1]
    interp[:, n_hours - 12 :] = daily[:, -1:]
    wk = np.arange(24) / 24.0
    interp[:, 12 : n_hours - 12] = (daily[:, :-1, None] * (1.0 - wk) + daily[:, 1:, None] * wk).reshape(n_sensors, -1)
    # diurnal wiggle, largest at 05 local solar time, damped with depth
    local_hour = (np.arange(24)[None, :] + lon / 15.0) % 24.0
    wiggle = 0.002 * np.exp(-(depth[:, None] - 10.0) / 20.0) * np.cos(2.0 * np.pi * (local_hour - 5.0) / 24.0)
    by_day = interp.reshape(n_sensors, n_days, 24)  # a view: interp is contiguous
    by_day += wiggle[:, None, :]
    rng = component_rng(seed, "stations", "series")
    bias = rng.uniform(-0.05, 0.05, size=(n_sensors, 1))
    interp += bias
    interp += sensor_error(rng, n_sensors, n_hours)
    clean = np.round(soft_clip(interp, 0.0, sat, 0.03), 4)
    del interp

    # soil temperature at each sensor's depth, (sensors, hours)
    soil_t = np.empty((n_sensors, n_hours), dtype=np.float32)
    for d in np.unique(depth):
        sel = np.flatnonzero(depth == d)
        if ts_in.ndim == 3:
            soil_t[sel] = ts_in[:, cv.DEPTHS_CM.index(int(d)), st_idx[sel]].T
        else:
            soil_t[sel] = soil_temperature_at_depth(ts_in[:, st_idx[sel]], d).T
    np.round(soil_t, 2, out=soil_t)

    obs = clean.copy()
    f = _Faults(n_sensors, n_hours, component_rng(seed, "stations", "faults"))
    frng = f.rng
    # gaps: whole-station outages, then single-sensor ones; a day apart at least, so each stays <= 30 days
    for i in range(n):
        sensors = np.flatnonzero(st_idx == i)
        for _ in range(f.count(FAULT_RATES["gap_station"])):
            f.place_gap(sensors, _gap_length(frng))
    for s in range(n_sensors):
        for _ in range(f.count(FAULT_RATES["gap"])):
            f.place_gap(np.array([s]), _gap_length(frng))
    # frozen soil: every remaining hour below 0 C
    frozen = np.nonzero((soil_t < 0.0) & (f.code == 0))
    factor = 0.6 - 0.3 * np.clip(-soil_t[frozen] / 2.0, 0.0, 1.0)  # liquid share 30-60 %, lower when colder
    obs[frozen] = np.round(clean[frozen] * factor, 4)
    f.code[frozen] = _CODE["frozen"]
    f.reserved[frozen] = True
    for s in range(n_sensors):
        _inject_events(f, s, obs, clean, float(sat[s, 0]), pr[:, st_idx[s]])
    obs = np.round(obs, 4)

    # long tables
    station_dtype = pd.CategoricalDtype(pd.Index(stations["station"].astype(str)))
    keep = f.code != _CODE["gap"]
    sensor_of_row, t_idx = np.nonzero(keep)
    observations = pd.DataFrame(
        {
            "station": pd.Categorical.from_codes(st_idx[sensor_of_row], dtype=station_dtype),
            "time": hours.values[t_idx],
            "depth_cm": depth[sensor_of_row].astype(np.int16),
            "sm": obs[keep],
            "soil_temperature": soil_t[keep],
            "air_temperature": np.round(ta[t_idx, st_idx[sensor_of_row]], 2).astype(np.float32),
            "precipitation": np.round(pr[t_idx, st_idx[sensor_of_row]], 2).astype(np.float32),
        }
    )
    fs, fh = np.nonzero(f.code)
    codes = f.code[fs, fh]
    faults = pd.DataFrame(
        {
            "station": pd.Categorical.from_codes(st_idx[fs], dtype=station_dtype),
            "depth_cm": depth[fs].astype(np.int16),
            "time": hours.values[fh],
            "fault": pd.Categorical.from_codes(codes.astype(np.int64) - 1, categories=list(FAULT_TYPES)),
            "sm_clean": clean[fs, fh],
            "sm": np.where(codes == _CODE["gap"], np.nan, obs[fs, fh]),
        }
    )
    return observations, faults


def _inject_events(f: _Faults, s: int, obs: FloatArray, clean: FloatArray, sat: float, rain: FloatArray) -> None:
    """Place the non-gap, non-frozen faults of sensor ``s`` in ``obs`` (in place)."""
    rng = f.rng
    n_hours = f.n_hours
    tries = 30

    def start(length: int, margin: int) -> int | None:
        for _ in range(tries):
            a = int(rng.integers(margin, max(margin + 1, n_hours - length - margin)))
            if f.free(s, a, a + length, margin):
                return a
        return None

    for _ in range(f.count(FAULT_RATES["break"])):
        length = int(rng.integers(72, 481))
        a = start(length, 48)
        if a is None:
            continue
        seg = clean[s, a : a + length]
        shift = round(rng.uniform(BREAK_SHIFT_M3M3[0], BREAK_SHIFT_M3M3[1]), 4)
        for sign in rng.permutation([-1.0, 1.0]):
            moved = seg + sign * shift
            if moved.min() >= 0.005 and moved.max() <= sat - 0.005:
                obs[s, a : a + length] = moved
                f.mark(s, a, a + length, "break", 48)
                break
    rainy = np.flatnonzero(rain > 0.5)
    for _ in range(f.count(FAULT_RATES["saturation_plateau"])):
        length = int(rng.integers(12, 49))
        a = None
        for _ in range(tries):
            cand = int(rng.choice(rainy)) if rainy.size and rng.random() < 0.8 else int(rng.integers(0, n_hours))
            if f.free(s, cand, cand + length, 24):
                a = cand
                break
        if a is None:
            continue
        obs[s, a : a + length] = sat
        f.mark(s, a, a + length, "saturation_plateau", 24)
    for _ in range(f.count(FAULT_RATES["low_plateau"])):
        length = int(rng.integers(12, 73))
        for _ in range(tries):
            a = start(length, 24)
            if a is not None and clean[s, a] >= 0.09:
                level = round(rng.uniform(0.01, min(0.05, clean[s, a] - 0.08)), 4)
                obs[s, a : a + length] = level
                f.mark(s, a, a + length, "low_plateau", 24)
                break
    for _ in range(f.count(FAULT_RATES["spike"])):
        a = start(1, SPIKE_MARGIN_HOURS)
        if a is None:
            continue
        size = round(rng.uniform(0.08, 0.25), 4)
        for sign in rng.permutation([-1.0, 1.0]):
            value = clean[s, a] + sign * size
            if 0.005 <= value <= min(sat, 0.6):
                obs[s, a] = value
                f.mark(s, a, a + 1, "spike", SPIKE_MARGIN_HOURS)
                break
    for fault, lo, hi in (("negative", -0.05, -0.01), ("above_0.6", 0.61, 0.85)):
        for _ in range(f.count(FAULT_RATES[fault])):
            length = int(rng.integers(1, 7))
            a = start(length, 2)
            if a is None:
                continue
            obs[s, a : a + length] = np.round(rng.uniform(lo, hi, size=length), 4)
            f.mark(s, a, a + length, fault, 2)
