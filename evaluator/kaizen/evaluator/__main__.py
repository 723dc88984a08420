"""Entry point: `python -m kaizen.evaluator evaluate | analyze | validate` (see `cli.py`)."""

import sys

from kaizen.evaluator.cli import main

if __name__ == "__main__":
    sys.exit(main())
