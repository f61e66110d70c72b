"""What an uploaded image costs to decode (teachkit.images): a script, not a test.

For each PIL mode a small file (a flat picture: a few KB to ~100 KB on disk; PNG, or TIFF for the
32-bit modes ``I`` and ``F`` that PNG cannot hold; ``I;16`` is a 16-bit grey PNG) of ``--megapixels``
million pixels is decoded by ``load_image(data, size=--size)`` in a fresh child
process; the figure is the child's peak resident memory (``ru_maxrss``) above what it held just
before decoding.  Beside it, the time of ``check_upload`` (the header alone) on the same bytes.
This is what a visitor's upload costs the server before the pixel limit refuses it, so it is the
number to divide a memory budget by when choosing the upload pixel limit.

Run from the repository root::

    .venv/bin/python benchmarks/upload_decode.py
    .venv/bin/python benchmarks/upload_decode.py --megapixels 12 --modes RGB,RGBA
    .venv/bin/python benchmarks/upload_decode.py --megapixels 12 --size 1024 --modes "LA,I;16,I,F"
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from machine import cpu_name  # benchmarks/machine.py: the one home of "which CPU is this"

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[3])
import teachkit.images as images
data, size = open(sys.argv[1], "rb").read(), int(sys.argv[2])
header_ms = float("nan")
if hasattr(images, "check_upload"):  # an older checkout has none
    images.check_upload(data, max_pixels=None)  # the first call registers PIL's plugins
    t0 = time.perf_counter()
    images.check_upload(data, max_pixels=None)
    header_ms = (time.perf_counter() - t0) * 1000
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
images.load_image(data, size=size, max_pixels=None)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(data), (peak - base) / 1024, seconds, header_ms)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=float, default=25.0, help="pixels of the test image, in millions (default 25)")
    ap.add_argument("--size", type=int, default=768, help="long side load_image scales to (default 768)")
    ap.add_argument("--modes", default="RGB,RGBA,L,P,LA,I;16,I,F", help="PIL modes, comma-separated")
    ap.add_argument("--package-root", default=str(ROOT),
                    help="folder holding the teachkit package to measure (another checkout, to compare)")
    args = ap.parse_args()
    side = int((args.megapixels * 1e6) ** 0.5)
    print(f"CPU: {cpu_name()}; Python {platform.python_version()}")
    print(f"teachkit from {args.package_root}")
    print(f"load_image(bytes, size={args.size}) of a {side}x{side} PNG ({side * side / 1e6:.1f} MP), fresh process each")
    print(f"{'mode':<5} {'file KB':>8} {'peak MB':>8} {'MB/MP':>6} {'bytes/px':>8} {'decode s':>8} {'header ms':>9}")
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            ext = "tif" if mode in ("I", "F") else "png"  # PNG holds no 32-bit grey
            path = Path(tmp) / f"{mode.replace(';', '_')}.{ext}"  # made here: the child's memory holds only the decode
            Image.new(mode, (side, side)).save(path, **({"compression": "tiff_deflate"} if ext == "tif" else {}))
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.size), args.package_root],
                                 capture_output=True, text=True, check=True).stdout.split()
        size_b, peak_mb, seconds, header_ms = int(out[0]), float(out[1]), float(out[2]), float(out[3])
        mp = side * side / 1e6
        print(f"{mode:<5} {size_b / 1024:8.1f} {peak_mb:8.0f} {peak_mb / mp:6.1f} {peak_mb * 2**20 / (mp * 1e6):8.1f} "
              f"{seconds:8.2f} {header_ms:9.2f}")


if __name__ == "__main__":
    main()
