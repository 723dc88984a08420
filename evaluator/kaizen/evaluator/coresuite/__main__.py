"""`python -m kaizen.evaluator.coresuite [TARGET_DIR]` regenerates the core suite."""

import sys

from kaizen.evaluator.coresuite.assemble import main

raise SystemExit(main(sys.argv))
