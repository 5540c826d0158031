"""`python -m feeds`: the same as the `feeds` console script."""

from feeds.cli import main

raise SystemExit(main())
