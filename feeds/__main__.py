"""`python -m feeds`: the same as the `feeds` console script."""

from feeds.cli import main

if __name__ == "__main__":  # run, not imported
    raise SystemExit(main())
