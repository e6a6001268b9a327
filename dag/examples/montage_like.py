"""A Montage-shaped mosaic: reproject images, fit overlap differences, level backgrounds, add.

A grid x grid set of overlapping sky images is generated from one analytic sky, each with its
own background offset, gain and orientation (as a telescope would record it). The tasks follow
Montage's:

- ``mProject`` per image: undo the orientation and gain, onto the common frame;
- ``mDiffFit`` per overlapping neighbour pair (horizontal and vertical): mean difference;
- ``mConcatFit``: one table of all fits (fan-in);
- ``mBgModel``: least-squares background correction per image (zero mean);
- ``mBackground`` per image: subtract its correction (fan-out of the model);
- ``mAdd``: average the corrected images onto the mosaic canvas (fan-in).
"""

from __future__ import annotations

import numpy as np

from dag.examples.base import (
    FLOAT_BYTES,
    CostBook,
    ExampleWorkflow,
    assert_close,
    make_example,
    require_int,
)
from dag.lang import task

N_WAVES = 6
HEADER_BYTES = 64


def sky(seed: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The true sky at canvas pixel coordinates: a seeded sum of sinusoids."""
    rng = np.random.default_rng([seed, 0])
    field = np.zeros(np.broadcast(y, x).shape)
    for amp, fy, fx, phase in rng.uniform(
        [0.2, -0.1, -0.1, 0], [1, 0.1, 0.1, 2 * np.pi], (N_WAVES, 4)
    ):
        field += amp * np.sin(fy * y + fx * x + phase)
    return field


def _origin(row: int, col: int, step: int) -> tuple[int, int]:
    return row * step, col * step


@task(io="constant", name="mGenerate")
def generate_raw(seed: int, row: int, col: int, size: int, step: int, noise: float) -> dict:
    """Raw image (row, col): the sky window plus offset, times gain, rotated, plus noise."""
    rng = np.random.default_rng([seed, 1, row, col])
    offset, gain = rng.normal(0.0, 1.0), rng.uniform(0.8, 1.2)
    turns = int(rng.integers(4))
    y0, x0 = _origin(row, col, step)
    y, x = np.mgrid[y0 : y0 + size, x0 : x0 + size]
    data = gain * (sky(seed, y, x) + offset) + noise * rng.standard_normal((size, size))
    return {
        "data": np.rot90(data, turns),
        "gain": gain,
        "turns": turns,
        "origin": (y0, x0),
        "index": (row, col),
    }


@task(name="mProject")
def project(raw: dict) -> dict:
    """Onto the common frame: undo rotation and gain; keep origin and index."""
    data = np.rot90(raw["data"], -raw["turns"]) / raw["gain"]
    return {"data": data, "origin": raw["origin"], "index": raw["index"]}


def _overlap(a: dict, b: dict) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    (ay, ax), (by, bx) = a["origin"], b["origin"]
    h, w = a["data"].shape
    y0, y1 = max(ay, by), min(ay, by) + h
    x0, x1 = max(ax, bx), min(ax, bx) + w
    return (
        (slice(y0 - ay, y1 - ay), slice(x0 - ax, x1 - ax)),
        (slice(y0 - by, y1 - by), slice(x0 - bx, x1 - bx)),
    )


@task(name="mDiffFit")
def diff_fit(a: dict, b: dict) -> tuple[tuple[int, int], tuple[int, int], float]:
    """Mean of (a - b) over the overlap of two projected images: (index a, index b, mean)."""
    in_a, in_b = _overlap(a, b)
    return a["index"], b["index"], float(np.mean(a["data"][in_a] - b["data"][in_b]))


@task(name="mConcatFit")
def concat_fits(fits: list) -> list:
    """All pair fits in one table."""
    return list(fits)


@task(name="mBgModel")
def background_model(fits: list, grid: int) -> np.ndarray:
    """Per-image corrections c minimising sum (c_a - c_b - d_ab)^2 with sum(c) = 0, grid x grid."""
    n = grid * grid
    system = np.zeros((len(fits) + 1, n))
    target = np.zeros(len(fits) + 1)
    for row, ((ra, ca), (rb, cb), diff) in enumerate(fits):
        system[row, ra * grid + ca] = 1.0
        system[row, rb * grid + cb] = -1.0
        target[row] = diff
    system[-1, :] = 1.0
    corrections, *_ = np.linalg.lstsq(system, target, rcond=None)
    return corrections.reshape(grid, grid)


@task(name="mBackground")
def subtract_background(image: dict, corrections: np.ndarray) -> dict:
    """The projected image minus its background correction."""
    row, col = image["index"]
    return {**image, "data": image["data"] - corrections[row, col]}


@task(name="mAdd")
def add_images(images: list[dict], canvas: int) -> np.ndarray:
    """Mosaic of canvas x canvas pixels: the mean of the images covering each pixel."""
    total = np.zeros((canvas, canvas))
    cover = np.zeros((canvas, canvas))
    for image in images:
        y0, x0 = image["origin"]
        h, w = image["data"].shape
        total[y0 : y0 + h, x0 : x0 + w] += image["data"]
        cover[y0 : y0 + h, x0 : x0 + w] += 1.0
    return total / cover


def montage_like(
    *, grid: int = 3, size: int = 64, overlap: float = 0.25, noise: float = 0.01, seed: int = 0
) -> ExampleWorkflow:
    """Mosaic of grid x grid overlapping size x size images (`overlap`: fraction of a side).

    Raises
    ------
    ValueError
        If grid < 1, size < 2, overlap outside (0, 1) or leaving no overlap or no step,
        noise < 0 or seed < 0.
    """
    grid = require_int("montage_like", "grid", grid, 1)
    size = require_int("montage_like", "size", size, 2)
    seed = require_int("montage_like", "seed", seed, 0)
    overlap, noise = float(overlap), float(noise)
    shared = round(size * overlap)
    if not (0.0 < overlap < 1.0) or not 1 <= shared < size:
        raise ValueError(
            f"montage_like: overlap={overlap!r} must leave 1..{size - 1} shared pixels of size={size}"
        )
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"montage_like: noise={noise!r} must be a finite number >= 0")
    step = size - shared
    canvas = (grid - 1) * step + size
    pixels = size * size
    image_bytes = pixels * FLOAT_BYTES + HEADER_BYTES
    fit_bytes = 3 * 8 + HEADER_BYTES
    pairs = [((r, c), (r, c + 1)) for r in range(grid) for c in range(grid - 1)]
    pairs += [((r, c), (r + 1, c)) for r in range(grid - 1) for c in range(grid)]
    book = CostBook()
    projected = {}
    for r in range(grid):
        for c in range(grid):
            raw = book.note(
                generate_raw(seed, r, c, size, step, noise),
                output_bytes=image_bytes,
                flops=(10 + 20 * N_WAVES) * pixels,
                bytes_touched=(4 + N_WAVES) * pixels * FLOAT_BYTES,
            )
            projected[r, c] = book.note(
                project(raw),
                output_bytes=image_bytes,
                flops=pixels,
                bytes_touched=3 * pixels * FLOAT_BYTES,
            )
    overlap_px = shared * size
    fits = [
        book.note(
            diff_fit(projected[a], projected[b]),
            output_bytes=fit_bytes,
            flops=2 * overlap_px,
            bytes_touched=3 * overlap_px * FLOAT_BYTES,
        )
        for a, b in pairs
    ]
    table = book.note(
        concat_fits(fits), output_bytes=len(fits) * fit_bytes, bytes_touched=len(fits) * fit_bytes
    )
    n = grid * grid
    model = book.note(
        background_model(table, grid),
        output_bytes=n * FLOAT_BYTES,
        flops=4.0 * (len(fits) + 1) * n * n,
        bytes_touched=(len(fits) + 1) * n * FLOAT_BYTES,
    )
    corrected = [
        book.note(
            subtract_background(projected[r, c], model),
            output_bytes=image_bytes,
            flops=pixels,
            bytes_touched=2 * pixels * FLOAT_BYTES,
        )
        for r in range(grid)
        for c in range(grid)
    ]
    mosaic = book.note(
        add_images(corrected, canvas),
        output_bytes=canvas * canvas * FLOAT_BYTES,
        flops=2 * n * pixels + canvas * canvas,
        bytes_touched=3 * n * pixels * FLOAT_BYTES + 3 * canvas * canvas * FLOAT_BYTES,
    )

    def check(result: np.ndarray) -> None:
        images = {
            (r, c): project.fn(generate_raw.fn(seed, r, c, size, step, noise))
            for r in range(grid)
            for c in range(grid)
        }
        fit_table = [diff_fit.fn(images[a], images[b]) for a, b in pairs]
        corrections = background_model.fn(fit_table, grid)
        expected = add_images.fn(
            [subtract_background.fn(images[key], corrections) for key in images], canvas
        )
        assert_close("mosaic", result, expected)
        # The levelled mosaic is the true sky up to one constant, within the noise.
        y, x = np.mgrid[0:canvas, 0:canvas]
        residual = np.asarray(result) - sky(seed, y, x)
        spread = float(np.std(residual))
        assert spread <= 5 * noise + 1e-9, (
            f"mosaic departs from the sky by std {spread:.3g} > 5 * noise"
        )

    params = {"grid": grid, "size": size, "overlap": overlap, "noise": noise, "seed": seed}
    return make_example("montage_like", params, mosaic, book, check)
