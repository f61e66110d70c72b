"""The bundled sample pictures: content photos shipped inside scikit-image (never downloaded) and style
images painted by the small numpy functions at the end.  :func:`resolve_image` turns a sample name or
anything :func:`teachkit.images.load_image` accepts into an image."""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image

from .fileio import check_int
from .images import ImageError, load_image, resize_long_side

__all__ = ["CONTENT_SAMPLES", "STYLE_SAMPLES", "DEFAULT_CONTENT", "DEFAULT_STYLE", "list_samples", "sample_content",
           "sample_style", "sample_image", "resolve_image", "package_data_dir"]

_fail = ImageError.about


def package_data_dir(package: str) -> pathlib.Path:
    """The data folder inside an installed package (``skimage`` or ``matplotlib``); FileNotFoundError if none."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"the package {package!r} is not installed (its sample photos are needed)")
    root = pathlib.Path(spec.origin).parent
    return {"skimage": root / "data", "matplotlib": root / "mpl-data" / "sample_data"}.get(package, root)


_CONTENT_FILES = {
    "chelsea": "chelsea.png",  # Chelsea the cat: fur, whiskers, strong edges
    "astronaut": "astronaut.png",  # Eileen Collins, NASA portrait
    "coffee": "coffee.png",  # a cup of coffee on a saucer
    "rocket": "rocket.jpg",  # a rocket on the launch pad
    "motorcycle": "motorcycle_left.png",  # a motorcycle (stereo pair, left)
    "camera": "camera.png",  # the classic grayscale cameraman
}

CONTENT_SAMPLES: tuple[str, ...] = tuple(_CONTENT_FILES)
STYLE_SAMPLES: tuple[str, ...] = ("stained_glass", "swirls", "rings", "waves")
DEFAULT_CONTENT = "chelsea"
DEFAULT_STYLE = "stained_glass"


def list_samples() -> dict[str, list[str]]:
    """The names of the bundled samples: ``{'content': [...], 'style': [...]}``."""
    return {"content": list(CONTENT_SAMPLES), "style": list(STYLE_SAMPLES)}


def _unknown_sample(name) -> ImageError:
    return _fail(str(name), "image.unknown_sample", verb="find", content=", ".join(CONTENT_SAMPLES),
                 style=", ".join(STYLE_SAMPLES))


def sample_content(name: str = DEFAULT_CONTENT, size: int | None = None) -> Image.Image:
    """One of the bundled photos as an RGB image; ``size`` scales the long side."""
    if name not in _CONTENT_FILES:
        raise _unknown_sample(name)
    img = _read_content_file(name).copy()  # a copy: callers may draw on it
    return resize_long_side(img, size) if size is not None else img


@functools.lru_cache(maxsize=None)
def _read_content_file(name: str) -> Image.Image:
    path = package_data_dir("skimage") / _CONTENT_FILES[name]
    if not path.is_file():
        raise _fail(str(path), "image.sample_missing", name=name)
    return load_image(path, name=f"sample:{name}")


def sample_style(name: str = DEFAULT_STYLE, size=512) -> Image.Image:
    """A generated style image (RGB): ``size`` is the square's side (default 512) or ``(width, height)``;
    the same name and size always give the same pixels."""
    if name not in _STYLE_PAINTERS:
        raise _unknown_sample(name)
    size = 512 if size is None else size
    if isinstance(size, (tuple, list)) and len(size) == 2:
        width, height = size
    else:
        width = height = size
    width, height = check_int("style width", width, 1), check_int("style height", height, 1)
    return _painted_style(name, width, height).copy()


def sample_image(name: str, size=None) -> Image.Image:
    """A content or style sample by name (style samples default to 512 px)."""
    if name in _CONTENT_FILES:
        return sample_content(name, size)
    if name in _STYLE_PAINTERS:
        return sample_style(name, size)
    raise _unknown_sample(name)


def resolve_image(spec, size: int | None = None, *, name: str | None = None) -> Image.Image:
    """A sample name (``'chelsea'``, ``'sample:rings'``), a path or any other image source as an RGB image.
    An existing file wins over a sample of the same name unless ``'sample:'`` is given.  ``size``: a
    style sample's side, else the long side; ``name``: what errors call a source that is not a path."""
    if isinstance(spec, str) and spec.startswith("sample:"):
        return sample_image(spec[len("sample:"):].strip(), size)
    if isinstance(spec, (str, os.PathLike)):
        path = pathlib.Path(spec).expanduser()
        if isinstance(spec, str) and spec in (CONTENT_SAMPLES + STYLE_SAMPLES):
            if not path.is_file():
                return sample_image(spec, size)
        if not path.exists():
            raise _fail(os.fsdecode(spec), "image.not_file_nor_sample", content=", ".join(CONTENT_SAMPLES),
                        style=", ".join(STYLE_SAMPLES))
    return load_image(spec, size=size, name=None if isinstance(spec, (str, os.PathLike)) else name)


