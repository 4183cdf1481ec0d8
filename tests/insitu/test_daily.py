"""Daily means, gap filling and cell averages against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smci_dask.errors import InputError
from smci_dask.grid import GridSpec
from smci_dask.insitu.daily import CELL_COLUMNS, daily_means, describe_dropped, fill_gaps, to_cells

GRID = GridSpec.from_bbox((115.0, 37.0, 115.5, 37.5))
DAY = pd.Timestamp("2019-07-01")


def _hourly(station: str, times: list[pd.Timestamp] | pd.DatetimeIndex, values: list[float] | np.ndarray, **extra: object) -> pd.DataFrame:
    n = len(times)
    frame = pd.DataFrame(
        {
            "station_id": station,
            "network": station.split("/")[0],
            "time": pd.DatetimeIndex(times).as_unit("ns"),
            "variable": "sm",
            "depth_from_m": 0.05,
            "depth_to_m": 0.05,
            "sensor": "probe",
            "value": np.asarray(values, dtype=np.float64),
        }
    )
    for k, v in extra.items():
        frame[k] = v if np.ndim(v) == 0 else np.asarray(v)
    assert len(frame) == n
    return frame


def _hours(day: pd.Timestamp, n: int, start: int = 0) -> pd.DatetimeIndex:
    return pd.date_range(day + pd.Timedelta(hours=start), periods=n, freq="h")


# ------------------------------------------------------------------ daily means
def test_daily_mean_of_a_full_day_and_min_hours_rule() -> None:
    full = _hourly("N/A", _hours(DAY, 24), np.linspace(0.1, 0.33, 24))
    twelve = _hourly("N/A", _hours(DAY + pd.Timedelta(days=1), 12, start=6), np.full(12, 0.2))
    eleven = _hourly("N/A", _hours(DAY + pd.Timedelta(days=2), 11), np.full(11, 0.3))
    out = daily_means(pd.concat([full, twelve, eleven], ignore_index=True))
    assert list(out["time"]) == [DAY, DAY + pd.Timedelta(days=1)]  # 11 hours: dropped
    assert out["sm"].iloc[0] == pytest.approx(np.linspace(0.1, 0.33, 24).mean(), abs=1e-15)
    assert out["sm"].iloc[1] == pytest.approx(0.2)
    assert list(out["n_hours"]) == [24, 12]
    assert not out["filled"].any()
    assert out.attrs == {"rows_used": 47, "days_short": 1}
    # a lower threshold keeps the short day
    assert len(daily_means(pd.concat([full, twelve, eleven]), min_hours=11)) == 3


def test_sub_hourly_values_are_averaged_within_the_hour_first() -> None:
    times = [DAY, DAY + pd.Timedelta(minutes=30), *_hours(DAY, 11, start=1)]
    values = [0.1, 0.3, *([0.5] * 11)]
    out = daily_means(_hourly("N/A", times, values))
    assert out["n_hours"].iloc[0] == 12  # 13 records in 12 clock hours
    assert out["sm"].iloc[0] == pytest.approx((0.2 + 11 * 0.5) / 12)  # not the mean of the 13 records
    assert out["sm"].iloc[0] != pytest.approx(np.mean(values))


def test_qc_good_nan_and_other_variables() -> None:
    values = np.full(14, 0.25)
    values[0] = 0.9  # flagged by QC
    values[1] = np.nan
    good = np.ones(14, dtype=bool)
    good[0] = False
    frame = _hourly("N/A", _hours(DAY, 14), values, qc_good=good)
    other = _hourly("N/A", _hours(DAY, 24), np.full(24, 20.0)).assign(variable="ts")
    out = daily_means(pd.concat([frame, other], ignore_index=True))
    assert len(out) == 1 and out["n_hours"].iloc[0] == 12 and out["sm"].iloc[0] == pytest.approx(0.25)
    # one more bad hour: too few hours left
    good[2] = False
    assert daily_means(frame.assign(qc_good=good)).empty
    # without the column every finite value counts, the 0.9 too
    out = daily_means(frame.drop(columns="qc_good"))
    assert out["n_hours"].iloc[0] == 13 and out["sm"].iloc[0] == pytest.approx((0.9 + 12 * 0.25) / 13)
    with pytest.raises(InputError, match="qc_good"):
        daily_means(frame.assign(qc_good=np.where(good, "G", "C01")))


def test_series_are_kept_apart_and_sorted() -> None:
    a = _hourly("N/B", _hours(DAY, 24), np.full(24, 0.2))
    b = _hourly("N/A", _hours(DAY, 24), np.full(24, 0.3)).assign(depth_from_m=0.2, depth_to_m=0.2)
    c = _hourly("N/A", _hours(DAY, 24), np.full(24, 0.1))
    out = daily_means(pd.concat([a, b, c], ignore_index=True))
    assert list(zip(out["station_id"], out["depth_from_m"], out["sm"], strict=True)) == [
        ("N/A", 0.05, pytest.approx(0.1)),
        ("N/A", 0.2, pytest.approx(0.3)),
        ("N/B", 0.05, pytest.approx(0.2)),
    ]


def test_utc_offset_moves_the_day_boundary() -> None:
    # 16:00 UTC of 1 July to 15:00 UTC of 2 July is 2 July 00:00-23:00 at UTC+8
    frame = _hourly("CMA/1", _hours(DAY, 24, start=16), np.full(24, 0.2))
    utc = daily_means(frame)
    assert list(utc["time"]) == [DAY + pd.Timedelta(days=1)]
    assert list(utc["n_hours"]) == [16]  # 2 July 00-15 UTC; 1 July has only 8 hours
    local = daily_means(frame, utc_offset_hours=8)
    assert list(local["time"]) == [DAY + pd.Timedelta(days=1)] and list(local["n_hours"]) == [24]
    per_network = daily_means(frame, utc_offset_hours={"CMA": 8.0})
    pd.testing.assert_frame_equal(per_network, local)


def test_daily_means_bad_arguments_and_empty_input() -> None:
    frame = _hourly("N/A", _hours(DAY, 24), np.full(24, 0.2))
    with pytest.raises(InputError, match="min_hours"):
        daily_means(frame, min_hours=25)
    with pytest.raises(InputError, match="value"):
        daily_means(frame.drop(columns="value"))
    empty = daily_means(frame.iloc[:0])
    assert empty.empty and {"time", "sm", "n_hours", "filled"} <= set(empty.columns)
    assert fill_gaps(empty).empty
    cells = to_cells(fill_gaps(empty), pd.DataFrame({"station_id": ["N/A"], "lat": [37.2], "lon": [115.2]}), GRID)
    assert cells.empty and tuple(cells.columns) == CELL_COLUMNS


# ------------------------------------------------------------------ gap filling
def _daily(station: str, days: list[int], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station_id": station,
            "depth_from_m": 0.05,
            "depth_to_m": 0.05,
            "sensor": "probe",
            "time": [DAY + pd.Timedelta(days=d) for d in days],
            "sm": values,
            "n_hours": np.int16(24),
            "filled": False,
        }
    )


def test_gaps_up_to_ten_days_are_filled_longer_ones_stay_empty_and_ends_are_not_extrapolated() -> None:
    """The issue's rule by hand: valid values within 5 days before or after; gaps over 10 days stay empty."""
    # kept days 0, 1 | 2-11 missing (10 days) | 12 | 13-23 missing (11 days) | 24 | 25 | 26-28 missing (3) | 29
    daily = _daily("N/A", [0, 1, 12, 24, 25, 29], [0.10, 0.20, 0.42, 0.30, 0.33, 0.21])
    out = fill_gaps(daily)
    days = [(t - DAY).days for t in out["time"]]
    assert days == [*range(0, 13), 24, 25, 26, 27, 28, 29]
    filled = out[out["filled"]]
    assert [(t - DAY).days for t in filled["time"]] == [*range(2, 12), 26, 27, 28]
    # hand computation: day 1 (0.20) to day 12 (0.42) is 11 days, +0.02 a day; day 25 (0.33) to day 29 (0.21), -0.03 a day
    expected = [0.22, 0.24, 0.26, 0.28, 0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.30, 0.27, 0.24]
    np.testing.assert_allclose(filled["sm"], expected, rtol=0, atol=1e-12)
    assert (filled["n_hours"] == 0).all() and (out.loc[~out["filled"], "n_hours"] == 24).all()
    assert out.attrs["days_filled"] == 13
    assert out["station_id"].eq("N/A").all() and out["sensor"].eq("probe").all()


