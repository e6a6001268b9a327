"""Blocked matrix multiply C = A @ B of two generated n x n matrices.

Shape: ``2 * blocks**2`` block generators, ``blocks**3`` block products (each reads one block
of A and one of B), ``blocks**2`` fan-in sums over k, and one assembly of C.
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
from dag.lang import task


@task(io="constant")
def generate_block(seed: int, matrix: int, row: int, col: int, rows: int, cols: int) -> np.ndarray:
    """Block (row, col) of matrix `matrix` (0 for A, 1 for B): standard normals, seeded."""
    return np.random.default_rng([seed, matrix, row, col]).standard_normal((rows, cols))


@task(io="power", io_exponent=1.5)
def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two blocks."""
    return a @ b


@task
def sum_blocks(parts: list[np.ndarray]) -> np.ndarray:
    """Sum of the partial products of one block of C."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


@task
def assemble(grid: list[list[np.ndarray]]) -> np.ndarray:
    """C from its grid of blocks."""
    return np.block(grid)


def gemm(*, n: int = 256, blocks: int = 4, seed: int = 0) -> ExampleWorkflow:
    """C = A @ B with A, B n x n, cut into blocks x blocks tiles.

    Raises
    ------
    ValueError
        If n < 1, blocks < 1, blocks > n or seed < 0.
    """
    n = require_int("gemm", "n", n, 1)
    blocks = require_int("gemm", "blocks", blocks, 1)
    seed = require_int("gemm", "seed", seed, 0)
    if blocks > n:
        raise ValueError(f"gemm: blocks={blocks} must be <= n={n}")
    bounds = split_bounds(n, blocks)
    sizes = [hi - lo for lo, hi in bounds]
    book = CostBook()

    def source(matrix: int, i: int, j: int):
        elems = sizes[i] * sizes[j]
        ref = generate_block(seed, matrix, i, j, sizes[i], sizes[j])
        return book.note(
            ref,
            output_bytes=elems * FLOAT_BYTES,
            flops=20 * elems,
            bytes_touched=elems * FLOAT_BYTES,
        )

    a = [[source(0, i, k) for k in range(blocks)] for i in range(blocks)]
    b = [[source(1, k, j) for j in range(blocks)] for k in range(blocks)]
    grid = []
    for i in range(blocks):
        row = []
        for j in range(blocks):
            out_bytes = sizes[i] * sizes[j] * FLOAT_BYTES
            parts = []
            for k in range(blocks):
                touched = (sizes[i] * sizes[k] + sizes[k] * sizes[j]) * FLOAT_BYTES + out_bytes
                ref = multiply(a[i][k], b[k][j])
                flops = 2 * sizes[i] * sizes[j] * sizes[k]
                parts.append(
                    book.note(ref, output_bytes=out_bytes, flops=flops, bytes_touched=touched)
                )
            total = sum_blocks(parts)
            flops = blocks * sizes[i] * sizes[j]
            row.append(
                book.note(
                    total,
                    output_bytes=out_bytes,
                    flops=flops,
                    bytes_touched=(blocks + 1) * out_bytes,
                )
            )
        grid.append(row)
    c = book.note(
        assemble(grid), output_bytes=n * n * FLOAT_BYTES, bytes_touched=2 * n * n * FLOAT_BYTES
    )

    def check(product: np.ndarray) -> None:
        full_a = np.block(
            [
                [generate_block.fn(seed, 0, i, k, sizes[i], sizes[k]) for k in range(blocks)]
                for i in range(blocks)
            ]
        )
        full_b = np.block(
            [
                [generate_block.fn(seed, 1, k, j, sizes[k], sizes[j]) for j in range(blocks)]
                for k in range(blocks)
            ]
        )
        assert_close("C = A @ B", product, full_a @ full_b)

    return make_example("gemm", {"n": n, "blocks": blocks, "seed": seed}, c, book, check)