# The style painters: each takes (width, height) and returns an H x W x 3 float array in [0, 1]; positions
# are in units of the long side (the same picture at every resolution) and seeds are fixed.


@functools.lru_cache(maxsize=8)
def _painted_style(name: str, width: int, height: int) -> Image.Image:
    rgb = _STYLE_PAINTERS[name](width, height)
    pixels = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel-centre coordinates (x, y) in units of the long side, and one pixel's size."""
    scale = 1.0 / max(width, height)
    x = (np.arange(width, dtype=np.float32) + 0.5) * scale
    y = (np.arange(height, dtype=np.float32) + 0.5) * scale
    return x[None, :], y[:, None], scale


def _hsv(h, s, v) -> np.ndarray:
    """HSV -> RGB (all in [0, 1]) by matplotlib, for h, s, v given apart (broadcast)."""
    return hsv_to_rgb(np.stack(np.broadcast_arrays(h, s, v), axis=-1))


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Soft random blotches: a small random grid blown up with a smooth filter."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, "F").resize((max(width, height),) * 2, Image.BICUBIC)
    return np.asarray(img)[:height, :width]


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _paint_stained_glass(width: int, height: int) -> np.ndarray:
    """A Voronoi mosaic: glowing pieces of coloured glass (the cells of points on a jittered grid, so a
    pixel's nearest point is in its grid square's 3x3 neighbourhood) held by dark lead lines."""
    rng = np.random.default_rng(1887)
    n = 9  # grid squares across the long side
    x, y, px = _grid(width, height)

    # One point per grid square, with a one-square border all around.
    rows = cols = n + 3
    points = (np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), axis=-1) - 1
              + rng.uniform(0.2, 0.8, (rows, cols, 2))) / n  # [row, col, (x, y)]

    # Classic cathedral colours: ruby, cobalt, emerald, amber, violet, turquoise.
    hues = np.array([0.99, 0.62, 0.36, 0.11, 0.78, 0.52, 0.04, 0.66])
    hue = hues[rng.integers(0, len(hues), (rows, cols))] + rng.normal(0, 0.015, (rows, cols))
    sat = rng.uniform(0.75, 1.0, (rows, cols))
    val = rng.uniform(0.65, 1.0, (rows, cols))
    colours = _hsv(hue % 1.0, sat, val)

    point_x = points[..., 0].ravel().astype(np.float32)
    point_y = points[..., 1].ravel().astype(np.float32)
    colours = colours.reshape(-1, 3)

    # Grid square of every pixel (+1 for the border), and its point's number.
    home = (np.floor(y * n).astype(np.int32) + 1) * cols + (np.floor(x * n).astype(np.int32) + 1)
    best = np.full((height, width), np.inf, np.float32)  # squared distance to nearest
    second = np.full((height, width), np.inf, np.float32)  # ... and to second nearest
    best_i = np.zeros((height, width), np.int32)  # number of the nearest point
    second_i = np.zeros((height, width), np.int32)
    for offset in (-cols - 1, -cols, -cols + 1, -1, 0, 1, cols - 1, cols, cols + 1):
        i = home + offset  # the point of a neighbouring grid square
        d = (x - point_x[i]) ** 2 + (y - point_y[i]) ** 2
        closer = d < best
        second_i = np.where(closer, best_i, np.where(d < second, i, second_i))
        second = np.where(closer, best, np.minimum(second, d))
        best_i = np.where(closer, i, best_i)
        best = np.minimum(best, d)

    # Distance from the pixel to the border between its two nearest points.
    gap = np.hypot(point_x[best_i] - point_x[second_i], point_y[best_i] - point_y[second_i])
    to_border = (second - best) / (2 * np.maximum(gap, 1e-6))

    glass = colours[best_i]
    # Glass glows brighter in the middle of each piece, and is a little uneven.
    glow = 0.7 + 0.45 * _smoothstep(0.0, 0.05, to_border)
    mottle = 0.85 + 0.3 * _smooth_noise(rng, width, height, 40)
    grain = 1.0 + 0.06 * rng.standard_normal((height, width)).astype(np.float32)
    glass = glass * (glow * mottle * grain)[..., None]

    lead_half_width = 0.0045
    lead = 1.0 - np.clip((to_border - lead_half_width) / px + 0.5, 0.0, 1.0)
    lead_colour = np.array([0.08, 0.07, 0.07], np.float32)
    return glass * (1 - lead[..., None]) + lead_colour * lead[..., None]


