"""Index maths of :mod:`smci_dask.grid.spec`, checked against independent float computations.

Grids are generated as integer bboxes in fine units (1/120 degree), so every
generated grid lies on the 30 arc-second grid by construction. The expected
values are computed here with plain float maths on degrees (cell centres,
``np.round(lon * 10) / 10`` for the nearest 0.1 degree centre), never with the
module's own integer formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smci_dask import conventions as cv
from smci_dask.errors import GridError
from smci_dask.grid import GridSpec, get_region, grid_for
from smci_dask.grid.spec import Tile

FINE = cv.FINE_PER_DEGREE
SETTINGS = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------- strategies
@st.composite
def bboxes(draw: st.DrawFn, min_size: int = 1, max_size: int = 400) -> tuple[int, int, int, int]:
    """(west, south, east, north) in integer fine units, inside -180..180 E, -90..90 N."""
    width = draw(st.integers(min_size, max_size))
    height = draw(st.integers(min_size, max_size))
    west = draw(st.integers(-180 * FINE, 180 * FINE - width))
    south = draw(st.integers(-90 * FINE, 90 * FINE - height))
    return (west, south, west + width, south + height)


def grid_of(units: tuple[int, int, int, int]) -> GridSpec:
    """Build through the public degree API, as users do."""
    return GridSpec.from_bbox(tuple(u / FINE for u in units))  # type: ignore[arg-type]


#: grids that hold at least one 0.1 degree centre in each direction (>= 12 fine cells wide and tall)
coarse_bboxes = bboxes(min_size=cv.COARSE_FACTOR, max_size=400)


def _half_degree() -> GridSpec:
    """A 0.5 x 0.5 degree grid on 0.1 degree edges (60 x 60 fine cells, 5 x 5 coarse)."""
    return GridSpec.from_bbox((115.0, 30.0, 115.5, 30.5))


@pytest.fixture(scope="module")
def china() -> GridSpec:
    return get_region("china").grid


# ---------------------------------------------------------------- the China grid
def test_china_shapes_and_coordinates(china: GridSpec) -> None:
    assert china.shape == (4320, 7560)
    assert china.coarse_shape == (360, 630)
    assert china.bbox == cv.CHINA_BBOX
    lon, lat = china.coarse_lon, china.coarse_lat
    assert lon[0] == 73.0 and lon[-1] == 135.9
    assert lat[0] == 54.0 and lat[-1] == 18.1
    assert np.all(np.diff(lat) < 0), "coarse latitude must descend like ERA5-Land's"
    np.testing.assert_allclose(np.diff(lon), 0.1, atol=1e-9)
    np.testing.assert_allclose(np.diff(lat), -0.1, atol=1e-9)
    # fine centres half a cell inside the edges
    assert china.lon[0] == pytest.approx(73.0 + 0.5 / FINE)
    assert china.lon[-1] == pytest.approx(136.0 - 0.5 / FINE)
    assert china.lat[0] == pytest.approx(54.0 - 0.5 / FINE)
    assert china.lat[-1] == pytest.approx(18.0 + 0.5 / FINE)
    assert china.transform == pytest.approx((1 / 120, 0.0, 73.0, 0.0, -1 / 120, 54.0))


def test_china_region_presets_agree(china: GridSpec) -> None:
    assert grid_for("china") == china
    assert grid_for("custom", cv.CHINA_BBOX) == china


@pytest.mark.parametrize("axis", ["cols", "rows"])
def test_china_coarse_cells_cover_12_fine_cells(china: GridSpec, axis: str) -> None:
    f2c = china.fine_to_coarse_cols() if axis == "cols" else china.fine_to_coarse_rows()
    n = china.coarse_shape[1] if axis == "cols" else china.coarse_shape[0]
    assert np.all(np.diff(f2c) >= 0), "fine -> coarse map must be monotonic"
    counts = np.bincount(f2c, minlength=n)
    assert counts.size == n
    # first coarse column (row) is centred on the west (north) edge: only its inner half is in the region
    assert counts[0] == 6
    # interior coarse cells hold exactly 12 fine cells
    assert np.all(counts[1:-1] == 12)
    # the last coarse cell holds its own 12 plus the 6 edge cells whose ERA5-Land cell lies outside
    assert counts[-1] == 12 + 6
    assert np.all(f2c[-6:] == n - 1) and np.all(f2c[-18:] == n - 1) and f2c[-19] == n - 2


def test_china_interior_coarse_cell_is_a_12x12_block(china: GridSpec) -> None:
    rows, cols = china.fine_to_coarse_rows(), china.fine_to_coarse_cols()
    r, c = 100, 200  # an interior coarse cell
    fine_rows = np.flatnonzero(rows == r)
    fine_cols = np.flatnonzero(cols == c)
    assert fine_rows.size == fine_cols.size == 12
    # its fine cells are those within 0.05 degree of the coarse centre
    assert np.all(np.abs(china.lat[fine_rows] - china.coarse_lat[r]) < 0.05)
    assert np.all(np.abs(china.lon[fine_cols] - china.coarse_lon[c]) < 0.05)


# ---------------------------------------------------------------- rowcol / latlon
@SETTINGS
@given(units=bboxes(), data=st.data())
def test_latlon_rowcol_round_trip(units: tuple[int, int, int, int], data: st.DataObject) -> None:
    grid = grid_of(units)
    rows = data.draw(st.lists(st.integers(0, grid.nrows - 1), min_size=1, max_size=20))
    cols = data.draw(st.lists(st.integers(0, grid.ncols - 1), min_size=len(rows), max_size=len(rows)))
    lat, lon = grid.latlon(rows, cols)
    # independent: centres are half a cell from the edges
    np.testing.assert_allclose(lat, units[3] / FINE - (np.array(rows) + 0.5) / FINE, rtol=0, atol=1e-9)
    np.testing.assert_allclose(lon, units[0] / FINE + (np.array(cols) + 0.5) / FINE, rtol=0, atol=1e-9)
    r, c = grid.rowcol(lat, lon)
    np.testing.assert_array_equal(r, rows)
    np.testing.assert_array_equal(c, cols)
    np.testing.assert_array_equal(grid.lat[rows], lat)
    np.testing.assert_array_equal(grid.lon[cols], lon)


@SETTINGS
@given(
    units=bboxes(),
    data=st.data(),
    fy=st.floats(0.001, 0.999),
    fx=st.floats(0.001, 0.999),
)
def test_point_inside_a_cell_maps_to_it(units: tuple[int, int, int, int], data: st.DataObject, fy: float, fx: float) -> None:
    grid = grid_of(units)
    row = data.draw(st.integers(0, grid.nrows - 1))
    col = data.draw(st.integers(0, grid.ncols - 1))
    west, north = units[0] / FINE, units[3] / FINE
    lat = north - (row + fy) / FINE
    lon = west + (col + fx) / FINE
    r, c = grid.rowcol(lat, lon)
    assert (int(r), int(c)) == (row, col)


@SETTINGS
@given(units=bboxes(), data=st.data())
def test_points_on_west_and_north_edges_belong_to_the_cell(units: tuple[int, int, int, int], data: st.DataObject) -> None:
    grid = grid_of(units)
    row = data.draw(st.integers(0, grid.nrows - 1))
    col = data.draw(st.integers(0, grid.ncols - 1))
    west, north = units[0] / FINE, units[3] / FINE
    north_edge = north - row / FINE
    west_edge = west + col / FINE
    centre_lat, centre_lon = grid.latlon(row, col)
    # on the west edge (latitude at the centre), on the north edge, and on the north-west corner
    for lat, lon in [(centre_lat, west_edge), (north_edge, centre_lon), (north_edge, west_edge)]:
        r, c = grid.rowcol(lat, lon)
        assert (int(r), int(c)) == (row, col), (lat, lon)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # NaN/inf must not hit an integer cast
@SETTINGS
@given(units=bboxes(), data=st.data())
def test_points_on_east_or_south_edge_or_beyond_are_outside(units: tuple[int, int, int, int], data: st.DataObject) -> None:
    grid = grid_of(units)
    w, s, e, n = (u / FINE for u in units)
    inside_lat = float(grid.lat[data.draw(st.integers(0, grid.nrows - 1))])
    inside_lon = float(grid.lon[data.draw(st.integers(0, grid.ncols - 1))])
    beyond = data.draw(st.floats(0.0, 5.0))
    outside_points = [
        (inside_lat, e),  # on the region's east edge
        (s, inside_lon),  # on the region's south edge
        (s, e),  # south-east corner
        (inside_lat, e + beyond),
        (s - beyond, inside_lon),
        (inside_lat, w - beyond - 1e-3),
        (n + beyond + 1e-3, inside_lon),
        (float("nan"), inside_lon),
        (inside_lat, float("inf")),
    ]
    for lat, lon in outside_points:
        with pytest.raises(GridError, match="outside the grid"):
            grid.rowcol(lat, lon)
        r, c = grid.rowcol(lat, lon, outside="mask")
        assert (int(r), int(c)) == (-1, -1), (lat, lon)


def test_rowcol_mask_keeps_inside_points_and_counts_outside() -> None:
    grid = _half_degree()
    lat = np.array([30.25, 31.0, 30.25, 30.0])
    lon = np.array([115.25, 115.25, 115.5, 115.25])
    r, c = grid.rowcol(lat, lon, outside="mask")
    assert r.tolist()[1:] == [-1, -1, -1] and c.tolist()[1:] == [-1, -1, -1]
    assert (r[0], c[0]) == (30, 30)
    with pytest.raises(GridError, match="3 point"):
        grid.rowcol(lat, lon)


def test_rowcol_broadcasts_and_keeps_shape() -> None:
    grid = _half_degree()
    lat = grid.lat[:, None]
    lon = grid.lon[None, :]
    r, c = grid.rowcol(lat, lon)
    assert r.shape == c.shape == grid.shape
    np.testing.assert_array_equal(r, np.broadcast_to(np.arange(grid.nrows)[:, None], grid.shape))
    np.testing.assert_array_equal(c, np.broadcast_to(np.arange(grid.ncols)[None, :], grid.shape))


def test_latlon_rejects_indices_off_the_grid() -> None:
    grid = _half_degree()
    for row, col in [(-1, 0), (0, -1), (grid.nrows, 0), (0, grid.ncols)]:
        with pytest.raises(GridError, match="off the grid"):
            grid.latlon(row, col)


# ---------------------------------------------------------------- fine -> coarse
def _nearest_coarse_index(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Index into ``coarse`` of the 0.1 degree centre nearest to each fine centre (float maths)."""
    nearest = np.round(fine * 10) / 10  # nearest multiple of 0.1 degree
    step = coarse[1] - coarse[0] if coarse.size > 1 else 0.1
    return np.rint((nearest - coarse[0]) / step).astype(np.int64)


