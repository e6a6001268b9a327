"""Tiled image pipeline: split a generated image into tiles, filter each tile, merge.

Shape: one image source, a fan-out to ``tiles**2`` tile extractions, an independent chain
blur -> edges -> threshold per tile, and a fan-in merging the binary tiles into one mask.
"""

from __future__ import annotations

import numpy as np

from dag.examples.base import (
    FLOAT_BYTES,
    CostBook,
    ExampleWorkflow,
    assert_equal,
    make_example,
    require_int,
    split_bounds,
)
from dag.lang import task

N_BLOBS = 8


@task(io="constant")
def generate_image(seed: int, size: int) -> np.ndarray:
    """A size x size float image: gaussian blobs at seeded places plus a little noise."""
    rng = np.random.default_rng([seed, size])
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.05 * rng.standard_normal((size, size))
    for cy, cx, width, height in rng.uniform([0, 0, 0.03, 0.5], [1, 1, 0.2, 1.5], (N_BLOBS, 4)):
        image += height * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
    return image


@task
def extract_tile(image: np.ndarray, row: int, col: int, tiles: int) -> np.ndarray:
    """Tile (row, col) of a tiles x tiles grid (a copy)."""
    rows = split_bounds(image.shape[0], tiles)[row]
    cols = split_bounds(image.shape[1], tiles)[col]
    return image[rows[0] : rows[1], cols[0] : cols[1]].copy()


def _shifts(tile: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    padded = np.pad(tile, 1, mode="edge")
    h, w = tile.shape
    return {
        (dy, dx): padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    }


@task
def blur(tile: np.ndarray) -> np.ndarray:
    """3 x 3 box blur (edge pixels repeated at the border)."""
    return sum(_shifts(tile).values()) / 9.0


@task
def edges(tile: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude."""
    s = _shifts(tile)
    gx = (s[(-1, 1)] + 2 * s[(0, 1)] + s[(1, 1)]) - (s[(-1, -1)] + 2 * s[(0, -1)] + s[(1, -1)])
    gy = (s[(1, -1)] + 2 * s[(1, 0)] + s[(1, 1)]) - (s[(-1, -1)] + 2 * s[(-1, 0)] + s[(-1, 1)])
    return np.hypot(gx, gy)


@task
def threshold(tile: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels above the tile's mean plus one standard deviation."""
    return tile > tile.mean() + tile.std()


@task
def merge_tiles(grid: list[list[np.ndarray]]) -> np.ndarray:
    """The whole mask from its grid of tiles."""
    return np.block(grid)


def image_pipeline(*, size: int = 256, tiles: int = 4, seed: int = 0) -> ExampleWorkflow:
    """Edge mask of a size x size image, computed on tiles x tiles tiles.

    Raises
    ------
    ValueError
        If tiles < 1, size < tiles or seed < 0.
    """
    tiles = require_int("image_pipeline", "tiles", tiles, 1)
    size = require_int("image_pipeline", "size", size, tiles)
    seed = require_int("image_pipeline", "seed", seed, 0)
    book = CostBook()
    pixels = size * size
    image = book.note(
        generate_image(seed, size),
        output_bytes=pixels * FLOAT_BYTES,
        flops=(20 + 10 * N_BLOBS) * pixels,
        bytes_touched=(2 + N_BLOBS) * pixels * FLOAT_BYTES,
    )
    bounds = split_bounds(size, tiles)
    grid = []
    for row in range(tiles):
        grid_row = []
        for col in range(tiles):
            tile_px = (bounds[row][1] - bounds[row][0]) * (bounds[col][1] - bounds[col][0])
            tile_bytes = tile_px * FLOAT_BYTES
            ref = book.note(
                extract_tile(image, row, col, tiles),
                output_bytes=tile_bytes,
                bytes_touched=2 * tile_bytes,
            )
            ref = book.note(
                blur(ref),
                output_bytes=tile_bytes,
                flops=10 * tile_px,
                bytes_touched=11 * tile_bytes,
            )
            ref = book.note(
                edges(ref),
                output_bytes=tile_bytes,
                flops=20 * tile_px,
                bytes_touched=14 * tile_bytes,
            )
            ref = book.note(
                threshold(ref),
                output_bytes=tile_px,
                flops=4 * tile_px,
                bytes_touched=3 * tile_bytes,
            )
            grid_row.append(ref)
        grid.append(grid_row)
    mask = book.note(merge_tiles(grid), output_bytes=pixels, bytes_touched=2 * pixels)

    def check(result: np.ndarray) -> None:
        img = generate_image.fn(seed, size)
        expected = np.block(
            [
                [
                    threshold.fn(edges.fn(blur.fn(extract_tile.fn(img, r, c, tiles))))
                    for c in range(tiles)
                ]
                for r in range(tiles)
            ]
        )
        assert_equal("edge mask", result, expected)

    return make_example(
        "image_pipeline", {"size": size, "tiles": tiles, "seed": seed}, mask, book, check
    )
