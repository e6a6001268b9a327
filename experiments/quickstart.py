"""`faasdag quickstart`: a first look at the example workflows, one summary block each."""

from __future__ import annotations

from experiments.cli import UsageError


def quickstart_text() -> str:
    """One block per example workflow (default parameters): its spec, then ``key: value`` lines.

    Raises
    ------
    UsageError
        If the example workflows are unavailable or one of them fails to build.
    """
    try:
        from dag.examples import EXAMPLES, build_example
    except ImportError as error:
        raise UsageError(f"example workflows are unavailable: {error}") from None
    blocks = []
    for name in EXAMPLES:
        try:
            example = build_example(name)
        except ValueError as error:
            raise UsageError(f"example workflow {name!r}: {error}") from None
        title = getattr(example, "spec", None) or name
        lines = [f"== {title}"]
        lines += [f"{key}: {value}" for key, value in example.summary().items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def run_quickstart() -> str:
    """The quickstart text (see `quickstart_text`); the CLI prints it."""
    return quickstart_text()