@SETTINGS
@given(units=coarse_bboxes)
def test_fine_to_coarse_is_the_nearest_centre(units: tuple[int, int, int, int]) -> None:
    grid = grid_of(units)
    nrow, ncol = grid.coarse_shape
    assert ncol >= 1 and nrow >= 1
    # coarse centres: multiples of 0.1 inside the half-open box, north first
    w, s, e, n = (u / FINE for u in units)
    assert np.all((grid.coarse_lon >= w - 1e-9) & (grid.coarse_lon < e - 1e-9))
    assert np.all((grid.coarse_lat > s + 1e-9) & (grid.coarse_lat <= n + 1e-9))
    np.testing.assert_allclose(grid.coarse_lon * 10, np.round(grid.coarse_lon * 10), atol=1e-6)
    np.testing.assert_allclose(grid.coarse_lat * 10, np.round(grid.coarse_lat * 10), atol=1e-6)
    # no centre of the region is missing: one step beyond each end lies outside
    assert grid.coarse_lon[0] - 0.1 < w - 1e-9 and grid.coarse_lon[-1] + 0.1 >= e - 1e-9
    assert grid.coarse_lat[0] + 0.1 > n + 1e-9 and grid.coarse_lat[-1] - 0.1 <= s + 1e-9

    for f2c, fine, coarse in [
        (grid.fine_to_coarse_cols(), grid.lon, grid.coarse_lon),
        (grid.fine_to_coarse_rows(), grid.lat, grid.coarse_lat),
    ]:
        expected = _nearest_coarse_index(fine, coarse)
        m = coarse.size
        interior = (expected >= 0) & (expected < m)
        np.testing.assert_array_equal(f2c[interior], expected[interior])
        # clipped edges: fine cells whose ERA5-Land cell is centred outside the region take the edge cell
        np.testing.assert_array_equal(f2c[expected < 0], 0)
        np.testing.assert_array_equal(f2c[expected >= m], m - 1)
        # at most 6 fine cells on each side can need clipping (half a coarse cell)
        assert np.count_nonzero(expected < 0) <= 6 and np.count_nonzero(expected >= m) <= 6
        # brute force: argmin of the distance to every coarse centre gives the same map
        brute = np.argmin(np.abs(fine[:, None] - coarse[None, :]), axis=1)
        np.testing.assert_array_equal(f2c, brute)


