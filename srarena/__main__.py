"""``python -m srarena ...`` is the ``srarena`` console script."""

from srarena.harness.cli import main

if __name__ == "__main__":
    main()
