"""Tree reduction: the sum of `n` generated arrays through a binary tree of adds.

Shape: `n` independent sources, then ``n - 1`` adds in ``ceil(log2 n)`` levels (an odd array
out at a level is carried up unchanged).
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
from dag.lang import TaskRef, task


@task(io="constant")
def generate(seed: int, index: int, length: int) -> np.ndarray:
    """Leaf array `index`: `length` standard normals from the stream ``[seed, index]``."""
    return np.random.default_rng([seed, index]).standard_normal(length)


@task
def add(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Elementwise sum of two arrays."""
    return left + right


def tree_reduction(*, n: int = 16, length: int = 10_000, seed: int = 0) -> ExampleWorkflow:
    """Sum of `n` arrays of `length` float64 via a binary tree of adds.

    Raises
    ------
    ValueError
        If n < 1, length < 1 or seed < 0.
    """
    n = require_int("tree_reduction", "n", n, 1)
    length = require_int("tree_reduction", "length", length, 1)
    seed = require_int("tree_reduction", "seed", seed, 0)
    nbytes = length * FLOAT_BYTES
    book = CostBook()
    level: list[TaskRef] = [
        book.note(
            generate(seed, i, length), output_bytes=nbytes, flops=20 * length, bytes_touched=nbytes
        )
        for i in range(n)
    ]
    while len(level) > 1:
        pairs = [
            book.note(
                add(level[i], level[i + 1]),
                output_bytes=nbytes,
                flops=length,
                bytes_touched=3 * nbytes,
            )
            for i in range(0, len(level) - 1, 2)
        ]
        level = pairs + level[len(pairs) * 2 :]

    def check(total: np.ndarray) -> None:
        expected = np.zeros(length)
        for i in range(n):
            expected += generate.fn(seed, i, length)
        assert_close("sum", total, expected)

    params = {"n": n, "length": length, "seed": seed}
    return make_example("tree_reduction", params, level[0], book, check)