@SETTINGS
@given(units=coarse_bboxes, data=st.data())
def test_coarse_rowcol_of_points(units: tuple[int, int, int, int], data: st.DataObject) -> None:
    grid = grid_of(units)
    row = data.draw(st.integers(0, grid.nrows - 1))
    col = data.draw(st.integers(0, grid.ncols - 1))
    lat, lon = grid.latlon(row, col)
    r, c = grid.coarse_rowcol(lat, lon)
    assert int(r) == int(np.argmin(np.abs(grid.coarse_lat - lat)))
    assert int(c) == int(np.argmin(np.abs(grid.coarse_lon - lon)))
    r, c = grid.coarse_rowcol([lat, units[1] / FINE], [lon, lon], outside="mask")
    assert r.tolist() == [int(np.argmin(np.abs(grid.coarse_lat - lat))), -1]
    assert c[1] == -1


def test_region_without_a_coarse_centre_errors() -> None:
    # 8 fine cells wide, between two 0.1 degree centres (115.0 and 115.1)
    grid = GridSpec.from_bbox((115.0 + 1 / FINE, 30.0, 115.0 + 9 / FINE, 30.5))
    with pytest.raises(GridError, match="holds no ERA5-Land"):
        _ = grid.coarse_shape
    assert "no coarse cell" in repr(grid)  # repr never raises


