"""``python -m teachkit ...``: the same as the ``teachkit`` command (handy where its script is not on PATH)."""

from teachkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