def _paint_swirls(width: int, height: int) -> np.ndarray:
    """Swirling brush strokes: line integral convolution smears random noise along the flow of a few
    vortices (streaks like brush strokes), coloured in bands along the streamlines."""
    rng = np.random.default_rng(1889)
    # Work at half resolution (strokes a couple of pixels wide, a quarter of the pixels to smear).
    w, h = max(8, (width + 1) // 2), max(8, (height + 1) // 2)
    x, y, px = _grid(w, h)

    vortices = [(*rng.uniform(0.05, 0.95, 2), rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2))
                for _ in range(6)]
    core = 0.03
    vx = np.full((h, w), 0.4, np.float32)  # a gentle wind to the right
    vy = np.zeros((h, w), np.float32)
    stream = 0.4 * np.broadcast_to(y, (h, w)).astype(np.float32)  # its stream function
    for cx, cy, strength in vortices:
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy + core * core
        vx = vx - strength * 0.05 * dy / r2
        vy = vy + strength * 0.05 * dx / r2
        stream = stream - strength * 0.025 * np.log(r2)
    speed = np.hypot(vx, vy) + 1e-6
    ux, uy = vx / speed, vy / speed  # unit directions, in pixels per step

    noise = rng.random((h, w)).astype(np.float32)
    steps = max(4, round(0.035 / px))  # stroke half-length: 3.5% of the picture
    total = noise.copy()
    for direction in (1.0, -1.0):
        col = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)).copy()
        row = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).copy()
        for _ in range(steps):
            ic = np.clip(np.rint(col), 0, w - 1).astype(np.intp)
            ir = np.clip(np.rint(row), 0, h - 1).astype(np.intp)
            col += direction * ux[ir, ic]
            row += direction * uy[ir, ic]
            ic = np.clip(np.rint(col), 0, w - 1).astype(np.intp)
            ir = np.clip(np.rint(row), 0, h - 1).astype(np.intp)
            total += noise[ir, ic]
    streaks = total / (2 * steps + 1)
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)  # contrast stretch

    # A cyclic palette in the spirit of a starry night: blues, teal, gold, cream.
    palette = np.array([[0.06, 0.12, 0.42], [0.10, 0.35, 0.75], [0.15, 0.62, 0.70],
                        [0.95, 0.80, 0.20], [0.98, 0.55, 0.10], [0.55, 0.20, 0.55]], np.float32)
    t = (stream * 6.0) % 1.0 * len(palette)
    i0 = np.floor(t).astype(np.intp) % len(palette)
    frac = _smoothstep(0.6, 1.0, t - np.floor(t))[..., None]  # mostly flat bands
    colour = palette[i0] * (1 - frac) + palette[(i0 + 1) % len(palette)] * frac
    rgb = colour * np.clip(0.8 + 0.28 * streaks, 0.2, 1.4)[..., None]

    img = Image.fromarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8), "RGB")
    return np.asarray(img.resize((width, height), Image.BICUBIC), np.float32) / 255.0


