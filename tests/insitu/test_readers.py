"""Station readers on the real ISMN reference files and on hand-built tables."""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smci_dask import conventions as cv
from smci_dask.errors import InputError
from smci_dask.insitu import (
    OBSERVATION_COLUMNS,
    SENSOR_COLUMNS,
    STATION_COLUMNS,
    StationData,
    add_custom_metadata,
    assign_layer,
    read_custom_metadata,
    read_ismn,
    read_station_table,
    to_m3m3,
)
from smci_dask.insitu import readers as readers_module
from smci_dask.insitu.readers_ismn import parse_ismn_file_name
from smci_dask.io import Store

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ISMN = DATA / "ismn"
FLAGIT = DATA / "qc" / "flagit_test_dataframe.csv"

# The reference data lies in ../shared/data beside the repository (CI has it too): missing it fails the tests.
assert ISMN.is_dir(), f"reference data not found at {ISMN}: the tests need ../shared/data beside the repository"

NARBONNE = "SMOSMANIA_SMOSMANIA_Narbonne_sm_0.050000_0.050000_ThetaProbe-ML2X_20070101_20070131.stm"
HEADER_NARBONNE = ISMN / "format_header_values" / "SMOSMANIA" / NARBONNE
CEOP_NARBONNE = ISMN / "format_ceop_sep" / "SMOSMANIA" / NARBONNE
COSMOS_FOLDER = ISMN / "Data_seperate_files_header_20170810_20180809"
COSMOS_ZIP = ISMN / "zip_archives" / "header" / "Data_seperate_files_header_20170810_20180809.zip"
SMOSMANIA_ZIP = ISMN / "zip_archives" / "format_header_values" / "Data_SMOSMANIA.zip"
MALFORMED = ISMN / "malformed" / "mal_formed_file.txt"


def _same_observations(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        a.astype({c: str for c in a.columns if isinstance(a[c].dtype, pd.CategoricalDtype)}),
        b.astype({c: str for c in b.columns if isinstance(b[c].dtype, pd.CategoricalDtype)}),
    )


def _check_layout(data: StationData) -> None:
    assert tuple(data.observations.columns) == OBSERVATION_COLUMNS
    assert tuple(data.stations.columns[: len(STATION_COLUMNS)]) == STATION_COLUMNS
    assert tuple(data.sensors.columns) == SENSOR_COLUMNS
    obs = data.observations
    assert obs["time"].dtype == np.dtype("datetime64[ns]")
    assert obs["value"].dtype == np.float64
    assert not obs.duplicated(["station_id", "variable", "depth_from_m", "depth_to_m", "sensor", "time"]).any()


# ------------------------------------------------------------------ every real file
REAL_DATA = sorted(p for p in ISMN.rglob("*") if p.is_file() and p.suffix in (".stm", ".zip")) if ISMN.is_dir() else []


@pytest.mark.parametrize("path", REAL_DATA, ids=lambda p: str(p.relative_to(ISMN)))
def test_every_real_data_file_reads(path: Path) -> None:
    data = read_ismn(path)
    _check_layout(data)
    assert len(data.observations) > 0
    assert set(data.observations["variable"]) == {"sm"}
    sm = data.observations["value"]
    assert 0.0 <= sm.min() and sm.max() <= 1.0
    known = {"G", "U", "M"} | {f"C{i:02d}" for i in range(1, 4)} | {f"D{i:02d}" for i in range(1, 11)}
    flags = {part for flag in set(data.observations["qflag"]) for part in flag.split(",")}
    assert flags <= known  # combined flags such as 'D03,D05' are kept as given


@pytest.mark.parametrize("folder", [ISMN / "format_header_values", ISMN / "format_ceop_sep", COSMOS_FOLDER, ISMN])
def test_whole_folders_read(folder: Path) -> None:
    data = read_ismn(folder)
    _check_layout(data)
    assert len(data.stations) >= 1
    assert set(data.stations["station_id"]) == set(data.observations["station_id"].astype(str))


def test_static_csv_and_metadata_xml_read_alone() -> None:
    static = COSMOS_FOLDER / "COSMOS" / "ARM-1" / "COSMOS_COSMOS_ARM-1_static_variables.csv"
    data = read_ismn(static)
    assert set(data.static_variables["station_id"]) == {"COSMOS/ARM-1"}
    meta = read_ismn(COSMOS_FOLDER / "Metadata.xml").attrs["ismn_metadata"][0]
    assert meta["begin"] == "2017-08-10T00:00:00"
    assert meta["bbox"] == pytest.approx((-156.6287, -41.6694, 151.3092, 71.3298))