# ---------------------------------------------------------------- bilinear weights
@SETTINGS
@given(
    units=coarse_bboxes,
    a=st.floats(-5, 5),
    b=st.floats(-5, 5),
    c0=st.floats(-100, 100),
)
def test_bilinear_weights_reproduce_a_linear_field(units: tuple[int, int, int, int], a: float, b: float, c0: float) -> None:
    grid = grid_of(units)
    clat, clon = grid.coarse_lat, grid.coarse_lon
    field = a * clat[:, None] + b * clon[None, :] + c0  # linear on the coarse grid

    r0, r1, wr = grid.coarse_weights("lat")
    q0, q1, wq = grid.coarse_weights("lon")
    assert r0.shape == r1.shape == wr.shape == (grid.nrows,)
    assert q0.shape == q1.shape == wq.shape == (grid.ncols,)
    assert np.all((wr >= 0) & (wr <= 1)) and np.all((wq >= 0) & (wq <= 1))
    assert np.all((r0 >= 0) & (r1 < clat.size)) and np.all((q0 >= 0) & (q1 < clon.size))

    wr2, wq2 = wr[:, None], wq[None, :]
    fine = (
        (1 - wr2) * (1 - wq2) * field[r0[:, None], q0[None, :]]
        + (1 - wr2) * wq2 * field[r0[:, None], q1[None, :]]
        + wr2 * (1 - wq2) * field[r1[:, None], q0[None, :]]
        + wr2 * wq2 * field[r1[:, None], q1[None, :]]
    )
    # independent expectation at fine centres: the linear field itself between the outer centres,
    # the value at the nearest outer centre beyond them
    lat = np.clip(grid.lat, clat.min(), clat.max())
    lon = np.clip(grid.lon, clon.min(), clon.max())
    expected = a * lat[:, None] + b * lon[None, :] + c0
    np.testing.assert_allclose(fine, expected, rtol=0, atol=1e-9 * (1 + abs(a) * 90 + abs(b) * 180 + abs(c0)))

    # strictly between the outer centres nothing is clipped
    inner_lat = (grid.lat <= clat.max()) & (grid.lat >= clat.min())
    inner_lon = (grid.lon >= clon.min()) & (grid.lon <= clon.max())
    np.testing.assert_allclose(lat[inner_lat], grid.lat[inner_lat])
    np.testing.assert_allclose(lon[inner_lon], grid.lon[inner_lon])