def _paint_rings(width: int, height: int) -> np.ndarray:
    """Overlapping discs of concentric coloured rings, in the manner of Kandinsky, painted largest first."""
    rng = np.random.default_rng(1913)
    x, y, px = _grid(width, height)
    xf = np.broadcast_to(x, (height, width))
    yf = np.broadcast_to(y, (height, width))

    # Background: wide rings around a centre outside the picture.
    d = np.hypot(xf + 0.3, yf - 1.2)
    rgb = _hsv(0.6 + 0.04 * np.sin(d * 40.0), 0.6, 0.25 + 0.08 * np.sin(d * 40.0))

    # One disc per square of a 4x4 grid (placed at random inside it), so that
    # the discs spread over the whole picture, plus a few small ones anywhere.
    discs = [((i + rng.uniform(0.1, 0.9)) / 4, (j + rng.uniform(0.1, 0.9)) / 4,
              rng.uniform(0.1, 0.24)) for i in range(4) for j in range(4)]
    discs += [(rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.1)) for _ in range(5)]
    for cx, cy, radius in sorted(discs, key=lambda disc: -disc[2]):
        n_rings = int(rng.integers(3, 8))
        ring_width = radius / n_rings
        base_hue = rng.random()
        ring_colours = _hsv(
            (base_hue + rng.choice([0.0, 0.5, 0.33, 0.16], n_rings)
             + rng.normal(0, 0.03, n_rings)) % 1.0,
            rng.uniform(0.75, 1.0, n_rings),
            rng.uniform(0.75, 1.0, n_rings),
        )
        # Only touch the pixels in the disc's bounding box.
        c0, c1 = int(max(0, (cx - radius) / px - 2)), int(min(width, (cx + radius) / px + 2))
        r0, r1 = int(max(0, (cy - radius) / px - 2)), int(min(height, (cy + radius) / px + 2))
        if c0 >= c1 or r0 >= r1:
            continue
        dist = np.hypot(xf[r0:r1, c0:c1] - cx, yf[r0:r1, c0:c1] - cy)
        ring = np.minimum((dist / ring_width).astype(np.intp), n_rings - 1)
        paint = ring_colours[ring]
        # A thin dark line between rings, and a soft shadow at the disc's edge.
        from_line = np.abs(dist / ring_width - np.rint(dist / ring_width)) * ring_width
        line = 1.0 - np.clip((from_line - 0.002) / px + 0.5, 0.0, 1.0)
        line[dist < 0.5 * ring_width] = 0.0  # no dot in the very centre
        paint = paint * (1.0 - 0.85 * line[..., None])
        cover = np.clip((radius - dist) / px + 0.5, 0.0, 1.0)[..., None]
        patch = rgb[r0:r1, c0:c1]
        rgb[r0:r1, c0:c1] = patch * (1 - cover) + paint * cover

    grain = 1.0 + 0.05 * _smooth_noise(rng, width, height, 160) - 0.025
    return rgb * grain[..., None]


def _paint_waves(width: int, height: int) -> np.ndarray:
    """Stylised sea waves: wavy bands of blue and foam, outlined like a woodcut."""
    rng = np.random.default_rng(1831)
    x, y, px = _grid(width, height)
    # Bend horizontal stripes with a sum of a few sine waves.
    phase = y * 14.0
    for _ in range(5):
        fx, fy = rng.uniform(1.0, 6.0), rng.uniform(-3.0, 3.0)
        phase = phase + rng.uniform(0.3, 0.9) * np.sin(
            2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
    band = np.floor(phase).astype(np.intp)
    within = phase - np.floor(phase)

    palette = np.array([[0.03, 0.09, 0.30], [0.07, 0.25, 0.55], [0.16, 0.45, 0.70],
                        [0.55, 0.75, 0.85], [0.95, 0.93, 0.84], [0.10, 0.35, 0.50]], np.float32)
    colour = palette[band % len(palette)]
    # Each band darkens towards its lower edge, like the shading of a wood print.
    shade = 0.65 + 0.45 * (1.0 - within)
    rgb = colour * shade[..., None]
    # Dark outline at the top of each band (the line's width is in pixels).
    slope = np.hypot(*np.gradient(phase, axis=(1, 0))) + 1e-6  # phase change per pixel
    line_px = np.minimum(within, 1.0 - within) / slope
    outline = 1.0 - np.clip(line_px - 1.0, 0.0, 1.0)
    return rgb * (1.0 - 0.85 * outline[..., None])


_STYLE_PAINTERS = {"stained_glass": _paint_stained_glass, "swirls": _paint_swirls, "rings": _paint_rings,
                   "waves": _paint_waves}