def test_custom_metadata_csvs_read_and_join() -> None:
    stations = read_custom_metadata(ISMN / "custom_metadata" / "custom_stationmeta.csv")
    sensors = read_custom_metadata(ISMN / "custom_metadata" / "custom_sensormeta.csv")
    assert list(stations["station_id"]) == ["FR_Aqui/fraye", "FR_Aqui/fraye"]
    assert set(sensors["variable"]) == {"sm"}
    assert sensors["depth_from_m"].tolist()[:2] == [0.05, 0.1]
    # the custom tables describe network FR_Aqui; join them onto data of that network
    data = read_ismn(HEADER_NARBONNE)
    renamed = stations.assign(station_id="SMOSMANIA/Narbonne")
    joined = add_custom_metadata(data, renamed)
    assert joined.stations.loc[0, "myvar1"] == "lorem"  # the first of the two rows
    assert any("repeat an earlier key" in i for i in joined.issues)
    sensor_meta = sensors.iloc[[0]].assign(station_id="SMOSMANIA/Narbonne")
    joined = add_custom_metadata(data, sensor_meta)
    assert joined.sensors.loc[0, "myvar1"] == "lorem"


# ------------------------------------------------------------------ formats agree
def test_header_values_and_ceop_give_identical_observations() -> None:
    hv = read_ismn(HEADER_NARBONNE)
    ceop = read_ismn(CEOP_NARBONNE)
    cols = [c for c in OBSERVATION_COLUMNS if c != "provider_flag"]
    _same_observations(hv.observations[cols], ceop.observations[cols])
    # the one real difference: the header+values file has no provider flag at 2007-01-01 22:00
    differ = hv.observations["provider_flag"].astype(str) != ceop.observations["provider_flag"].astype(str)
    assert hv.observations.loc[differ, "time"].tolist() == [pd.Timestamp("2007-01-01 22:00")]
    assert hv.observations.loc[differ, "provider_flag"].tolist() == [""]
    pd.testing.assert_frame_equal(hv.stations, ceop.stations)
    assert hv.sensors["format"].tolist() == ["header_values"]
    assert ceop.sensors["format"].tolist() == ["ceop"]
    obs = hv.observations
    assert len(obs) == 741
    assert obs["time"].iloc[0] == pd.Timestamp("2007-01-01 01:00")
    assert obs["value"].iloc[0] == pytest.approx(0.214)
    assert obs["qflag"].iloc[0] == "U" and obs["provider_flag"].iloc[0] == "M"


@pytest.mark.parametrize(
    ("archive", "folder"),
    [(COSMOS_ZIP, COSMOS_FOLDER), (SMOSMANIA_ZIP, ISMN / "format_header_values")],
    ids=["cosmos", "smosmania"],
)
def test_zip_archive_equals_extracted_folder(archive: Path, folder: Path) -> None:
    z = read_ismn(archive)
    f = read_ismn(folder)
    _same_observations(z.observations, f.observations)
    pd.testing.assert_frame_equal(z.stations, f.stations)
    pd.testing.assert_frame_equal(z.static_variables, f.static_variables)
    cols = [c for c in SENSOR_COLUMNS if c != "file"]
    pd.testing.assert_frame_equal(z.sensors[cols], f.sensors[cols])


def test_zip_and_folder_on_a_memory_store(tmp_path: Path) -> None:
    store = Store.from_url("memory://ismn-reader-test")
    try:
        store.put_file(COSMOS_ZIP, "dl/archive.zip")
        for p in (ISMN / "format_header_values").rglob("*.stm"):
            store.put_file(p, f"tree/{p.relative_to(ISMN)}")
        z = read_ismn(store.url_of("dl", "archive.zip"))
        _same_observations(z.observations, read_ismn(COSMOS_ZIP).observations)
        t = read_ismn(store.url_of("tree"))
        _same_observations(t.observations, read_ismn(HEADER_NARBONNE).observations)
    finally:
        store.rm()


