"""`python -m hzexp` runs the `hzexp` command."""

from hzexp.cli import main

raise SystemExit(main())
