"""One base error and the specific ones.

Every message names the input, what is wrong with it and what to do, e.g.
``station file X line 12: timestamp '2010/13/01' is not a date``. The CLI
prints ``str(error)`` as one line and exits with :attr:`SmciError.exit_code`.
"""

from __future__ import annotations


class SmciError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: int = 1


class ConfigError(SmciError):
    """A configuration file or environment variable is invalid."""

    exit_code = 2


class StoreError(SmciError):
    """A store URL is malformed, unknown, or the store cannot be reached."""

    exit_code = 3


class GridError(SmciError):
    """A coordinate, bbox or index lies outside the grid or off its cells."""

    exit_code = 4


class InputError(SmciError):
    """An input file is malformed, lacks a variable, or carries wrong units."""

    exit_code = 5


class ClusterError(SmciError):
    """A Dask cluster could not be created or reached."""

    exit_code = 6


class BusyError(SmciError):
    """Another run holds the store's lease (or took it over from us): one writer at a time."""

    exit_code = 7