def test_folder_with_the_same_series_twice_keeps_the_first_and_reports(tmp_path: Path) -> None:
    shutil.copytree(ISMN / "format_header_values", tmp_path / "a")
    shutil.copytree(ISMN / "format_ceop_sep", tmp_path / "b")
    data = read_ismn(tmp_path)
    assert len(data.observations) == 741
    assert len(data.sensors) == 2
    dup = [i for i in data.issues if "duplicate timestamps" in i]
    assert len(dup) == 1 and "/b/" in dup[0] and "741 duplicate" in dup[0]


# ------------------------------------------------------------------ header vs file name
@pytest.mark.parametrize(
    "path", sorted(ISMN.rglob("*.stm")) if ISMN.is_dir() else [], ids=lambda p: p.parent.parent.name + "/" + p.name[:30]
)
def test_header_agrees_with_file_name(path: Path) -> None:
    data = read_ismn(path)
    parts = parse_ismn_file_name(path.name)
    assert parts is not None
    sensor = data.sensors.iloc[0]
    assert sensor["depth_from_m"] == parts.depth_from_m
    assert sensor["depth_to_m"] == parts.depth_to_m
    assert sensor["sensor"] == parts.sensor
    assert sensor["variable"] == parts.variable
    # coordinates, depths and sensor as the file itself writes them (header line or any CEOP line)
    text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode()
    tokens = text.split("\n", 1)[0].split()
    st = data.stations.iloc[0]
    if sensor["format"] == "ceop":
        lat, lon, elev, d_from, d_to = map(float, tokens[7:12])
        assert tokens[5] == st["network"] and tokens[6] == st["station"]
    else:
        lat, lon, elev, d_from, d_to = map(float, tokens[3:8])
        assert tokens[8] == parts.sensor
        assert tokens[1] == st["network"] and tokens[2] == st["station"]
    assert (st["lat"], st["lon"], st["elevation_m"]) == (lat, lon, elev)
    assert (d_from, d_to) == pytest.approx((parts.depth_from_m, parts.depth_to_m), abs=0.005)
    assert parts.prefix == f"{st['network']}_{st['network']}_{st['station']}"


def test_file_name_parsing_allows_underscores_in_network() -> None:
    p = parse_ismn_file_name("FR_Aqui_FR_Aqui_fraye_sm_0.050000_0.050000_ThetaProbe-ML2X_20120101_20121231.stm")
    assert p is not None
    assert (p.prefix, p.variable, p.depth_from_m, p.sensor) == ("FR_Aqui_FR_Aqui_fraye", "sm", 0.05, "ThetaProbe-ML2X")
    assert parse_ismn_file_name("mal_formed_file.txt") is None


# ------------------------------------------------------------------ metadata
def test_static_variables_parsed() -> None:
    data = read_ismn(COSMOS_FOLDER)
    arm = data.stations.set_index("station_id").loc["COSMOS/ARM-1"]
    assert arm["saturation_0_30cm"] == pytest.approx(0.46)
    assert arm["saturation_30_100cm"] == pytest.approx(0.44)
    assert (arm["clay_0_30cm"], arm["sand_0_30cm"], arm["silt_0_30cm"]) == (23.0, 36.0, 41.0)
    assert arm["landcover"] == 130 and arm["landcover_name"] == "Grassland"
    assert arm["climate_class"] == "Cfa"
    long = data.static_variables
    row = long[(long["station_id"] == "COSMOS/ARM-1") & (long["quantity"] == "saturation") & (long["depth_from_m"] == 0.0)]
    assert row["depth_to_m"].tolist() == [0.3] and row["value"].tolist() == ["0.46"]
    assert (arm["lat"], arm["lon"], arm["elevation_m"]) == (36.6054, -97.4878, 322.0)


def test_cosmic_ray_probe_is_not_used_and_point_sensor_is() -> None:
    data = read_ismn(COSMOS_FOLDER)
    s = data.sensors
    assert (s["sensor"] == "Cosmic-ray-Probe").all()
    assert (assign_layer(s["depth_from_m"], s["depth_to_m"]) == -1).all()
    n = read_ismn(HEADER_NARBONNE).sensors
    assert assign_layer(n["depth_from_m"], n["depth_to_m"]).tolist() == [10]


# ------------------------------------------------------------------ errors in ISMN files
def test_malformed_file_names_itself() -> None:
    with pytest.raises(InputError, match=r"mal_formed_file\.txt line 1: not an ISMN header\+values or CEOP file"):
        read_ismn(MALFORMED)