def test_gap_filling_options_and_series_boundaries() -> None:
    daily = _daily("N/A", [0, 12], [0.1, 0.34])  # an 11-day gap
    assert len(fill_gaps(daily)) == 2
    wide = fill_gaps(daily, max_distance_days=6, max_gap_days=11)
    np.testing.assert_allclose(wide["sm"], 0.1 + 0.02 * np.arange(13), atol=1e-12)
    # only the edges: days within 2 of a kept day, of a gap no longer than 11 days
    edges = fill_gaps(daily, max_distance_days=2, max_gap_days=11)
    assert [(t - DAY).days for t in edges["time"]] == [0, 1, 2, 10, 11, 12]
    np.testing.assert_allclose(edges["sm"], [0.1, 0.12, 0.14, 0.30, 0.32, 0.34], atol=1e-12)
    assert len(fill_gaps(_daily("N/A", [0, 2], [0.1, 0.3]), max_gap_days=0)) == 2
    assert len(fill_gaps(_daily("N/A", [0, 2], [0.1, 0.3]), max_distance_days=0)) == 2
    # never across two series: A ends on day 1, B starts on day 3
    two = pd.concat([_daily("N/A", [0, 1], [0.1, 0.1]), _daily("N/B", [3, 4], [0.5, 0.5])], ignore_index=True)
    assert len(fill_gaps(two)) == 4
    # unsorted input, NaN rows are missing days
    messy = _daily("N/A", [3, 0, 1], [0.4, 0.1, np.nan])
    out = fill_gaps(messy)
    np.testing.assert_allclose(out["sm"], [0.1, 0.2, 0.3, 0.4], atol=1e-15)
    assert list(out["filled"]) == [False, True, True, False]
    with pytest.raises(InputError, match="twice"):
        fill_gaps(_daily("N/A", [0, 0], [0.1, 0.2]))
    with pytest.raises(InputError, match="max_gap_days"):
        fill_gaps(daily, max_gap_days=-1)
    with pytest.raises(InputError, match="max_distance_days"):
        fill_gaps(daily, max_distance_days=-1)


