"""Grid spec: the 30 arc-second fine grid, ERA5-Land's 0.1 degree coarse grid, index maths.

All index maths is done in integer *fine units* (1/120 degree), so cell edges
are exact and a point on an edge always lands in the same cell.

Conventions (documented, tested with hypothesis):

* The fine grid is north-up: row 0 is the northernmost row, column 0 the
  westernmost column. Its cells have edges on multiples of 1/120 degree; a
  region's bbox (west, south, east, north) must lie on those edges.
* A region holds the half-open box ``west <= lon < east`` and
  ``south < lat <= north``: a point on a cell's west edge belongs to that
  cell, a point on its north edge too. Points on the region's east or south
  edge, or beyond, are outside: :meth:`GridSpec.rowcol` raises
  :class:`~smci_dask.errors.GridError` (``outside="raise"``, default) or
  returns ``-1`` for both indices (``outside="mask"``).
* The coarse grid is ERA5-Land's: cell centres on multiples of 0.1 degree,
  each coarse cell spanning ``centre +- 0.05`` = 12 x 12 fine cells. A
  region's coarse grid holds the centres with ``west <= lon < east`` and
  ``south < lat <= north`` (for China: 630 x 360 centres 73.0..135.9 E,
  54.0..18.1 N, as SMCI1.0's 9 km files), north first like ERA5-Land's
  descending latitude. When the bbox lies on multiples of 0.1 degree, the
  first coarse column/row covers only 6 fine cells inside the region; the
  last 6 fine columns (rows) at the east (south) edge fall in an ERA5-Land
  cell centred on the edge itself, which is not part of the coarse grid:
  they take the nearest coarse cell inside (the last column / row). So
  :meth:`GridSpec.fine_to_coarse_cols` is clipped to the coarse grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from smci_dask import conventions as cv
from smci_dask.errors import GridError

FINE = cv.FINE_PER_DEGREE
HALF = cv.COARSE_FACTOR // 2
_EPS = 1e-6

Outside = Literal["raise", "mask"]


def _to_units(value: float, what: str, *, exact: bool = True) -> int:
    """Degrees -> integer fine units, requiring a multiple of 1/120 when ``exact``."""
    if not math.isfinite(value):
        raise GridError(f"{what} {value!r} is not a finite number; give the bbox edges in degrees")
    x = value * FINE
    r = round(x)
    if abs(x - r) > _EPS * FINE:
        if exact:
            raise GridError(f"{what} {value!r} is not on the 30 arc-second grid (multiples of 1/120 degree); use e.g. {r / FINE:.6f}")
        return math.floor(x)
    return int(r)


def _units(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Degrees -> float fine units, snapping values within 1e-6 units of an integer."""
    x = np.asarray(values, dtype=np.float64) * FINE
    r = np.round(x)
    with np.errstate(invalid="ignore"):  # inf - inf: non-finite points are reported as outside by the caller
        return np.where(np.abs(x - r) < _EPS, r, x)


@dataclass(frozen=True)
class Tile:
    """A rectangular block of the fine grid: ``grid.lat[rows]``, ``grid.lon[cols]``."""

    index: tuple[int, int]
    rows: slice
    cols: slice

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)


