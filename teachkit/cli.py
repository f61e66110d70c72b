"""The ``teachkit`` command: ``teachkit transfer | layers | patches | gram | reconstruct``.

Each sub-command has its own section below: ``add_<name>_parser`` declares its options and
``cmd_<name>`` runs it.  Errors a user can fix (a bad image, an unknown layer, a missing weight file)
are printed on stderr as one line, with exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """A problem with the user's input, reported as one line with exit code 2."""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


# ---- teachkit layers ---------------------------------------------------------------------------


def add_layers_parser(sub) -> None:
    p = sub.add_parser("layers", help="table of a backbone's layers: channels, stride, receptive field")
    p.add_argument("--backbone", default="vgg19")
    p.set_defaults(func=cmd_layers)


def cmd_layers(args) -> int:
    from .features import load_backbone
    from .receptive_field import format_layer_table, layer_table

    net = load_backbone(args.backbone, device="cpu")
    print(f"{net.name}: {net.description}")
    print(format_layer_table(layer_table(net.body, net.channels)))
    return 0


# ---- teachkit transfer -------------------------------------------------------------------------


# ---- teachkit patches --------------------------------------------------------------------------


# ---- teachkit gram / reconstruct ---------------------------------------------------------------


# ---- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teachkit", description="See what convolutional networks see, and how style transfer works."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, add in list(globals().items()):
        if name.startswith("add_") and name.endswith("_parser"):
            add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .features import BackboneError
    from .images import ImageError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("teachkit: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ImageError, BackboneError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"teachkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
