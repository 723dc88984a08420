"""`python -m kaizen.local` is the `kaizen` command."""

from kaizen.local.cli import main

raise SystemExit(main())
