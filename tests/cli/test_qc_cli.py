"""`smci qc FILE.csv -o OUT.csv` on flagit's test file (against the committed flagit flags) and on bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from smci_dask.cli.main import cli

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FLAGIT = DATA / "qc" / "flagit_test_dataframe.csv"
EXPECTED = Path(__file__).resolve().parents[1] / "insitu" / "data" / "flagit_expected_flags.csv"


def _text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.output


def _check_against_flagit(out: Path, source: Path) -> None:
    got, given, expected = _text(out), _text(source), _text(EXPECTED)
    # every input column as it was, plus qflag
    assert list(got.columns) == [*given.columns, "qflag"]
    pd.testing.assert_frame_equal(got[given.columns], given)
    with_sm = got["soil_moisture"] != ""
    assert list(got.loc[with_sm, "utc"]) == list(expected["utc"])
    assert list(got.loc[with_sm, "qflag"]) == list(expected["qflag"])  # all 695 rows
    assert list(got.loc[~with_sm, "qflag"]) == ["M"]


def test_qc_command_gives_flagits_flags_on_its_test_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "flags.csv"
    code, text = _invoke("qc", str(FLAGIT), "--units", "percent", "--saturation", "42.7", "--depth-from", "0.09", "-o", str(out))
    assert code == 0, text
    _check_against_flagit(out, FLAGIT)
    assert "695 soil-moisture readings (% vol.), 60 good" in text and "D06 1" in text
    # the units are found by themselves (readings above 1.5: % vol.)
    auto = tmp_path / "auto.csv"
    code, text = _invoke("qc", str(FLAGIT), "--saturation", "42.7", "--depth-from", "0.09", "-o", str(auto))
    assert code == 0 and "(% vol.)" in text
    assert _text(auto).equals(_text(out))


def test_qc_command_in_m3m3(tmp_path: Path) -> None:
    """The same file in m3/m3 (4 decimals) with the saturation point in m3/m3 gives the same flags."""
    frame = pd.read_csv(FLAGIT)
    frame["soil_moisture"] = (frame["soil_moisture"] / 100).map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    source = tmp_path / "m3.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "m3_flags.csv"
    code, text = _invoke("qc", str(source), "--units", "m3m3", "--saturation", "0.427", "--depth-from", "0.09", "-o", str(out))
    assert code == 0, text
    _check_against_flagit(out, source)


def _one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda t: t.drop(columns=["soil_moisture"]), ["line 1", "soil_moisture", "missing"]),
        (lambda t: t.assign(utc=t["utc"].where(t.index != 2, "2020-13-45 00:00")), ["line 4", "'utc'", "2020-13-45", "not a date"]),
        (lambda t: t.assign(soil_moisture=t["soil_moisture"].where(t.index != 9, "wet")), ["line 11", "soil_moisture", "wet", "number"]),
        (lambda t: t.assign(utc=t["utc"].where(t.index != 5, t["utc"].iloc[4])), ["lines 6 and 7", "two rows in the hour"]),
    ],
)
def test_bad_input_is_one_line_naming_file_and_place(tmp_path: Path, edit, words: list[str]) -> None:
    source = tmp_path / "bad.csv"
    edit(_text(FLAGIT)).to_csv(source, index=False)
    out = tmp_path / "never.csv"
    code, output = _invoke("qc", str(source), "-o", str(out))
    assert code == 5
    line = _one_error_line(output)
    assert "bad.csv" in line and all(w in line for w in words), line
    assert not out.exists()


def test_missing_file_and_help(tmp_path: Path) -> None:
    code, output = _invoke("qc", str(tmp_path / "nothing.csv"), "-o", str(tmp_path / "o.csv"))
    assert code == 5 and "nothing.csv" in _one_error_line(output)
    code, output = _invoke("qc", "--help")
    assert code == 0 and all(w in output for w in ("--saturation", "--depth-from", "--units", "qflag", "m3/m3"))
