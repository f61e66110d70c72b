"""Benchmark of the top-patch scan (teachkit.patches): a script, not a test.

Three measurements, each a sub-command (``all`` runs the first three with quick sizes):

``overhead``  images per second scanning all 16 ReLU layers of VGG19 at 224 px, beside a bare
              forward pass through the same layers over the same images, in the same run.  The
              two alternate batch by batch (round robin) so that load from other processes
              hits both alike.  The bare pass is timed twice: with the plain (NCHW) input a
              hand-written loop would use, and with the channels-last input the scan itself
              feeds the network -- the overhead is measured against the latter: the median of
              the per-batch ratios (wall clock and CPU time), the ratio of the best batches,
              and, within each scan call, the time outside the network's forward pass.  Each
              scan call covers one batch, so it also pays the per-call setup (conservative).
``memory``    peak resident memory (VmHWM) while scanning N images (a repeated set: the sample
              crops over and over) at a given size; RSS is sampled after every batch to show
              it stays flat.  Run ``memory --images 10000`` in the background for the 10k figure.
``sample``    the ``sample`` atlas with the defaults (layers, image size), into a throw-away
              cache folder: the first visit (the index shipped in ``teachkit/data``, plus cutting
              9 patches of every layer from the images), then with ``--scan`` a full scan as a
              dataset without a shipped index needs, then a cache hit.
``sizes``     scan time per image at several image sizes (the first ``--images`` sample crops,
              the default layers), the sizes alternating round by round; medians and ratios.
``padding``   how much of the kept top patches is padding, per layer, for saved atlases
              (``--atlas FILE ...``), e.g. one scanned with ``min_inside=0`` beside the default.
``diversity`` for saved atlases of the ``sample`` dataset (``--atlas FILE ...``; default: the shipped
              index), per layer: the median number of distinct source photos among a unit's top 9, and
              the largest share of the layer's top patches that one photo gives, side by side.
``photos``    ``teachkit prepare --photos`` as a teacher runs it, timed: a folder of ``--images`` phone-sized
              JPEG photos (``--photo-size``, made from the sample photos), scanned at the default size and
              layers into a throw-away cache; seconds per 1,000 photos, with the time spent decoding them.
``processes`` one process against ``torchrun --nproc-per-node N`` (teachkit.distributed, gloo on
              the CPU) on the same folder of images (the first ``--images`` sample crops saved as
              PNG files): ``teachkit patches scan`` as a user runs it, the runs alternating round
              by round; wall time of the whole command and the scan time the atlas records (the
              slowest rank's), medians, and a check that the atlases are equal array by array.
              Threads: the one process gets ``--threads`` (default: every core), each of the N
              processes ``--threads / N`` -- the same cores either way, so on one machine the
              speed-up shows what splitting the work gains over torch's own threading.

Run from the repository root, e.g.::

    .venv/bin/python benchmarks/patches.py all
    .venv/bin/python benchmarks/patches.py memory --images 10000 --size 64
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from teachkit import patches as P  # noqa: E402
from teachkit.datasets import SAMPLE_SOURCES, Dataset, SampleDataset, TensorDataset, fit_square  # noqa: E402
from teachkit.features import load_backbone  # noqa: E402

from machine import cpu_line  # noqa: E402  (benchmarks/machine.py)


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc/self/status."""
    cur = peak = float("nan")
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cur, peak


class Repeated(Dataset):
    """The sample crops repeated up to ``n`` images (a cheap stand-in for a big dataset)."""

    def __init__(self, n: int):
        super().__init__()
        self.base = SampleDataset()
        self.n = n
        self.name = f"sample-x{n}"
        self.fingerprint = f"repeat-{n}-{self.base.fingerprint}"

    def __len__(self) -> int:
        return self.n

    def load(self, index: int):
        return self.base.load(index % len(self.base))

    def square(self, index: int, size: int):
        return self.base.square(index % len(self.base), size)


def relu_layers(net) -> list[str]:
    return [n for n in net.layer_names if n.startswith("relu")]