def test_bilinear_weights_china_interior(china: GridSpec) -> None:
    q0, q1, w = china.coarse_weights("lon")
    # fine centre 73.0 + 0.5/120 + 12/120 = 73.1 + 1/240 lies just east of the 73.1 centre
    j = 12
    assert (q0[j], q1[j]) == (1, 2)
    assert w[j] == pytest.approx((0.5 / 120) / 0.1)
    # the first fine centre lies just east of the first coarse centre (73.0, on the region's edge)
    assert (q0[0], q1[0]) == (0, 1) and w[0] == pytest.approx((0.5 / 120) / 0.1)
    # centres east of the last coarse centre (135.9 E): the last 12 fine columns are clamped to it
    assert np.all(q1[-12:] == 629) and np.all(w[-12:] == 1.0) and w[-13] < 1.0
    r0, r1, wr = china.coarse_weights("lat")
    assert (r0[0], r1[0]) == (0, 1) and wr[0] == pytest.approx((0.5 / 120) / 0.1)
    # south of the last coarse centre (18.1 N): the last 12 fine rows
    assert np.all(r1[-12:] == 359) and np.all(wr[-12:] == 1.0) and wr[-13] < 1.0


# ---------------------------------------------------------------- tiles and sub-grids
@SETTINGS
@given(units=bboxes(max_size=300), size=st.one_of(st.integers(1, 350), st.tuples(st.integers(1, 350), st.integers(1, 350))))
def test_tiles_cover_the_grid_exactly_once(units: tuple[int, int, int, int], size: int | tuple[int, int]) -> None:
    grid = grid_of(units)
    tiles = grid.tiles(size)
    sr, sc = (size, size) if isinstance(size, int) else size
    count = np.zeros(grid.shape, dtype=np.int32)
    for tile in tiles:
        assert isinstance(tile, Tile)
        assert 0 <= tile.rows.start < tile.rows.stop <= grid.nrows
        assert 0 <= tile.cols.start < tile.cols.stop <= grid.ncols
        assert tile.shape[0] <= sr and tile.shape[1] <= sc
        count[tile.rows, tile.cols] += 1
    assert np.all(count == 1)
    assert len(tiles) == math.ceil(grid.nrows / sr) * math.ceil(grid.ncols / sc)
    assert len({t.index for t in tiles}) == len(tiles)


@pytest.mark.parametrize("size", [0, -3, (4, 0)])
def test_tiles_reject_empty_sizes(size: int | tuple[int, int]) -> None:
    with pytest.raises(GridError, match="tile size"):
        _half_degree().tiles(size)