def _edited(tmp_path: Path, src: Path, line_no: int, new: str) -> Path:
    lines = src.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n").decode().split("\n")
    lines[line_no - 1] = new
    out = tmp_path / src.name
    out.write_bytes("\r".join(lines).encode())  # CR-only line ends, as the real file
    return out


def test_bad_timestamp_names_file_and_line(tmp_path: Path) -> None:
    p = _edited(tmp_path, HEADER_NARBONNE, 5, "2007/13/01 04:00   0.2140 U M ")
    with pytest.raises(InputError, match=rf"{NARBONNE} line 5: timestamp '2007/13/01 04:00' is not a date"):
        read_ismn(p)


def test_bad_value_and_extra_field_name_the_line(tmp_path: Path) -> None:
    p = _edited(
        tmp_path, CEOP_NARBONNE, 7, "2007/01/01 07:00 2007/01/01 07:00 SMOSMANIA SMOSMANIA Narbonne 43.15 2.9567 112.00 0.05 0.05 abc U M"
    )
    with pytest.raises(InputError, match=r"line 7: value 'abc' is not a number"):
        read_ismn(p)
    p = _edited(tmp_path, HEADER_NARBONNE, 9, "2007/01/01 08:00   0.2140 U M extra")
    with pytest.raises(InputError, match=r"line 9: a value line does not parse \(6 fields where the first value line has 5\)"):
        read_ismn(p)
    p = _edited(tmp_path, HEADER_NARBONNE, 2, "2007/01/01 01:00   0.2140 U M extra")  # the first value line
    with pytest.raises(InputError, match=r"line 2: a value line does not parse \(6 fields, expected at most 5\)"):
        read_ismn(p)
    p = _edited(tmp_path, HEADER_NARBONNE, 4, "2007/01/01 03:00")
    with pytest.raises(InputError, match=r"line 4: too few fields"):
        read_ismn(p)


def test_depth_in_header_must_match_file_name(tmp_path: Path) -> None:
    header = HEADER_NARBONNE.read_bytes().split(b"\r", 1)[0].decode()
    p = _edited(tmp_path, HEADER_NARBONNE, 1, header.replace("0.05    0.05", "0.50    0.50"))
    with pytest.raises(InputError, match="depth_from is 0.5 m in the file but 0.05 m in its name"):
        read_ismn(p)


def test_renamed_file_and_missing_path(tmp_path: Path) -> None:
    p = tmp_path / "narbonne.stm"
    shutil.copy(HEADER_NARBONNE, p)
    with pytest.raises(InputError, match="narbonne.stm: the file name does not follow the ISMN pattern"):
        read_ismn(p)
    with pytest.raises(InputError, match="no such file"):
        read_ismn(tmp_path / "nothing.zip")


def test_variables_filter_and_other_variables(tmp_path: Path) -> None:
    ts_name = NARBONNE.replace("_sm_", "_ts_")
    shutil.copy(HEADER_NARBONNE, tmp_path / NARBONNE)
    shutil.copy(HEADER_NARBONNE, tmp_path / ts_name)
    both = read_ismn(tmp_path)
    assert set(both.observations["variable"]) == {"sm", "ts"}
    only = read_ismn(tmp_path, variables=("ts",))
    assert set(only.observations["variable"]) == {"ts"}
    assert any("skipped 1 files" in i for i in only.issues)


def test_ismn_soil_moisture_in_percent_is_refused_unless_declared(tmp_path: Path) -> None:
    text = re.sub(r"(\d\d:\d\d)   0\.", r"\1  21.", HEADER_NARBONNE.read_bytes().decode())
    (tmp_path / NARBONNE).write_text(text)
    with pytest.raises(InputError, match="station SMOSMANIA/Narbonne: soil moisture declared m3/m3"):
        read_ismn(tmp_path / NARBONNE)
    data = read_ismn(tmp_path / NARBONNE, sm_unit="auto")
    assert data.observations["value"].max() < 1.0


