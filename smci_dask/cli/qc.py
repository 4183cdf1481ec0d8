"""`smci qc FILE.csv -o OUT.csv`: the ISMN automated checks on one station's hourly file.

Registered on the ``smci`` group by :mod:`smci_dask.cli.main`. The work is in
:mod:`smci_dask.insitu.qc_file`; this module only parses options and prints.
"""

from __future__ import annotations

import click


@click.command("qc")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="Output CSV: the input plus a qflag column.")
@click.option(
    "--units",
    type=click.Choice(["auto", "percent", "m3m3"]),
    default="auto",
    show_default=True,
    help="Units of soil_moisture and --saturation: % vol. or m3/m3 (auto: % vol. when a reading exceeds 1.5).",
)
@click.option(
    "--saturation",
    type=float,
    default=None,
    help="Saturation point of the soil (porosity) in the units of the file, e.g. 42.7 (% vol.); without it C03 is not applied.",
)
@click.option(
    "--depth-from",
    "depth_from",
    type=float,
    default=None,
    help="Depth of the sensor's top, m: D04/D05 (rise without rain) apply to sensors above 0.1 m, "
    "with a rain threshold of depth x 25 mm/m [default: unknown, 0.2 mm].",
)
def qc_cmd(path: str, out: str, units: str, saturation: float | None, depth_from: float | None) -> None:
    """The ISMN automated quality control (Dorigo et al. 2013) of one station's hourly CSV file.

    \b
    FILE.csv: one row per hour with the columns
      utc                 timestamp, UTC unless it carries an offset (+08:00)
      soil_moisture       % vol. or m3/m3 (--units)
    and whichever of these exist (others are carried through):
      soil_temperature, air_temperature         deg C, in situ
      precipitation                             mm in the hour, in situ
      gldas_soil_temperature (grid_...)         deg C, gridded
      gldas_precipitation (grid_...)            mm in the hour, gridded
    Checks: C01 < 0, C02 > 0.6 m3/m3, C03 > saturation; D01-D03 frozen soil
    or air; D04/D05 rise without rain; D06 spike; D07/D08 breaks; D09 low
    plateau after a drop; D10 saturated plateau. A check whose column is
    missing is not applied.

    \b
    Writes OUT.csv: every input column as it was, plus qflag = the codes
    raised, sorted and joined by commas (e.g. C03,D02), G when none, M on a
    row without a soil-moisture reading. Prints counts per code.
    Example: smci qc station.csv --units percent --saturation 42.7 --depth-from 0.09 -o station_qc.csv
    """
    from smci_dask.insitu.qc_file import qc_file

    report = qc_file(path, out, units=units, saturation=saturation, depth_from_m=depth_from)  # type: ignore[arg-type]
    click.echo(report.summary())
