"""``python -m teachkit ...``: the same as the ``teachkit`` command (handy where its script is not on PATH)."""

import sys

from teachkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
