"""Land mask and the coast/lake rule for coarse ERA5-Land cells.

The 1 km land mask comes from the static land-cover layer (land = any IGBP
class but water). ERA5-Land is NaN over the sea; where the 1 km mask says land
but the fine cell's coarse cell is NaN (coasts, lakes), the *nearest coarse
land cell* (Euclidean distance in coarse cells, ties broken by scipy's
distance transform) stands in for it. :func:`fine_coarse_index` returns the
coarse (row, col) every fine cell reads, with that rule applied.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from smci_dask import conventions as cv
from smci_dask.errors import GridError
from smci_dask.grid.spec import GridSpec, Tile


def land_mask_from_landcover(landcover: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where the IGBP land-cover class is not water (and not a fill value 0/255)."""
    lc = np.asarray(landcover)
    return (lc != cv.WATER_CLASS) & (lc != 0) & (lc != 255)


def count_land(mask: npt.ArrayLike) -> int:
    """Number of land cells in a mask."""
    return int(np.count_nonzero(mask))


def nearest_valid_coarse(valid: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For every coarse cell, the (row, col) of the nearest valid (land, non-NaN) coarse cell.

    A valid cell maps to itself. Raises GridError if no cell is valid.
    """
    v = np.asarray(valid, dtype=bool)
    if not v.any():
        raise GridError("the coarse grid has no land cell (ERA5-Land is NaN everywhere): check the region and the land-sea mask")
    _, (ri, ci) = ndimage.distance_transform_edt(~v, return_indices=True)
    return ri.astype(np.int64), ci.astype(np.int64)


def fine_coarse_index(
    grid: GridSpec, coarse_valid: npt.ArrayLike, tile: Tile | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """2-D coarse (row, col) read by each fine cell of ``tile`` (whole grid if None), coast rule applied."""
    valid = np.asarray(coarse_valid, dtype=bool)
    if valid.shape != grid.coarse_shape:
        raise GridError(f"coarse mask has shape {valid.shape}, the grid's coarse shape is {grid.coarse_shape}")
    rows = grid.fine_to_coarse_rows()
    cols = grid.fine_to_coarse_cols()
    if tile is not None:
        rows, cols = rows[tile.rows], cols[tile.cols]
    nr, nc = nearest_valid_coarse(valid)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return nr[rr, cc], nc[rr, cc]
