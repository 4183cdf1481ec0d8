"""Land mask and the coast/lake rule of :mod:`smci_dask.grid.landmask`.

``nearest_valid_coarse`` is checked against a brute-force search over every
valid cell; ``fine_coarse_index`` against the composition of the grid's own
fine -> coarse maps with that search, and per tile against the whole grid.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smci_dask import conventions as cv
from smci_dask.errors import GridError
from smci_dask.grid import GridSpec, count_land, fine_coarse_index, land_mask_from_landcover, nearest_valid_coarse

SETTINGS = settings(max_examples=200, deadline=None)
FEW = settings(max_examples=30, deadline=None)

#: 1 x 1 degree grid on 0.1 degree edges: 120 x 120 fine cells, 10 x 10 coarse (centres 114.5..115.4 E, 30.5..29.6 N)
GRID = GridSpec.from_bbox((114.5, 29.5, 115.5, 30.5))
#: a grid whose edges are not on 0.1 degree (coarse cells cut at other offsets)
ODD_GRID = GridSpec.from_bbox((114.5 + 5 / 120, 29.5 + 7 / 120, 115.2 + 1 / 120, 30.1 + 3 / 120))


def masks(shape: tuple[int, int] | st.SearchStrategy[tuple[int, int]] | None = None) -> st.SearchStrategy[np.ndarray]:
    """Boolean masks with at least one True cell."""
    shapes = shape if shape is not None else hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=15)
    return hnp.arrays(np.bool_, shapes, elements=st.booleans()).filter(lambda a: bool(a.any()))


# ---------------------------------------------------------------- land mask
def test_land_mask_from_landcover_igbp_classes() -> None:
    lc = np.array([[1, 5, 16, cv.WATER_CLASS], [0, 255, 12, 13]], dtype=np.uint8)
    expected = np.array([[True, True, True, False], [False, False, True, True]])
    np.testing.assert_array_equal(land_mask_from_landcover(lc), expected)
    assert land_mask_from_landcover(lc).dtype == np.bool_
    assert count_land(expected) == 5


@SETTINGS
@given(lc=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=8)))
def test_land_mask_is_every_class_but_water_and_fill(lc: np.ndarray) -> None:
    mask = land_mask_from_landcover(lc)
    assert mask.shape == lc.shape
    expected = np.vectorize(lambda v: v not in (0, cv.WATER_CLASS, 255), otypes=[bool])(lc) if lc.size else np.zeros(lc.shape, bool)
    np.testing.assert_array_equal(mask, expected)
    assert count_land(mask) == int(expected.sum())


def test_land_mask_accepts_lists_and_wider_integers() -> None:
    np.testing.assert_array_equal(land_mask_from_landcover([[17, 3], [255, 0]]), [[False, True], [False, False]])
    np.testing.assert_array_equal(land_mask_from_landcover(np.array([17, 3, 255], dtype=np.int32)), [False, True, False])


# ---------------------------------------------------------------- nearest valid coarse cell
@SETTINGS
@given(valid=masks())
def test_nearest_valid_coarse_matches_brute_force(valid: np.ndarray) -> None:
    ri, ci = nearest_valid_coarse(valid)
    assert ri.shape == ci.shape == valid.shape
    assert ri.dtype == np.int64 and ci.dtype == np.int64
    # every answer is a valid cell
    assert valid[ri, ci].all()
    # valid cells map to themselves
    rows, cols = np.indices(valid.shape)
    np.testing.assert_array_equal(ri[valid], rows[valid])
    np.testing.assert_array_equal(ci[valid], cols[valid])
    # invalid cells map to a valid cell at minimal Euclidean distance (brute force over all valid cells)
    vr, vc = np.nonzero(valid)
    d2 = (rows[..., None] - vr) ** 2 + (cols[..., None] - vc) ** 2  # (nrow, ncol, n_valid)
    best = d2.min(axis=-1)
    got = (rows - ri) ** 2 + (cols - ci) ** 2
    np.testing.assert_array_equal(got, best)


def test_nearest_valid_coarse_single_valid_cell_and_ties() -> None:
    valid = np.zeros((5, 7), dtype=bool)
    valid[2, 3] = True
    ri, ci = nearest_valid_coarse(valid)
    assert np.all(ri == 2) and np.all(ci == 3)
    # a cell equidistant from two valid cells gets one of them
    valid = np.zeros((1, 3), dtype=bool)
    valid[0, 0] = valid[0, 2] = True
    ri, ci = nearest_valid_coarse(valid)
    assert ci[0, 1] in (0, 2) and ri[0, 1] == 0


def test_nearest_valid_coarse_accepts_nan_fields() -> None:
    field = np.array([[np.nan, 0.2, 0.3], [np.nan, np.nan, 0.1]])
    ri, ci = nearest_valid_coarse(np.isfinite(field))
    filled = field[ri, ci]
    assert np.isfinite(filled).all()
    assert filled[0, 0] == 0.2  # distance 1 to (0, 1)
    assert filled[1, 0] == 0.2  # sqrt(2) to (0, 1), 2 to (1, 2)
    assert filled[1, 1] in (0.2, 0.1)


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (0, 0)])
def test_nearest_valid_coarse_errors_without_valid_cells(shape: tuple[int, int]) -> None:
    with pytest.raises(GridError, match="no land cell"):
        nearest_valid_coarse(np.zeros(shape, dtype=bool))


# ---------------------------------------------------------------- fine -> coarse index with the coast rule
@pytest.mark.parametrize("grid", [GRID, ODD_GRID], ids=["on-0.1", "off-0.1"])
@FEW
@given(data=st.data())
def test_fine_coarse_index_is_nearest_valid_of_own_cell(grid: GridSpec, data: st.DataObject) -> None:
    valid = data.draw(masks(grid.coarse_shape))
    rr, cc = fine_coarse_index(grid, valid)
    assert rr.shape == cc.shape == grid.shape
    assert valid[rr, cc].all()
    own_r = grid.fine_to_coarse_rows()[:, None]
    own_c = grid.fine_to_coarse_cols()[None, :]
    own_valid = valid[own_r, own_c]
    # where the fine cell's own coarse cell is valid, it reads that cell
    np.testing.assert_array_equal(np.broadcast_to(own_r, grid.shape)[own_valid], rr[own_valid])
    np.testing.assert_array_equal(np.broadcast_to(own_c, grid.shape)[own_valid], cc[own_valid])
    # elsewhere it reads a valid cell at minimal distance (in coarse cells) from its own cell
    vr, vc = np.nonzero(valid)
    d2_best = ((own_r[..., None] - vr) ** 2 + (own_c[..., None] - vc) ** 2).min(axis=-1)
    np.testing.assert_array_equal((own_r - rr) ** 2 + (own_c - cc) ** 2, d2_best)


@pytest.mark.parametrize("grid", [GRID, ODD_GRID], ids=["on-0.1", "off-0.1"])
@FEW
@given(data=st.data(), size=st.one_of(st.integers(1, 130), st.tuples(st.integers(1, 130), st.integers(1, 130))))
def test_fine_coarse_index_of_a_tile_is_a_slice_of_the_whole(grid: GridSpec, data: st.DataObject, size: int | tuple[int, int]) -> None:
    valid = data.draw(masks(grid.coarse_shape))
    whole_r, whole_c = fine_coarse_index(grid, valid)
    for tile in grid.tiles(size):
        tr, tc = fine_coarse_index(grid, valid, tile)
        assert tr.shape == tc.shape == tile.shape
        np.testing.assert_array_equal(tr, whole_r[tile.rows, tile.cols])
        np.testing.assert_array_equal(tc, whole_c[tile.rows, tile.cols])


def test_fine_coarse_index_of_a_subgrid_tile() -> None:
    valid = np.ones(GRID.coarse_shape, dtype=bool)
    valid[:, :3] = False  # the sea in the west
    sub, tile = GRID.subgrid((114.52, 29.9, 114.71, 30.2))
    rr, cc = fine_coarse_index(GRID, valid, tile)
    assert rr.shape == sub.shape
    assert np.all(cc >= 3)
    whole_r, whole_c = fine_coarse_index(GRID, valid)
    np.testing.assert_array_equal(cc, whole_c[tile.rows, tile.cols])


def test_fine_coarse_index_all_valid_is_the_plain_map() -> None:
    rr, cc = fine_coarse_index(GRID, np.ones(GRID.coarse_shape, dtype=bool))
    np.testing.assert_array_equal(rr, np.broadcast_to(GRID.fine_to_coarse_rows()[:, None], GRID.shape))
    np.testing.assert_array_equal(cc, np.broadcast_to(GRID.fine_to_coarse_cols()[None, :], GRID.shape))


def test_fine_coarse_index_errors() -> None:
    with pytest.raises(GridError, match="no land cell"):
        fine_coarse_index(GRID, np.zeros(GRID.coarse_shape, dtype=bool))
    with pytest.raises(GridError, match=r"coarse mask has shape \(3, 3\)"):
        fine_coarse_index(GRID, np.ones((3, 3), dtype=bool))
