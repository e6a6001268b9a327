"""The analysis notebooks execute top to bottom on small inputs, with no error."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _execute(name: str, params: dict, tmp_path: Path) -> nbformat.NotebookNode:
    """Run notebook `name` with `params` set after its parameters cell; return it executed."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = next(
        i for i, c in enumerate(book.cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{key} = {value!r}" for key, value in params.items())
    book.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    client = nbclient.NotebookClient(
        book,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return book


def _errors(book: nbformat.NotebookNode) -> list[str]:
    return [
        out.get("ename", "")
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def _has_image(book: nbformat.NotebookNode) -> bool:
    return any(
        "image/png" in out.get("data", {})
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def test_01_compare_planners(tmp_path):
    """01 runs a small experiment when its results folder is empty, then tables and plots it."""
    book = _execute(
        "01_compare_planners.ipynb",
        {
            "RESULTS": str(tmp_path / "results"),
            "WORKFLOWS": ["gemm:n=256,blocks=2"],
            "PLANNERS": ["uniform", "heft"],
            "SEEDS": 2,
        },
        tmp_path,
    )
    assert _errors(book) == [] and _has_image(book)
    assert (tmp_path / "results" / "runs.parquet").is_file()


def test_02_predictor_accuracy(tmp_path):
    """02 draws learning curves of both predictors on small synthetic traces."""
    book = _execute(
        "02_predictor_accuracy.ipynb",
        {"N_RUNS": 5, "TASKS_PER_RUN": 60, "TRAIN_SIZES": [1, 2, 3]},
        tmp_path,
    )
    assert _errors(book) == [] and _has_image(book)


def test_03_whatif(tmp_path):
    """03 records a stand-in trace set and simulates other planners on it."""
    book = _execute(
        "03_whatif.ipynb",
        {
            "WORKFLOW": "gemm:n=256,blocks=2",
            "N_RECORDED": 2,
            "PLANNERS": ["uniform", "dask"],
            "SEEDS": 2,
            "WORKDIR": str(tmp_path / "work"),
        },
        tmp_path,
    )
    assert _errors(book) == [] and _has_image(book)
    assert (tmp_path / "work" / "whatif" / "runs.parquet").is_file()