def test_zip_member_in_memory_only(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(HEADER_NARBONNE, f"SMOSMANIA/{NARBONNE}")
        zf.write(MALFORMED, "readme.txt")
    (tmp_path / "dl.zip").write_bytes(buf.getvalue())
    data = read_ismn(tmp_path / "dl.zip")
    assert len(data.observations) == 741
    assert any("readme.txt" in i for i in data.issues)


# ------------------------------------------------------------------ depth layers
def test_assign_layer_rule() -> None:
    frm = np.array([0.10, 0.00, 0.10, 0.05, 0.00, 0.12, 0.25, 1.00, 1.05, 1.11, -2.0, 0.0, np.nan, 0.00, 0.00])
    to = np.array([0.10, 0.10, 0.20, 0.05, 0.00, 0.12, 0.25, 1.00, 1.05, 1.11, -2.0, 0.19, 0.1, 0.15, 0.30])
    expect = [10, 10, 20, 10, 10, 20, 30, 100, 100, -1, -1, -1, -1, 10, -1]
    assert assign_layer(frm, to).tolist() == expect
    # every CMA depth maps to itself, as a point or as the layer (d-10, d]
    d = np.asarray(cv.DEPTHS_CM) / 100.0
    assert assign_layer(d, d).tolist() == list(cv.DEPTHS_CM)
    assert assign_layer(d - 0.1, d).tolist() == list(cv.DEPTHS_CM)
    assert assign_layer(np.asarray(cv.DEPTH_BOUNDS_CM)[:, 0] / 100, np.asarray(cv.DEPTH_BOUNDS_CM)[:, 1] / 100).tolist() == list(
        cv.DEPTHS_CM
    )


def test_assign_layer_options() -> None:
    assert assign_layer(0.0, 0.19, max_width_cm=20).tolist() == 10
    assert assign_layer(1.2, 1.2, max_distance_cm=25).tolist() == 100
    assert assign_layer([0.0, 0.08], [0.3, 0.2], rule="nearest_centre", max_width_cm=40).tolist() == [20, 20]
    assert assign_layer([0.0, 0.08], [0.3, 0.2], rule="overlap", max_width_cm=40).tolist() == [10, 20]
    assert assign_layer(0.2, 0.1).tolist() == 20  # reversed range
    with pytest.raises(InputError, match="rule 'deepest' is unknown"):
        assign_layer(0.1, 0.1, rule="deepest")  # type: ignore[arg-type]


# ------------------------------------------------------------------ units
def test_to_m3m3_rules() -> None:
    v, issues = to_m3m3([20.0, 30.0, 0.2, 0.3], ["a", "a", "b", "b"], unit="auto", source="x.csv")
    assert v.tolist() == pytest.approx([0.2, 0.3, 0.2, 0.3])
    assert any("stations a read as percent" in i for i in issues)
    v, _ = to_m3m3([20.0, 30.0], ["a", "a"], unit="percent", source="x.csv")
    assert v.tolist() == pytest.approx([0.2, 0.3])
    v, _ = to_m3m3([0.2, 1.5] + [0.3] * 200, ["a"] * 202, unit="m3/m3", source="x.csv")  # one spike: kept for QC
    assert v[1] == 1.5
    with pytest.raises(InputError, match="x.csv station a: soil moisture is neither m3/m3 nor percent"):
        to_m3m3([2000.0, 3000.0], ["a", "a"], unit="auto", source="x.csv")
    with pytest.raises(InputError, match="sm_unit 'kg' is unknown"):
        to_m3m3([0.2], ["a"], unit="kg", source="x.csv")  # type: ignore[arg-type]


# ------------------------------------------------------------------ tables
def _table(n_hours: int = 48, unit: str = "m3/m3") -> pd.DataFrame:
    times = pd.date_range("2019-07-01", periods=n_hours, freq="h")
    rows = []
    for s, (lat, lon) in {"54511": (39.8, 116.47), "57516": (29.58, 106.47)}.items():
        for depth in (10, 20, 40):
            sm = 0.2 + 0.05 * np.sin(np.arange(n_hours) / 7.0) + depth / 1000.0
            rows.append(
                pd.DataFrame(
                    {
                        "station": s,
                        "lat": lat,
                        "lon": lon,
                        "depth_from_cm": depth - 10,
                        "depth_to_cm": depth,
                        "time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "sm": sm * (100.0 if unit == "percent" else 1.0),
                        "soil_temperature": 20.0 - depth / 10.0,
                        "precipitation": 0.5,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_percent_csv_is_detected_and_converted(tmp_path: Path) -> None:
    _table(unit="percent").to_csv(tmp_path / "cma.csv", index=False)
    _table(unit="m3/m3").to_csv(tmp_path / "ref.csv", index=False)
    data = read_station_table(tmp_path / "cma.csv")
    ref = read_station_table(tmp_path / "ref.csv", sm_unit="m3/m3")
    _check_layout(data)
    sm = data.observations[data.observations["variable"] == "sm"]["value"].to_numpy()
    sm_ref = ref.observations[ref.observations["variable"] == "sm"]["value"].to_numpy()
    np.testing.assert_allclose(sm, sm_ref)
    assert any("read as percent" in i for i in data.issues)
    declared = read_station_table(tmp_path / "cma.csv", sm_unit="percent")
    np.testing.assert_allclose(declared.observations["value"], data.observations["value"])
    with pytest.raises(InputError, match=r"cma\.csv station cma/54511: soil moisture declared m3/m3"):
        read_station_table(tmp_path / "cma.csv", sm_unit="m3/m3")


def test_table_layout_layers_and_variables(tmp_path: Path) -> None:
    _table().to_csv(tmp_path / "cma.csv", index=False)
    data = read_station_table(tmp_path / "cma.csv", network="CMA")
    obs = data.observations
    assert set(data.stations["station_id"]) == {"CMA/54511", "CMA/57516"}
    assert data.stations.set_index("station")["lat"].to_dict() == {"54511": 39.8, "57516": 29.58}
    assert obs["time"].iloc[0] == pd.Timestamp("2019-07-01 00:00")
    counts = obs.groupby("variable", observed=True).size().to_dict()
    assert counts == {"sm": 2 * 3 * 48, "ts": 2 * 3 * 48, "p": 2 * 48}  # precipitation once per station and hour
    sm = data.sensors[data.sensors["variable"] == "sm"]
    assert sorted(set(assign_layer(sm["depth_from_m"], sm["depth_to_m"]).tolist())) == [10, 20, 40]
    p = obs[obs["variable"] == "p"]
    assert (p["depth_from_m"] == 0.0).all()


def test_parquet_table_equals_csv(tmp_path: Path) -> None:
    t = _table()
    t.to_csv(tmp_path / "cma.csv", index=False)
    t.assign(time=pd.to_datetime(t["time"], utc=True)).to_parquet(tmp_path / "cma.parquet")
    a = read_station_table(tmp_path / "cma.csv")
    b = read_station_table(tmp_path / "cma.parquet")
    _same_observations(a.observations, b.observations)


def test_parquet_table_on_a_memory_store_and_depth_in_m() -> None:
    t = _table(n_hours=4)
    t = t.assign(depth_m=t["depth_to_cm"] / 100.0, time=pd.to_datetime(t["time"], utc=True).dt.tz_convert("Asia/Shanghai"))
    t = t.drop(columns=["depth_from_cm", "depth_to_cm"])
    store = Store.from_url("memory://station-table-test")
    try:
        buf = io.BytesIO()
        t.to_parquet(buf)
        store.write_bytes("cma.parquet", buf.getvalue())
        data = read_station_table(store.url_of("cma.parquet"))
        assert data.observations["time"].min() == pd.Timestamp("2019-07-01 00:00")  # converted to UTC
        sm = data.sensors[data.sensors["variable"] == "sm"]
        assert sorted(set(assign_layer(sm["depth_from_m"], sm["depth_to_m"]).tolist())) == [10, 20, 40]
        buf = io.BytesIO()
        t.assign(depth_m=t["depth_m"] * 100).to_parquet(buf)
        store.write_bytes("cm.parquet", buf.getvalue())
        with pytest.raises(InputError, match="depth_m reaches 40 m; that looks like cm"):
            read_station_table(store.url_of("cm.parquet"))
    finally:
        store.rm()


def test_damaged_zip_is_named(tmp_path: Path) -> None:
    (tmp_path / "download.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"download\.zip: not a zip archive"):
        read_ismn(tmp_path / "download.zip")


def test_table_duplicate_timestamps_keep_the_first(tmp_path: Path) -> None:
    t = _table(n_hours=5)
    extra = t.iloc[[2]].assign(sm=0.9)
    pd.concat([t, extra], ignore_index=True).to_csv(tmp_path / "dup.csv", index=False)
    data = read_station_table(tmp_path / "dup.csv")
    obs = data.observations
    sel = obs[(obs["variable"] == "sm") & (obs["station"] == t.loc[2, "station"]) & (obs["depth_to_m"] == 0.1)]
    assert len(sel) == 5
    assert sel["value"].iloc[2] == pytest.approx(t.loc[2, "sm"])
    assert any("1 duplicate timestamps" in i and "kept the first" in i for i in data.issues)


def test_table_bad_date_names_file_and_line(tmp_path: Path) -> None:
    t = _table(n_hours=5)
    t.loc[3, "time"] = "2019/13/01 00:00"
    t.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"bad\.csv line 5: timestamp '2019/13/01 00:00' is not a date"):
        read_station_table(tmp_path / "bad.csv")
    t.loc[3, "time"] = ""
    t.to_csv(tmp_path / "blank.csv", index=False)
    with pytest.raises(InputError, match=r"blank\.csv line 5: time is missing"):
        read_station_table(tmp_path / "blank.csv")
    t.loc[3, "time"] = "2019/07/01 03:00"  # slash format is accepted
    t.to_csv(tmp_path / "slash.csv", index=False)
    assert read_station_table(tmp_path / "slash.csv").observations["time"].notna().all()


def test_table_missing_and_ambiguous_columns(tmp_path: Path) -> None:
    t = _table(n_hours=3)
    t.drop(columns="lat").to_csv(tmp_path / "nolat.csv", index=False)
    with pytest.raises(InputError, match=r"required column 'lat' is missing \(accepted names: lat, latitude\)"):
        read_station_table(tmp_path / "nolat.csv")
    t.drop(columns=["depth_from_cm", "depth_to_cm"]).to_csv(tmp_path / "nodepth.csv", index=False)
    with pytest.raises(InputError, match="required depth column is missing"):
        read_station_table(tmp_path / "nodepth.csv")
    t.rename(columns={"depth_to_cm": "depth"}).drop(columns="depth_from_cm").to_csv(tmp_path / "unitless.csv", index=False)
    with pytest.raises(InputError, match="'depth' gives a depth without a unit"):
        read_station_table(tmp_path / "unitless.csv")
    t.assign(latitude=t["lat"]).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(InputError, match="columns 'lat' and 'latitude' both give 'lat'"):
        read_station_table(tmp_path / "twice.csv")
    t.rename(columns={"sm": "wetness"}).to_csv(tmp_path / "mapped.csv", index=False)
    data = read_station_table(tmp_path / "mapped.csv", column_map={"wetness": "sm"})
    assert (data.observations["variable"] == "sm").any()
    with pytest.raises(InputError, match="column_map names column 'moisture', which the table lacks"):
        read_station_table(tmp_path / "mapped.csv", column_map={"moisture": "sm"})


def test_flagit_table_through_column_map() -> None:
    data = read_station_table(
        FLAGIT,
        column_map={"utc": "time", "soil_moisture": "sm"},
        constants={"station": "flagit", "lat": 47.0, "lon": 16.0, "depth_m": 0.09},
        network="TEST",
    )
    _check_layout(data)
    raw = pd.read_csv(FLAGIT).dropna(subset=["soil_moisture"])  # one row has no soil moisture: dropped
    sm = data.observations[data.observations["variable"] == "sm"]
    assert len(sm) == len(raw) == 695
    np.testing.assert_allclose(sm["value"].to_numpy(), raw["soil_moisture"].to_numpy() / 100.0)
    assert any("read as percent" in i for i in data.issues)
    assert any("gldas_soil_temperature" in i for i in data.issues)
    assert sm["time"].iloc[0] == pd.Timestamp("2020-01-27 00:00")
    assert set(data.observations["variable"]) == {"sm", "ts", "ta", "p"}
    assert assign_layer(sm["depth_from_m"].iloc[:1], sm["depth_to_m"].iloc[:1]).tolist() == [10]


def test_concat_ismn_and_table(tmp_path: Path) -> None:
    _table(n_hours=3).to_csv(tmp_path / "cma.csv", index=False)
    joined = StationData.concat([read_ismn(COSMOS_FOLDER), read_station_table(tmp_path / "cma.csv")])
    _check_layout(joined)
    assert set(joined.stations["station_id"]) == {"COSMOS/ARM-1", "COSMOS/Barrow-ARM", "cma/54511", "cma/57516"}
    assert joined.stations.set_index("station_id").loc["COSMOS/ARM-1", "saturation_0_30cm"] == pytest.approx(0.46)


def test_readers_module_reexports() -> None:
    assert readers_module.read_ismn is read_ismn
    assert readers_module.read_station_table is read_station_table