@SETTINGS
@given(units=bboxes(min_size=2, max_size=300), data=st.data())
def test_subgrid_slices_match_coordinates(units: tuple[int, int, int, int], data: st.DataObject) -> None:
    grid = grid_of(units)
    w, s, e, n = units
    # a sub-bbox in fractional fine units, possibly off the grid and sticking out of it
    x0 = data.draw(st.floats(w - 20, e - 0.5))
    x1 = data.draw(st.floats(x0 + 0.25, e + 20))
    y0 = data.draw(st.floats(s - 20, n - 0.5))
    y1 = data.draw(st.floats(y0 + 0.25, n + 20))
    assume(x1 > w + 1e-3 and y1 > s + 1e-3 and x0 < e - 1e-3 and y0 < n - 1e-3)
    bbox = (x0 / FINE, y0 / FINE, x1 / FINE, y1 / FINE)
    sub, tile = grid.subgrid(bbox)
    np.testing.assert_array_equal(grid.lat[tile.rows], sub.lat)
    np.testing.assert_array_equal(grid.lon[tile.cols], sub.lon)
    assert tile.shape == sub.shape
    # clipped to the grid, snapped outward to whole cells: covers the box, by less than one extra cell per side
    assert w <= sub.west < sub.east <= e and s <= sub.south < sub.north <= n
    tol = 1e-3
    lo_x, hi_x, lo_y, hi_y = max(w, x0), min(e, x1), max(s, y0), min(n, y1)
    assert lo_x - 1 - tol < sub.west <= lo_x + tol
    assert hi_x - tol <= sub.east < hi_x + 1 + tol
    assert lo_y - 1 - tol < sub.south <= lo_y + tol
    assert hi_y - tol <= sub.north < hi_y + 1 + tol


def test_subgrid_outside_errors() -> None:
    grid = _half_degree()
    with pytest.raises(GridError, match="does not overlap"):
        grid.subgrid((100.0, 10.0, 101.0, 11.0))
    with pytest.raises(GridError, match="does not overlap"):
        grid.subgrid((115.5, 30.0, 116.0, 30.5))  # touches the east edge only


# ---------------------------------------------------------------- from_bbox validation
@pytest.mark.parametrize("edge", ["west", "south", "east", "north"])
@SETTINGS
@given(units=bboxes(min_size=2), offset=st.floats(0.01, 0.99))
def test_from_bbox_rejects_edges_off_the_grid(edge: str, units: tuple[int, int, int, int], offset: float) -> None:
    i = ["west", "south", "east", "north"].index(edge)
    degrees = [u / FINE for u in units]
    degrees[i] = (units[i] + (offset if i < 2 else -offset)) / FINE
    with pytest.raises(GridError, match=f"{edge} edge .* is not on the 30 arc-second grid"):
        GridSpec.from_bbox(tuple(degrees))  # type: ignore[arg-type]


@SETTINGS
@given(units=bboxes())
def test_from_bbox_round_trips_grid_edges(units: tuple[int, int, int, int]) -> None:
    grid = grid_of(units)
    assert (grid.west, grid.south, grid.east, grid.north) == units
    assert grid.shape == (units[3] - units[1], units[2] - units[0])
    assert GridSpec.from_bbox(grid.bbox) == grid


@pytest.mark.parametrize(
    "bbox",
    [(115.0, 30.0, 115.0, 30.5), (115.0, 30.0, 114.0, 30.5), (115.0, 30.5, 115.5, 30.5), (115.0, 31.0, 115.5, 30.0)],
)
def test_from_bbox_rejects_empty_boxes(bbox: tuple[float, float, float, float]) -> None:
    with pytest.raises(GridError, match="is empty"):
        GridSpec.from_bbox(bbox)


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((-181.0, 0.0, 0.0, 1.0), "outside -180..180"),
        ((0.0, 0.0, 1.0, 90.5), "outside -180..180"),
        ((0.0, 0.0, 1.0), "must have 4 numbers"),
        ((float("nan"), 0.0, 1.0, 1.0), "west edge nan is not a finite number"),
        ((0.0, 0.0, float("inf"), 1.0), "east edge inf is not a finite number"),
    ],
)
def test_from_bbox_rejects_bad_boxes(bbox: tuple[float, ...], match: str) -> None:
    with pytest.raises(GridError, match=match):
        GridSpec.from_bbox(bbox)  # type: ignore[arg-type]


def test_repr_names_extent_and_shapes() -> None:
    text = repr(_half_degree())
    assert "115..115.5 E" in text and "60 x 60 cells" in text and "coarse (5, 5)" in text