@dataclass(frozen=True)
class GridSpec:
    """A north-up 30 arc-second grid given by its edges in fine units (1/120 degree).

    Build it with :meth:`from_bbox`. ``west``/``east``/``south``/``north`` are
    integer fine units: ``west=8760`` is 73.0 E.
    """

    west: int
    south: int
    east: int
    north: int

    def __post_init__(self) -> None:
        if not (self.west < self.east and self.south < self.north):
            raise GridError(f"bbox {self.bbox} is empty: need west < east and south < north")
        if self.west < -180 * FINE or self.east > 180 * FINE or self.south < -90 * FINE or self.north > 90 * FINE:
            raise GridError(f"bbox {self.bbox} lies outside -180..180 E, -90..90 N")

    # ------------------------------------------------------------ construction
    @classmethod
    def from_bbox(cls, bbox: tuple[float, float, float, float]) -> GridSpec:
        """Grid of the region ``(west, south, east, north)`` in degrees (cell edges on 1/120 degree)."""
        if len(bbox) != 4:
            raise GridError(f"bbox {bbox!r} must have 4 numbers: west, south, east, north")
        w, s, e, n = bbox
        return cls(_to_units(w, "west edge"), _to_units(s, "south edge"), _to_units(e, "east edge"), _to_units(n, "north edge"))

    # ------------------------------------------------------------ fine grid
    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        return (self.west / FINE, self.south / FINE, self.east / FINE, self.north / FINE)

    @property
    def res(self) -> float:
        """Cell size in degrees (1/120)."""
        return 1.0 / FINE

    @property
    def nrows(self) -> int:
        return self.north - self.south

    @property
    def ncols(self) -> int:
        return self.east - self.west

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) = (lat, lon)."""
        return (self.nrows, self.ncols)

    @property
    def lat(self) -> npt.NDArray[np.float64]:
        """Cell-centre latitudes, north to south, degrees."""
        return (self.north - np.arange(self.nrows) - 0.5) / FINE

    @property
    def lon(self) -> npt.NDArray[np.float64]:
        """Cell-centre longitudes, west to east, degrees."""
        return (self.west + np.arange(self.ncols) + 0.5) / FINE

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Affine transform (a, b, c, d, e, f) as rasterio's ``Affine`` takes it."""
        return (1.0 / FINE, 0.0, self.west / FINE, 0.0, -1.0 / FINE, self.north / FINE)

    def rowcol(
        self, lat: npt.ArrayLike, lon: npt.ArrayLike, *, outside: Outside = "raise"
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Fine (row, col) of points; see the module docstring for edges and outside points."""
        ulat, ulon = np.broadcast_arrays(_units(lat), _units(lon))
        frow = np.floor(self.north - ulat)
        fcol = np.floor(ulon - self.west)
        # a point on a cell's north edge belongs to that cell: north - lat is an integer k -> row k
        # (bounds checked on floats, NaN included, before the cast so NaN/inf never reach astype)
        bad = ~((frow >= 0) & (frow < self.nrows) & (fcol >= 0) & (fcol < self.ncols))
        row = np.where(bad, 0, frow).astype(np.int64)
        col = np.where(bad, 0, fcol).astype(np.int64)
        if bad.any():
            if outside == "raise":
                i = int(np.flatnonzero(bad.ravel())[0])
                la, lo = (
                    np.ravel(np.broadcast_to(np.asarray(lat, dtype=float), bad.shape))[i],
                    np.ravel(np.broadcast_to(np.asarray(lon, dtype=float), bad.shape))[i],
                )
                raise GridError(
                    f"point (lat {la}, lon {lo}) lies outside the grid {self.bbox} "
                    f"(region holds west <= lon < east, south < lat <= north); "
                    f"{int(bad.sum())} point(s) outside. Drop them or widen the region."
                )
            row = np.where(bad, -1, row)
            col = np.where(bad, -1, col)
        return row, col

    def latlon(self, row: npt.ArrayLike, col: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Cell-centre (lat, lon) of fine cells; raises GridError for indices off the grid."""
        r = np.asarray(row)
        c = np.asarray(col)
        if ((r < 0) | (r >= self.nrows)).any() or ((c < 0) | (c >= self.ncols)).any():
            raise GridError(f"cell index off the grid: rows must be 0..{self.nrows - 1}, cols 0..{self.ncols - 1}")
        return (self.north - r - 0.5) / FINE, (self.west + c + 0.5) / FINE

    # ------------------------------------------------------------ coarse grid
    @property
    def _coarse_k_west(self) -> int:
        return -(-self.west // cv.COARSE_FACTOR)  # ceil(west / 12)

    @property
    def _coarse_k_north(self) -> int:
        return self.north // cv.COARSE_FACTOR  # floor(north / 12)

    @property
    def coarse_shape(self) -> tuple[int, int]:
        """(rows, cols) of the coarse (ERA5-Land 0.1 degree) grid."""
        ncol = -(-self.east // cv.COARSE_FACTOR) - self._coarse_k_west
        nrow = self._coarse_k_north - self.south // cv.COARSE_FACTOR
        if ncol < 1 or nrow < 1:
            raise GridError(f"region {self.bbox} holds no ERA5-Land 0.1 degree cell centre; make it at least 0.1 degree wide and tall")
        return (nrow, ncol)

    @property
    def coarse_lat(self) -> npt.NDArray[np.float64]:
        """Coarse cell-centre latitudes, north to south, degrees (multiples of 0.1)."""
        k = self._coarse_k_north - np.arange(self.coarse_shape[0])
        return np.round(k / cv.COARSE_PER_DEGREE, 10)

    @property
    def coarse_lon(self) -> npt.NDArray[np.float64]:
        """Coarse cell-centre longitudes, west to east, degrees (multiples of 0.1)."""
        k = self._coarse_k_west + np.arange(self.coarse_shape[1])
        return np.round(k / cv.COARSE_PER_DEGREE, 10)

    def fine_to_coarse_rows(self) -> npt.NDArray[np.int64]:
        """Coarse row of every fine row (clipped at the south edge, see module docstring)."""
        bottom = self.north - np.arange(self.nrows) - 1  # south edge of each fine row, fine units
        k = np.floor_divide(bottom + HALF, cv.COARSE_FACTOR)
        return np.clip(self._coarse_k_north - k, 0, self.coarse_shape[0] - 1).astype(np.int64)

    def fine_to_coarse_cols(self) -> npt.NDArray[np.int64]:
        """Coarse column of every fine column (clipped at the east edge, see module docstring)."""
        left = self.west + np.arange(self.ncols)
        k = np.floor_divide(left + HALF, cv.COARSE_FACTOR)
        return np.clip(k - self._coarse_k_west, 0, self.coarse_shape[1] - 1).astype(np.int64)

    def coarse_rowcol(
        self, lat: npt.ArrayLike, lon: npt.ArrayLike, *, outside: Outside = "raise"
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Coarse (row, col) of points inside the region (through their fine cell)."""
        r, c = self.rowcol(lat, lon, outside=outside)
        rr = np.where(r >= 0, self.fine_to_coarse_rows()[np.maximum(r, 0)], -1)
        cc = np.where(c >= 0, self.fine_to_coarse_cols()[np.maximum(c, 0)], -1)
        return rr, cc

    def coarse_weights(self, axis: Literal["lat", "lon"]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Bilinear interpolation along one axis from coarse centres to fine centres.

        Returns ``(i0, i1, w)`` with the fine value ``(1 - w) * v[i0] + w * v[i1]``;
        beyond the outermost coarse centres the nearest one is used (``w`` clipped).
        """
        if axis == "lon":
            x = (self.west + np.arange(self.ncols) + 0.5) / cv.COARSE_FACTOR - self._coarse_k_west
            n = self.coarse_shape[1]
        else:  # rows go north to south
            x = self._coarse_k_north - (self.north - np.arange(self.nrows) - 0.5) / cv.COARSE_FACTOR
            n = self.coarse_shape[0]
        x = np.clip(x, 0, n - 1)
        i0 = np.minimum(np.floor(x).astype(np.int64), max(n - 2, 0))
        i1 = np.minimum(i0 + 1, n - 1)
        w = np.where(i1 > i0, x - i0, 0.0)
        return i0, i1, w

    # ------------------------------------------------------------ tiles, sub-regions
    def tiles(self, size: int | tuple[int, int]) -> list[Tile]:
        """Row-major tiles of ``size`` cells (the last row/column of tiles may be smaller)."""
        sr, sc = (size, size) if isinstance(size, int) else size
        if sr < 1 or sc < 1:
            raise GridError(f"tile size {size!r} must be >= 1 cell")
        return list(self._iter_tiles(sr, sc))

    def _iter_tiles(self, sr: int, sc: int) -> Iterator[Tile]:
        for ti, r0 in enumerate(range(0, self.nrows, sr)):
            for tj, c0 in enumerate(range(0, self.ncols, sc)):
                yield Tile((ti, tj), slice(r0, min(r0 + sr, self.nrows)), slice(c0, min(c0 + sc, self.ncols)))

    def subgrid(self, bbox: tuple[float, float, float, float]) -> tuple[GridSpec, Tile]:
        """The sub-region ``bbox`` (snapped outward to whole cells) and its place in this grid."""
        w, s, e, n = bbox
        sub = (
            GridSpec(
                max(self.west, _to_units(w, "west edge", exact=False)),
                max(self.south, _to_units(s, "south edge", exact=False)),
                min(self.east, -_to_units(-e, "east edge", exact=False)),
                min(self.north, -_to_units(-n, "north edge", exact=False)),
            )
            if _overlaps(self, bbox)
            else None
        )
        if sub is None:
            raise GridError(f"bbox {tuple(bbox)} does not overlap the grid {self.bbox}")
        rows = slice(self.north - sub.north, self.north - sub.south)
        cols = slice(sub.west - self.west, sub.east - self.west)
        return sub, Tile((0, 0), rows, cols)

    def __repr__(self) -> str:
        w, s, e, n = self.bbox
        try:
            coarse = f"coarse {self.coarse_shape}"
        except GridError:  # a region narrower than one 0.1 degree cell: repr must not raise
            coarse = "no coarse cell"
        return f"GridSpec({w:g}..{e:g} E, {s:g}..{n:g} N, {self.nrows} x {self.ncols} cells, {coarse})"


def _overlaps(grid: GridSpec, bbox: tuple[float, float, float, float]) -> bool:
    w, s, e, n = grid.bbox
    bw, bs, be, bn = bbox
    return bw < e and be > w and bs < n and bn > s