def bench_overhead(args) -> dict:
    net = load_backbone("vgg19", device="cpu")
    layers = relu_layers(net)
    assert len(layers) == 16
    size, bs, n = args.size, args.batch_size, args.images
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=g)
    # Quantise as the scan does (images go through 8-bit RGB), so both see the same pixels.
    images = (images * 255).round() / 255
    ds = TensorDataset(images, "random")
    batches = [images[s:s + bs] for s in range(0, n, bs)]
    cl_batches = [P._pils_to_batch([ds.square(i, size) for i in range(s, min(s + bs, n))],
                                   torch.device("cpu")) for s in range(0, n, bs)]
    wall: dict[str, list[float]] = {"bare_nchw": [], "bare_cl": [], "scan": []}
    cpu: dict[str, list[float]] = {"bare_nchw": [], "bare_cl": [], "scan": []}
    inside: list[float] = []  # share of each scan call spent outside the network's forward pass

    def bare(x):
        with torch.inference_mode():
            out = net.extract(x, layers)
        return out

    plain_extract = net.extract
    forward_time: list[float] = []

    def timed_extract(*a, **kw):
        t = time.perf_counter()
        out = plain_extract(*a, **kw)
        forward_time.append(time.perf_counter() - t)
        return out

    def timed(key, fn, count):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall[key].append((time.perf_counter() - t) / count)
        cpu[key].append((time.process_time() - c) / count)

    # Warm-up (oneDNN picks its kernels on the first calls).
    bare(batches[0][:2])
    bare(cl_batches[0][:2])
    P.scan(net, ds, layers, image_size=size, batch_size=bs, end=2)
    for r in range(args.rounds):
        for b in range(len(batches)):
            s, e = b * bs, min((b + 1) * bs, n)
            timed("bare_nchw", lambda: bare(batches[b]), e - s)
            timed("bare_cl", lambda: bare(cl_batches[b]), e - s)
            net.extract = timed_extract
            try:
                timed("scan", lambda: P.scan(net, ds, layers, image_size=size, batch_size=bs,
                                             start=s, end=e), e - s)
            finally:
                del net.extract
            inside.append(wall["scan"][-1] * (e - s) / forward_time[-1] - 1)
            print(f"  round {r + 1} batch {b + 1}: " + ", ".join(
                f"{k} {1 / v[-1]:.2f} img/s" for k, v in wall.items())
                + f"; bookkeeping inside the scan {100 * inside[-1]:.1f}%", flush=True)
    med = {k: statistics.median(v) for k, v in wall.items()}
    paired = [sc / bc - 1 for sc, bc in zip(wall["scan"], wall["bare_cl"])]
    paired_cpu = [sc / bc - 1 for sc, bc in zip(cpu["scan"], cpu["bare_cl"])]
    res = {
        "images": n, "batch_size": bs, "size": size, "rounds": args.rounds,
        "bare_nchw_img_s": 1 / med["bare_nchw"], "bare_cl_img_s": 1 / med["bare_cl"],
        "scan_img_s": 1 / med["scan"],
        "best_bare_cl_img_s": 1 / min(wall["bare_cl"]), "best_scan_img_s": 1 / min(wall["scan"]),
        "overhead_vs_bare_cl_pct_median_of_pairs": 100 * statistics.median(paired),
        "overhead_vs_bare_cl_pct_cpu_time": 100 * statistics.median(paired_cpu),
        "overhead_vs_bare_cl_pct_best": 100 * (min(wall["scan"]) / min(wall["bare_cl"]) - 1),
        "overhead_vs_bare_nchw_pct": 100 * (med["scan"] / med["bare_nchw"] - 1),
        "bookkeeping_inside_scan_pct": 100 * statistics.median(inside),
    }
    print("overhead:", {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}, flush=True)
    return res


