"""``python -m experiments.fidelity record``: regenerate the shipped trace sets and the preset
they were recorded with (`experiments.fidelity.cli._record_main`)."""

from experiments.errors import UsageError
from experiments.fidelity.cli import _record_main

if __name__ == "__main__":
    import sys

    try:
        sys.exit(_record_main())
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
