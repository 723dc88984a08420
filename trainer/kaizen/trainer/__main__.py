"""`python -m kaizen.trainer`: see `kaizen.trainer.cli`."""

import sys

from kaizen.trainer.cli import main

sys.exit(main())