def bench_memory(args) -> dict:
    net = load_backbone("vgg19", device="cpu")
    layers = relu_layers(net) if args.layers == "relu" else args.layers.split(",")
    ds = Repeated(args.images)
    samples = []
    t0 = time.perf_counter()
    start_rss = rss_mb()[0]

    def cb(p):
        if p.step:
            samples.append((p.step, *rss_mb()))
            if len(samples) % max(1, (args.images // args.batch_size) // 10) == 0:
                print(f"  {p.step}/{p.total} images, RSS {samples[-1][1]:.0f} MiB, "
                      f"peak {samples[-1][2]:.0f} MiB, {p.step / (time.perf_counter() - t0):.1f} img/s",
                      flush=True)

    atlas = P.scan(net, ds, layers, image_size=args.size, batch_size=args.batch_size, callback=cb)
    dt = time.perf_counter() - t0
    tenth = samples[max(0, len(samples) // 10 - 1)]
    res = {
        "images": atlas.n_images, "size": args.size, "batch_size": args.batch_size, "layers": len(layers),
        "seconds": dt, "img_s": atlas.n_images / dt, "rss_before_scan_mib": start_rss,
        "rss_at_10pct_mib": tenth[1], "rss_at_end_mib": samples[-1][1], "peak_rss_mib": samples[-1][2],
    }
    print("memory:", {k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()}, flush=True)
    return res


def bench_sample(args) -> dict:
    net = load_backbone("vgg19", device="cpu")
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shipped = P.get_atlas("sample", net, cache_dir=tmp)
        for layer in shipped.layers:
            for unit in range(9):
                shipped.patches(layer, unit)
        res.update(first_visit_seconds=time.perf_counter() - t0, from_shipped_index=shipped.path is not None
                   and shipped.path.parent == P.shipped_dir())
        if args.scan:
            t0 = time.perf_counter()
            last = [0.0]

            def cb(p):
                if time.perf_counter() - last[0] > 15:
                    last[0] = time.perf_counter()
                    print(f"  {p.step}/{p.total} images, {time.perf_counter() - t0:.0f} s", flush=True)

            atlas = P.get_atlas("sample", net, callback=cb, cache_dir=tmp, batch_size=args.batch_size, rescan=True)
            dt = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = P.get_atlas("sample", net, cache_dir=tmp)
            res.update(images=atlas.n_images, size=atlas.image_size, layers=atlas.layers, batch_size=args.batch_size,
                       seconds=dt, img_s=atlas.n_images / dt, cache_hit_seconds=time.perf_counter() - t1,
                       same_as_shipped=all((atlas.images[n] == shipped.images[n]).all() for n in atlas.layers),
                       cached=again.path is not None and again.path.parent == Path(tmp))
    print("sample:", {k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}, flush=True)
    return res


def bench_sizes(args) -> dict:
    net = load_backbone("vgg19", device="cpu")
    ds = SampleDataset()
    times: dict[int, list[float]] = {s: [] for s in args.sizes}
    for _ in range(args.rounds):
        for size in args.sizes:
            t0 = time.perf_counter()
            P.scan(net, ds, end=args.images, image_size=size)
            times[size].append((time.perf_counter() - t0) / args.images)
    med = {s: statistics.median(v) for s, v in times.items()}
    base = med[args.sizes[0]]
    for s in args.sizes:
        print(f"sizes: {s} px: median {med[s] * 1000:.0f} ms/image over {args.rounds} rounds "
              f"(x{med[s] / base:.2f} of {args.sizes[0]} px; pixels x{(s / args.sizes[0]) ** 2:.2f})", flush=True)
    return med


def padding_fraction(atlas, layer):
    """Per kept hit of ``layer``: the fraction of its receptive-field box outside the image."""
    import numpy as np

    rf, size = atlas.rf(layer), atlas.image_size
    valid = atlas.images[layer] >= 0
    top = rf.start(0) + rf.stride * atlas.ys[layer][valid].astype(np.int64)
    left = rf.start_x(0) + rf.stride_x * atlas.xs[layer][valid].astype(np.int64)
    rows = np.clip(top + rf.size, 0, size) - np.clip(top, 0, size)
    cols = np.clip(left + rf.size_x, 0, size) - np.clip(left, 0, size)
    return 1.0 - rows * cols / (rf.size * rf.size_x)


def bench_padding(args) -> list:
    import numpy as np

    out = []
    for path in args.atlas:
        atlas = P.Atlas.load(path)
        for layer in atlas.layers:
            f = padding_fraction(atlas, layer)
            row = {"atlas": Path(path).name, "size": atlas.image_size, "min_inside": atlas.meta["min_inside"],
                   "layer": layer, "rf": atlas.rf(layer).size, "mean": float(f.mean()),
                   "median": float(np.median(f)), "over_half": float((f > 0.5).mean()), "max": float(f.max())}
            print("padding:", {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
            out.append(row)
    return out


def _sample_as_scanned(atlas) -> SampleDataset:
    """The ``sample`` dataset as it was when ``atlas`` was made: photos were only ever added at the end."""
    for n in range(len(SAMPLE_SOURCES), 0, -1):
        ds = SampleDataset(SAMPLE_SOURCES[:n])
        if ds.fingerprint == atlas.meta["dataset_fingerprint"]:
            return ds
    raise SystemExit(f"{atlas.path}: not an atlas of this installation's sample photos")


def bench_diversity(args) -> list:
    import numpy as np

    rows = []
    for path in args.atlas or [P.shipped_dir() / "sample_vgg19_160px_k9.npz"]:
        atlas = P.Atlas.load(path)
        ds = _sample_as_scanned(atlas)
        photo = np.array([ds.source(i) for i in range(len(ds))])
        print(f"diversity: {path}: {atlas.n_images} crops of {len(ds.sources)} photos, k={atlas.k}, "
              f"at most {atlas.meta['per_image'] or 'any number'} per photo", flush=True)
        for layer in atlas.layers:
            im = atlas.images[layer][:, :9]
            distinct = [len(set(photo[row[row >= 0]].tolist())) for row in im]
            counts = np.bincount(photo[im[im >= 0]], minlength=len(ds.sources))
            top = int(counts.argmax())
            row = {"atlas": str(path), "layer": layer, "median_photos": float(np.median(distinct)),
                   "one_photo_units": int(sum(d == 1 for d in distinct)), "largest_share": counts[top] / counts.sum(),
                   "photo": ds.sources[top][0]}
            rows.append(row)
            print(f"diversity:   {layer}: median {row['median_photos']:g} distinct photos in a unit's top 9 "
                  f"({row['one_photo_units']} units with all from one); largest share {row['largest_share']:.1%} "
                  f"({row['photo']})", flush=True)
    return rows


def _photo_folder(folder: Path, n: int, width: int, height: int) -> Path:
    """``n`` JPEG photos of ``width`` x ``height`` (quality 90): the sample photos, cropped and scaled each
    a little differently, with sensor-like noise so that they decode like real photos."""
    import numpy as np
    from PIL import Image

    ds, rng = SampleDataset(), np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = ds.photo(i % len(ds.sources))
        w, h = src.size
        cut = rng.uniform(0.6, 1.0)
        left, top = rng.uniform(0, w * (1 - cut)), rng.uniform(0, h * (1 - cut))
        img = src.resize((width, height), Image.BICUBIC, box=(left, top, left + w * cut, top + h * cut))
        arr = np.asarray(img, np.int16) + rng.normal(0, 4, (height, width, 1)).astype(np.int16)
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(folder / f"IMG_{i:04d}.jpg", quality=90)
    return folder


def bench_photos(args) -> dict:
    import os

    from teachkit.prepare import prepare_photos

    width, height = (int(v) for v in args.photo_size.split("x"))
    torch.set_num_threads(args.threads or torch.get_num_threads())
    net = load_backbone("vgg19", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = _photo_folder(Path(tmp) / "photos", args.images, width, height)
        ds = P.get_dataset(str(folder))
        t0 = time.perf_counter()
        for i in range(len(ds)):  # the whole photo decoded, then cut down (what the scan did before draft mode)
            fit_square(ds.load(i), P.DEFAULT_IMAGE_SIZE)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(len(ds)):
            ds.square(i, P.DEFAULT_IMAGE_SIZE)
        decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        atlas = prepare_photos(net, folder, cache_dir=Path(tmp) / "cache")
        wall = time.perf_counter() - t0
    per = 1000 / atlas.n_images
    print(f"photos: {cpu_line()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"photos: {atlas.n_images} JPEG photos of {width}x{height}, scanned at {atlas.image_size} px, layers "
          f"{', '.join(atlas.layers)}, batch {P.DEFAULT_BATCH_SIZE}: {wall:.1f} s = {wall * per / 60:.1f} min per "
          f"1,000 photos ({wall / atlas.n_images:.2f} s each, of which decoding and resizing "
          f"{decode / atlas.n_images:.2f} s; {full / atlas.n_images:.2f} s decoding each whole)", flush=True)
    return {"seconds": wall, "per_1000_s": wall * per, "decode_s": decode, "full_decode_s": full}


def _crops_folder(folder: Path, n: int, size: int) -> Path:
    ds = SampleDataset()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ds.square(i * (len(ds) // n), size).save(folder / f"crop{i:04d}.png")
    return folder


def bench_processes(args) -> dict:
    import os
    import subprocess

    import numpy as np

    cores = args.threads or os.cpu_count() or 1
    per = max(1, cores // args.nproc)
    runs: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _crops_folder(tmp / "images", args.images, args.size)
        common = ["patches", "scan", "--data", str(data), "--image-size", str(args.size),
                  "--batch-size", str(args.batch_size), "--cache-dir", str(tmp / "cache"), "--rescan"]
        if args.layers:
            common += ["--layers", args.layers]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        commands = {
            f"1 process x {cores} threads": [sys.executable, "-m", "teachkit", *common, "--threads", str(cores),
                                             "-o", str(tmp / "one.npz")],
            f"{args.nproc} processes x {per} threads (torchrun, gloo)": [
                sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc),
                "--master-addr", "127.0.0.1", "--master-port", str(29400 + os.getpid() % 500),
                "-m", "teachkit", *common, "--threads", str(per), "-o", str(tmp / "many.npz")],
        }
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, env={**env, "OMP_NUM_THREADS": str(per if "torchrun" in name else cores)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wall = time.perf_counter() - t0
                out = tmp / ("many.npz" if "torchrun" in name else "one.npz")
                atlas = P.Atlas.load(out)
                r = runs.setdefault(name, {"wall": [], "scan": []})
                r["wall"].append(wall)
                r["scan"].append(float(atlas.meta["scan_seconds"]))
                print(f"processes: {name}: {wall:.1f} s wall, {atlas.meta['scan_seconds']:.1f} s scan", flush=True)
        one, many = (P.Atlas.load(tmp / f) for f in ("one.npz", "many.npz"))
        equal = all(np.array_equal(getattr(one, f)[n], getattr(many, f)[n])
                    for n in one.layers for f in ("values", "images", "ys", "xs"))
    (n1, r1), (n2, r2) = runs.items()
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in runs.items()}
    print(f"processes: {args.images} images at {args.size} px, layers {args.layers or 'default'}, "
          f"batch {args.batch_size}, {args.rounds} rounds, {os.cpu_count()} cores", flush=True)
    for n in (n1, n2):
        print(f"processes: {n}: median {med[n]['wall']:.1f} s wall ({args.images / med[n]['wall']:.2f} img/s), "
              f"median {med[n]['scan']:.1f} s scan ({args.images / med[n]['scan']:.2f} img/s)", flush=True)
    print(f"processes: speed-up {n2} over {n1}: x{med[n1]['wall'] / med[n2]['wall']:.2f} wall, "
          f"x{med[n1]['scan'] / med[n2]['scan']:.2f} scan; atlases equal array by array: {equal}", flush=True)
    return {"median": med, "equal": equal}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--images", type=int, default=32)
    o.add_argument("--batch-size", type=int, default=8)
    o.add_argument("--size", type=int, default=224)
    o.add_argument("--rounds", type=int, default=2)
    m = sub.add_parser("memory")
    m.add_argument("--images", type=int, default=160)
    m.add_argument("--size", type=int, default=224)
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--layers", default="relu", help="'relu' (all 16) or a comma-separated list")
    s = sub.add_parser("sample")
    s.add_argument("--batch-size", type=int, default=P.DEFAULT_BATCH_SIZE)
    s.add_argument("--scan", action="store_true", help="also time a full scan (several minutes)")
    sz = sub.add_parser("sizes")
    sz.add_argument("--sizes", type=int, nargs="+", default=[112, 160])
    sz.add_argument("--images", type=int, default=48)
    sz.add_argument("--rounds", type=int, default=3)
    pd = sub.add_parser("padding")
    pd.add_argument("--atlas", nargs="+", required=True)
    dv = sub.add_parser("diversity")
    dv.add_argument("--atlas", nargs="*", default=None)
    ph = sub.add_parser("photos")
    ph.add_argument("--images", type=int, default=48)
    ph.add_argument("--photo-size", default="4032x3024", help="WIDTHxHEIGHT (default: a 12-megapixel phone photo)")
    ph.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    pr = sub.add_parser("processes")
    pr.add_argument("--nproc", type=int, default=2)
    pr.add_argument("--images", type=int, default=64)
    pr.add_argument("--size", type=int, default=P.DEFAULT_IMAGE_SIZE)
    pr.add_argument("--batch-size", type=int, default=P.DEFAULT_BATCH_SIZE)
    pr.add_argument("--layers", default=None, help="comma-separated (default: the scan's default layers)")
    pr.add_argument("--rounds", type=int, default=3)
    pr.add_argument("--threads", type=int, default=0, help="cores to use in all (default: every core)")
    a = sub.add_parser("all")
    a.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if args.what == "overhead":
        bench_overhead(args)
    elif args.what == "memory":
        bench_memory(args)
    elif args.what == "sample":
        bench_sample(args)
    elif args.what == "sizes":
        bench_sizes(args)
    elif args.what == "padding":
        bench_padding(args)
    elif args.what == "processes":
        bench_processes(args)
    elif args.what == "diversity":
        bench_diversity(args)
    elif args.what == "photos":
        bench_photos(args)
    else:
        bench_overhead(argparse.Namespace(images=32, batch_size=8, size=224, rounds=2))
        bench_memory(argparse.Namespace(images=160, size=224, batch_size=16, layers="relu"))
        bench_sample(argparse.Namespace(batch_size=P.DEFAULT_BATCH_SIZE, scan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
