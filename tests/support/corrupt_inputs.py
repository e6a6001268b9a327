"""Corruptions of valid input files, and the CLI run under a time limit, for bad-input tests.

Each strategy takes a valid input (a parsed JSON or TOML document, a file's bytes, a folder)
and draws one damaged version of it: truncated, bytes flipped, a value of the wrong type, a
huge or non-finite number, a key deleted. `run_cli` runs ``faasdag`` in this process (fast) or
in a subprocess (faithful: the real entry point, its stderr, its exit status), both with a time
limit so that a hang fails the test; `assert_clean_exit` states what every bad input must get.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

HUGE_NUMBERS = (1e308, -1e308, 1e30, 10**30, 2**63, 2**53 + 1, 1e16, 1e10, -1)
NON_FINITE = (math.nan, math.inf, -math.inf)
WRONG_TYPES = ("x", "", [], {}, True, 1.5, [1, "a"], {"a": 1})
#: Longest a command may take on a tiny input before it counts as a hang, s.
TIME_LIMIT_S = 60.0


@dataclass(frozen=True)
class Damaged:
    """A damaged file's bytes and what was done to them (all hypothesis reports of it)."""

    what: str
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"<{self.what}>"


# -- bytes ------------------------------------------------------------------------------------


@st.composite
def damaged_bytes(draw: Any, data: bytes) -> Damaged:
    """`data` truncated at a drawn length, or with one to eight bytes changed."""
    if draw(st.booleans()):
        cut = draw(st.integers(0, max(0, len(data) - 1)))
        return Damaged(f"truncated to {cut} of {len(data)} bytes", data[:cut])
    out = bytearray(data)
    changes = []
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(out) - 1))
        mask = draw(st.integers(1, 255))
        out[index] ^= mask
        changes.append(f"{index}^{mask:#04x}")
    return Damaged(f"bytes changed: {', '.join(changes)}", bytes(out))