# ------------------------------------------------------------------ cells
def test_to_cells_averages_stations_sharing_a_cell() -> None:
    lat_a, lon_a = 37.25040, 115.25040
    lat_b, lon_b = 37.25060, 115.25060  # same 1 km cell as A
    ra, ca = GRID.rowcol(lat_a, lon_a)
    assert GRID.rowcol(lat_b, lon_b) == (ra, ca)
    stations = pd.DataFrame(
        {
            "station_id": ["N/A", "N/B", "N/C", "N/D"],
            "lat": [lat_a, lat_b, 37.1, 38.0],  # D lies outside the region
            "lon": [lon_a, lon_b, 115.1, 115.2],
        }
    )
    a1 = _daily("N/A", [0], [0.2])
    a2 = _daily("N/A", [0], [0.4]).assign(sensor="probe-2")  # a second sensor of A on the same layer
    b = _daily("N/B", [0, 1], [0.1, 0.15]).assign(filled=[False, True])
    c = _daily("N/C", [0], [0.3]).assign(depth_from_m=0.1, depth_to_m=0.2)  # 10-20 cm: layer 20
    deep = _daily("N/C", [0], [0.3]).assign(depth_from_m=2.0, depth_to_m=2.0)  # no product layer
    d = _daily("N/D", [0], [0.9])
    e = _daily("N/E", [0], [0.9])  # not in the station table
    cells = to_cells(pd.concat([b, a1, c, deep, a2, d, e], ignore_index=True), stations, GRID)

    assert tuple(cells.columns) == CELL_COLUMNS
    shared = cells[(cells["row"] == ra) & (cells["col"] == ca)]
    assert list(shared["depth_cm"]) == [10, 10]
    # day 0: A is the mean of its two sensors (0.3), the cell the mean of A and B: (0.3 + 0.1) / 2
    assert shared["sm_raw"].iloc[0] == pytest.approx(0.2)
    assert shared["sm_raw"].iloc[0] != pytest.approx((0.2 + 0.4 + 0.1) / 3)
    assert list(shared["n_stations"]) == [2, 1] and list(shared["n_filled"]) == [0, 1]
    assert list(shared["station_ids"].astype(str)) == ["N/A,N/B", "N/B"]
    assert shared["sm_raw"].iloc[1] == pytest.approx(0.15)  # day 1: B alone
    lat, lon = GRID.latlon(ra, ca)
    assert shared["lat"].iloc[0] == pytest.approx(lat) and shared["lon"].iloc[0] == pytest.approx(lon)
    other = cells[cells["station_ids"].astype(str) == "N/C"]
    assert list(other["depth_cm"]) == [20] and other["sm_raw"].iloc[0] == pytest.approx(0.3)
    assert tuple(GRID.rowcol(37.1, 115.1)) == (other["row"].iloc[0], other["col"].iloc[0])
    assert len(cells) == 3
    assert cells.attrs["stations_outside"] == ["N/D"]
    assert cells.attrs["stations_unknown"] == ["N/E"]
    assert cells.attrs["sensors_without_layer"] == 1
    assert cells.attrs["stations_used"] == 3
    lines = describe_dropped(cells)
    assert len(lines) == 3 and "N/D" in lines[0] and "N/E" in lines[1]
    # sorted by cell, depth, day
    key = cells[["row", "col", "depth_cm", "time"]]
    assert key.equals(key.sort_values(["row", "col", "depth_cm", "time"]))


