"""Text analysis: word counts over generated text chunks, then a fan-out of analyses.

Shape: one generator and one word-count map per chunk, a fan-in reduce of the counts, a
fan-out of three analyses (top-k words, vocabulary size, word-length histogram) and a fan-in
report. Words follow a Zipf law over a synthetic vocabulary.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from dag.examples.base import CostBook, ExampleWorkflow, assert_equal, make_example, require_int
from dag.lang import task

LETTERS = "etaoinshrdlucmfwypvbgkjqxz"


def word(rank: int) -> str:
    """The synthetic word of vocabulary rank `rank` (0 -> "e", 25 -> "z", 26 -> "ee", ...); distinct per rank."""
    letters = [LETTERS[rank % 26]]
    rank //= 26
    while rank:
        rank -= 1
        letters.append(LETTERS[rank % 26])
        rank //= 26
    return "".join(reversed(letters))


@task(io="constant")
def generate_text(seed: int, index: int, n_words: int, vocabulary: int) -> str:
    """Chunk `index`: `n_words` Zipf-distributed words from `vocabulary`, space-separated."""
    rng = np.random.default_rng([seed, index])
    weights = 1.0 / np.arange(1, vocabulary + 1)
    ranks = rng.choice(vocabulary, size=n_words, p=weights / weights.sum())
    return " ".join(word(int(r)) for r in ranks)


@task
def count_words(text: str) -> dict[str, int]:
    """Occurrences of each word of one chunk."""
    return dict(Counter(text.split()))


@task
def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    """Word counts over all chunks."""
    total: Counter[str] = Counter()
    for part in counts:
        total.update(part)
    return dict(total)


@task
def top_words(counts: dict[str, int], k: int) -> list[tuple[str, int]]:
    """The `k` most frequent words with counts; ties broken alphabetically."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]


@task(io="constant")
def vocabulary_size(counts: dict[str, int]) -> int:
    """Number of distinct words."""
    return len(counts)


@task
def length_histogram(counts: dict[str, int]) -> dict[int, int]:
    """Occurrences of words by word length."""
    histogram: dict[int, int] = {}
    for text, n in counts.items():
        histogram[len(text)] = histogram.get(len(text), 0) + n
    return dict(sorted(histogram.items()))


@task
def report(top: list[tuple[str, int]], vocabulary: int, histogram: dict[int, int]) -> dict:
    """All analyses in one record, with the total number of words."""
    return {
        "total_words": sum(histogram.values()),
        "vocabulary": vocabulary,
        "top": top,
        "length_histogram": histogram,
    }


def text_analysis(
    *, chunks: int = 8, words: int = 5000, vocabulary: int = 1000, k: int = 10, seed: int = 0
) -> ExampleWorkflow:
    """Word statistics of `chunks` generated chunks of `words` words each.

    Raises
    ------
    ValueError
        If chunks, words, vocabulary or k < 1, or seed < 0.
    """
    chunks = require_int("text_analysis", "chunks", chunks, 1)
    words = require_int("text_analysis", "words", words, 1)
    vocabulary = require_int("text_analysis", "vocabulary", vocabulary, 1)
    k = require_int("text_analysis", "k", k, 1)
    seed = require_int("text_analysis", "seed", seed, 0)
    # Modelled sizes: a word is about log26(vocabulary) letters; a count entry costs its word
    # plus 12 bytes serialised.
    word_bytes = max(1, math.ceil(math.log(vocabulary, 26))) if vocabulary > 1 else 1
    text_bytes = words * (word_bytes + 1)
    distinct = min(words, vocabulary)
    counts_bytes = distinct * (word_bytes + 12)
    all_counts_bytes = min(vocabulary, words * chunks) * (word_bytes + 12)
    book = CostBook()
    counts = []
    for index in range(chunks):
        text = book.note(
            generate_text(seed, index, words, vocabulary),
            output_bytes=text_bytes,
            flops=30 * words + 3 * vocabulary,
            bytes_touched=text_bytes + 8 * vocabulary,
        )
        counts.append(
            book.note(
                count_words(text),
                output_bytes=counts_bytes,
                flops=50 * words,
                bytes_touched=2 * text_bytes,
            )
        )
    total = book.note(
        merge_counts(counts),
        output_bytes=all_counts_bytes,
        flops=50 * distinct * chunks,
        bytes_touched=counts_bytes * chunks + all_counts_bytes,
    )
    sort_flops = 50 * distinct * max(1.0, math.log2(max(distinct, 2)))
    top = book.note(
        top_words(total, k),
        output_bytes=k * (word_bytes + 12),
        flops=sort_flops,
        bytes_touched=all_counts_bytes,
    )
    vocab = book.note(vocabulary_size(total), output_bytes=8)
    histogram = book.note(
        length_histogram(total),
        output_bytes=16 * (word_bytes + 1),
        flops=20 * distinct,
        bytes_touched=all_counts_bytes,
    )
    record = book.note(
        report(top, vocab, histogram),
        output_bytes=k * (word_bytes + 12) + 16 * (word_bytes + 1) + 64,
    )

    def check(result: dict) -> None:
        all_words = " ".join(
            generate_text.fn(seed, i, words, vocabulary) for i in range(chunks)
        ).split()
        counter = Counter(all_words)
        ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
        lengths = Counter(len(w) for w in all_words)
        assert isinstance(result, dict), f"report is a {type(result).__name__}, expected dict"
        assert_equal("total_words", result.get("total_words"), len(all_words))
        assert_equal("vocabulary", result.get("vocabulary"), len(counter))
        assert_equal("top", result.get("top"), ranked[:k])
        assert_equal(
            "length_histogram", result.get("length_histogram"), dict(sorted(lengths.items()))
        )

    params = {"chunks": chunks, "words": words, "vocabulary": vocabulary, "k": k, "seed": seed}
    return make_example("text_analysis", params, record, book, check)