# -- documents (JSON, TOML) -------------------------------------------------------------------


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (dict keys and list indices) to a node below `node`."""
    children: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    paths = []
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(_paths(child, (*prefix, key)))
    return paths


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@st.composite
def damaged_document(
    draw: Any, doc: dict, *, wrong_types: Sequence[Any] = WRONG_TYPES
) -> tuple[str, dict]:
    """A copy of `doc` with one value replaced (wrong type, huge or non-finite number) or one
    key or list item deleted, and what was done; numbers are preferred for numeric damage."""
    doc = copy.deepcopy(doc)
    paths = _paths(doc)
    kind = draw(st.sampled_from(["wrong_type", "huge", "non_finite", "delete"]))
    if kind in ("huge", "non_finite"):
        numeric = [p for p in paths if _is_number(_get(doc, p))]
        path = draw(st.sampled_from(numeric or paths))
        value = draw(st.sampled_from(HUGE_NUMBERS if kind == "huge" else NON_FINITE))
    else:
        path = draw(st.sampled_from(paths))
        value = draw(st.sampled_from(list(wrong_types)))
    parent = _get(doc, path[:-1])
    if kind == "delete":
        del parent[path[-1]]
        return f"deleted {list(path)}", doc
    parent[path[-1]] = value
    return f"{list(path)} := {value!r}", doc


def toml_text(doc: dict) -> str:
    """`doc` as TOML: top-level keys first, then one ``[table]`` per nested dict."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"no TOML for {v!r}")

    lines = [f"{json.dumps(k)} = {value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for key, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


@st.composite
def damaged_json_file(draw: Any, doc: dict) -> Damaged:
    """A damaged JSON file made from `doc`: its bytes, or one value (see `damaged_document`)."""
    if draw(st.booleans()):
        return draw(damaged_bytes(json.dumps(doc, indent=1).encode()))
    what, damaged = draw(damaged_document(doc, wrong_types=(*WRONG_TYPES, None)))
    return Damaged(what, json.dumps(damaged, indent=1).encode())


@st.composite
def damaged_toml_file(draw: Any, doc: dict) -> Damaged:
    """A damaged TOML file made from `doc` (TOML has no null: no None values)."""
    if draw(st.booleans()):
        return draw(damaged_bytes(toml_text(doc).encode()))
    what, damaged = draw(damaged_document(doc))
    return Damaged(what, toml_text(damaged).encode())


# -- Parquet tables ---------------------------------------------------------------------------


@st.composite
def damaged_parquet(draw: Any, file: Path) -> Damaged:
    """The bytes of a damaged copy of the Parquet `file`: its bytes damaged, or one column's
    values replaced (huge, non-finite, negative, wrong type or missing), metadata kept."""
    if draw(st.booleans()):
        return draw(damaged_bytes(file.read_bytes()))
    table = pq.read_table(file)
    name = draw(st.sampled_from(table.column_names))
    n_rows = table.num_rows
    kind = draw(st.sampled_from(["huge", "non_finite", "negative", "wrong_type", "missing"]))
    if kind == "huge":
        values: Any = pa.array([draw(st.sampled_from([1e308, 1e30, 1e16, 1e10]))] * n_rows)
    elif kind == "non_finite":
        values = pa.array([draw(st.sampled_from(NON_FINITE))] * n_rows)
    elif kind == "negative":
        values = pa.array([-1.0] * n_rows)
    elif kind == "wrong_type":
        values = pa.array(["x"] * n_rows)
    else:
        values = pa.nulls(n_rows, type=table.schema.field(name).type)
    index = table.column_names.index(name)
    damaged = table.set_column(index, name, values)
    damaged = damaged.replace_schema_metadata(table.schema.metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(damaged, sink)
    return Damaged(f"column {name!r} := {values[0]!r} ({kind})", sink.getvalue().to_pybytes())


# -- running the CLI --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one ``faasdag`` command did: exit status, stdout, stderr."""

    argv: list[str]
    status: int
    out: str
    err: str


def run_cli(argv: Sequence[str], *, subprocess_: bool = False) -> Outcome:
    """Run ``faasdag ARGV`` in this process (a thread) or a subprocess, within `TIME_LIMIT_S`.

    Raises
    ------
    AssertionError
        If it runs past the limit (a hang), or an exception escapes `main` (a traceback).
    """
    argv = [str(a) for a in argv]
    if subprocess_:
        repo = Path(__file__).resolve().parents[2]  # tests/support/ -> the checkout
        env = {**os.environ, "PYTHONPATH": str(repo)}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "experiments.cli", *argv],
                capture_output=True,
                text=True,
                timeout=TIME_LIMIT_S,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"faasdag {' '.join(argv)} hangs (> {TIME_LIMIT_S} s)") from None
        return Outcome(argv, done.returncode, done.stdout, done.stderr)

    from experiments.cli import main

    result: dict[str, Any] = {}
    out, err = io.StringIO(), io.StringIO()

    def target() -> None:
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                result["status"] = main(argv)
        except SystemExit as exit_:
            result["status"] = exit_.code
        except BaseException:  # noqa: BLE001 - reported as the test's failure
            result["traceback"] = traceback.format_exc()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(TIME_LIMIT_S)
    if thread.is_alive():
        raise AssertionError(f"faasdag {' '.join(argv)} hangs (> {TIME_LIMIT_S} s)")
    if "traceback" in result:
        raise AssertionError(f"faasdag {' '.join(argv)} raised:\n{result['traceback']}")
    return Outcome(argv, result["status"], out.getvalue(), err.getvalue())


def assert_clean_exit(outcome: Outcome) -> None:
    """Exit 0, or exit 2 with exactly one line ``faasdag: error: ...`` on stderr; never a
    traceback."""
    command = f"faasdag {' '.join(outcome.argv)}"
    assert "Traceback" not in outcome.out + outcome.err, f"{command}:\n{outcome.err}"
    assert outcome.status in (0, 2), f"{command}: exit {outcome.status}\n{outcome.err}"
    if outcome.status == 2:
        lines = [line for line in outcome.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"{command}: {len(lines)} lines on stderr:\n{outcome.err}"
        assert lines[0].startswith("faasdag: error: "), f"{command}: {lines[0]}"


def write_bytes(path: Path, data: bytes | Damaged) -> Path:
    """Write `data` to `path` (its folder created) and return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.data if isinstance(data, Damaged) else data)
    return path
