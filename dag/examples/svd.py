"""Singular values of a tall-skinny matrix through a tree of blocked QR (TSQR).

Shape: one generator and one QR per row block (fan-out of independent chains), a binary tree
of R combinations (each stacks two R factors and re-factors them), and one SVD of the final R,
whose singular values are those of the whole matrix.
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
    split_bounds,
)
from dag.lang import TaskRef, task


@task(io="constant")
def generate_rows(seed: int, index: int, rows: int, cols: int) -> np.ndarray:
    """Row block `index` of the matrix: standard normals from the stream ``[seed, index]``."""
    return np.random.default_rng([seed, index]).standard_normal((rows, cols))


@task
def local_r(block: np.ndarray) -> np.ndarray:
    """R factor of one row block."""
    return np.linalg.qr(block, mode="r")


@task
def combine_r(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """R factor of two stacked R factors."""
    return np.linalg.qr(np.vstack([upper, lower]), mode="r")


@task
def singular_values(r: np.ndarray) -> np.ndarray:
    """Singular values of the final R (descending)."""
    return np.linalg.svd(r, compute_uv=False)


def _qr_flops(m: int, n: int) -> float:
    """Householder QR flops of an m x n matrix (R only)."""
    small, large = min(m, n), max(m, n)
    return 2.0 * large * small**2 - 2.0 / 3.0 * small**3


def svd(*, rows: int = 4096, cols: int = 16, blocks: int = 8, seed: int = 0) -> ExampleWorkflow:
    """Singular values of a rows x cols matrix via TSQR over `blocks` row blocks.

    Raises
    ------
    ValueError
        If cols < 1, blocks < 1, rows < blocks or seed < 0.
    """
    cols = require_int("svd", "cols", cols, 1)
    blocks = require_int("svd", "blocks", blocks, 1)
    rows = require_int("svd", "rows", rows, blocks)
    seed = require_int("svd", "seed", seed, 0)
    book = CostBook()
    level: list[tuple[TaskRef, int]] = []  # (R ref, rows of R)
    for index, (lo, hi) in enumerate(split_bounds(rows, blocks)):
        m = hi - lo
        block = book.note(
            generate_rows(seed, index, m, cols),
            output_bytes=m * cols * FLOAT_BYTES,
            flops=20 * m * cols,
            bytes_touched=m * cols * FLOAT_BYTES,
        )
        r_rows = min(m, cols)
        r = book.note(
            local_r(block),
            output_bytes=r_rows * cols * FLOAT_BYTES,
            flops=_qr_flops(m, cols),
            bytes_touched=2 * m * cols * FLOAT_BYTES,
        )
        level.append((r, r_rows))
    while len(level) > 1:
        merged = []
        for (upper, m1), (lower, m2) in zip(level[0::2], level[1::2], strict=False):
            m = m1 + m2
            r_rows = min(m, cols)
            ref = combine_r(upper, lower)
            merged.append(
                (
                    book.note(
                        ref,
                        output_bytes=r_rows * cols * FLOAT_BYTES,
                        flops=_qr_flops(m, cols),
                        bytes_touched=2 * m * cols * FLOAT_BYTES,
                    ),
                    r_rows,
                )
            )
        if len(level) % 2:
            merged.append(level[-1])
        level = merged
    final, r_rows = level[0]
    k = min(r_rows, cols)
    values = book.note(
        singular_values(final),
        output_bytes=k * FLOAT_BYTES,
        flops=4.0 * max(r_rows, cols) * k**2,
        bytes_touched=r_rows * cols * FLOAT_BYTES,
    )

    def check(result: np.ndarray) -> None:
        bounds = split_bounds(rows, blocks)
        full = np.vstack(
            [generate_rows.fn(seed, i, hi - lo, cols) for i, (lo, hi) in enumerate(bounds)]
        )
        assert_close("singular values", result, np.linalg.svd(full, compute_uv=False))

    params = {"rows": rows, "cols": cols, "blocks": blocks, "seed": seed}
    return make_example("svd", params, values, book, check)