def test_random_series_against_a_plain_reference() -> None:
    """daily_means + fill_gaps against a slow per-series loop (hourly records, random gaps and QC)."""
    rng = np.random.default_rng(7)
    frames = []
    for s in range(6):
        hours = pd.date_range("2019-01-01", periods=24 * 60, freq="h")
        keep = rng.random(hours.size) > rng.uniform(0.05, 0.7)  # random missing hours
        for a in rng.integers(0, hours.size, 4):  # outages of up to 20 days
            keep[a : a + int(rng.integers(24, 480))] = False
        n = int(keep.sum())
        frames.append(_hourly(f"N/S{s}", hours[keep], rng.uniform(0.05, 0.45, n), qc_good=rng.random(n) > 0.05))
    hourly = pd.concat(frames, ignore_index=True)
    daily = daily_means(hourly, min_hours=12)
    out = fill_gaps(daily)  # the defaults: within 5 days before or after, gaps over 10 days empty
    assert daily.attrs["days_short"] > 20

    expected = []
    long_gaps = 0
    for sid, g in hourly[hourly["qc_good"]].groupby("station_id"):
        per_day = g.groupby(g["time"].dt.floor("D"))["value"].agg(["mean", "count"])
        kept = per_day[per_day["count"] >= 12]["mean"]
        full = kept.reindex(pd.date_range(kept.index.min(), kept.index.max(), freq="D"))
        filled = full.interpolate(method="linear", limit=5, limit_direction="both", limit_area="inside")
        missing_run = full.isna().groupby(full.notna().cumsum()).transform("sum")  # length of the gap each day sits in
        filled[full.isna() & (missing_run > 10)] = np.nan
        long_gaps += int((full.isna() & (missing_run > 10)).sum())
        for day, v in filled.dropna().items():
            expected.append((sid, day, v, bool(np.isnan(full[day]))))
    ref = pd.DataFrame(expected, columns=["station_id", "time", "sm", "filled"])
    got = out[["station_id", "time", "sm", "filled"]].astype({"station_id": str}).reset_index(drop=True)
    assert out["filled"].any() and (~out["filled"]).sum() < len(out) and len(ref) > 150 and long_gaps > 0
    pd.testing.assert_frame_equal(got, ref, check_exact=False, atol=1e-12, rtol=0)
