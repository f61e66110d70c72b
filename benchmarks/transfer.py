"""Benchmark of teachkit's style transfer (a script, not a test).

For each size it measures, each configuration in its own subprocess (so that peak memory is that
configuration's own, read with ``resource.getrusage(...).ru_maxrss``):

(a) floor      a bare VGG19 forward + backward to the deepest layer used (relu5_1 by default)
(b) step-f32   one teachkit optimisation step (StyleTransfer.step), float32
    step-bf16  the same under bfloat16 autocast
(c) reference  a plain loop written here: one scale, full resolution, torch L-BFGS, float32, the
               lecture's costs (teachkit.costs), from white noise, ``--ref-steps`` steps
(d) recipe     teachkit's default recipe (coarse-to-fine, ``transfer()`` with the default config at
               that size): the time until the full-resolution total cost first reaches the cost the
               reference has after ``--ref-steps`` steps (same cost definition, same weights)
(e) quality    (``--quality-sizes``) the default recipe in float32 and in bfloat16, and float32 with
               another seed: final cost (always evaluated in float32) and pixel differences

Per-step times are medians of ``--timing-steps`` steps after warm-up steps.  The machine may be
shared: compare ratios measured in the same run.  Usage::

    python benchmarks/transfer.py                       # sizes 256 and 512, the full run
    python benchmarks/transfer.py --quick --sizes 128   # a smoke run in about a minute
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- measured in a worker process --------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _setup(job):
    import torch

    torch.set_num_threads(job["threads"])
    from teachkit.features import load_backbone
    from teachkit.images import resolve_image, to_tensor
    from teachkit.transfer import load_inputs, TransferConfig

    net = load_backbone("vgg19", device="cpu")
    c, (s,) = load_inputs(job["content"], [job["style"]], TransferConfig(size=job["size"]))
    return torch, net, c, s, to_tensor(c), to_tensor(s)


def _deepest(net, cfg):
    layers = [cfg.content_layer, *cfg.style_layers]
    return max(layers, key=net.layer_index)


def work_floor(job):
    torch, net, c, s, ct, st = _setup(job)
    from teachkit.transfer import TransferConfig

    deepest = _deepest(net, TransferConfig())
    x = torch.rand_like(ct).requires_grad_(True)
    base = _rss_mib()
    times = []
    for i in range(job["warmup"] + job["timing_steps"]):
        t = time.perf_counter()
        out = net.extract(x, [deepest])[deepest]
        out.sum().backward()
        x.grad = None
        times.append(time.perf_counter() - t)
    return {"layer": deepest, "times": times[job["warmup"]:], "rss_base": base}


def work_step(job):
    torch, net, c, s, ct, st = _setup(job)
    from teachkit.transfer import StyleTransfer, TransferConfig

    cfg = TransferConfig(size=job["size"], dtype=job["dtype"], scales=(job["size"],))
    base = _rss_mib()
    tr = StyleTransfer(ct, st, cfg, backbone=net)
    times = []
    for i in range(job["warmup"] + job["timing_steps"]):
        t = time.perf_counter()
        tr.step(1)
        times.append(time.perf_counter() - t)
    return {"times": times[job["warmup"]:], "rss_base": base}


def work_reference(job):
    """The plain loop: everything written out here, only the cost functions come from teachkit."""
    torch, net, c, s, ct, st = _setup(job)
    from teachkit import costs
    from teachkit.transfer import TransferConfig

    cfg = TransferConfig(size=job["size"]).resolved(1)  # the same weights as teachkit's default
    content_layer, style_layers, lam = cfg.content_layer, list(cfg.style_layers), list(cfg.layer_weights)
    base = _rss_mib()
    t0 = time.perf_counter()
    with torch.no_grad():
        a_C = net.extract(ct, [content_layer])[content_layer]
        feats_S = net.extract(st, style_layers)
        feats_G0 = net.extract(torch.zeros_like(ct), style_layers)
        # the style image may have another number of positions: scale its Gram matrix to G's
        grams_S = {
            l: costs.gram_matrix(feats_S[l])[0] * (feats_G0[l].shape[-1] * feats_G0[l].shape[-2])
            / (feats_S[l].shape[-1] * feats_S[l].shape[-2])
            for l in style_layers
        }
    g = torch.Generator().manual_seed(job.get("seed", 0))
    x = torch.rand(ct.shape, generator=g).requires_grad_(True)

    def J(img):
        feats = net.extract(img, [content_layer, *style_layers])
        jc = costs.content_cost(a_C, feats[content_layer])
        js = sum(w * costs.style_layer_cost(grams_S[l], feats[l]) for l, w in zip(style_layers, lam))
        return costs.total_cost(jc, js, cfg.alpha, cfg.beta, costs.total_variation(img), cfg.tv_weight)

    # torch's L-BFGS, one evaluation per step (no line search), pixels clamped to [0, 1] after
    # each step.  Its fall-back step (a unit gradient step) assumes J ~ 1, so J is divided by a
    # constant fixed at the start (L-BFGS is otherwise invariant to it).
    opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=cfg.history_size,
                            tolerance_grad=0, tolerance_change=0)
    x.grad = None
    J(x).backward()
    scale = 0.1 / float(x.grad.pow(2).mean().sqrt())
    x.grad = None
    log = []

    def closure():
        opt.zero_grad()
        v = J(x)
        (v * scale).backward()
        log.append(float(v))
        return v.detach() * scale

    for i in range(job["steps"]):
        opt.step(closure)
        with torch.no_grad():
            x.clamp_(0, 1)
        if i % 25 == 24:
            print(f"  reference step {i + 1}: J = {log[-1]:.4g}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = float(J(x))
    return {"cost": final, "seconds": seconds, "rss_base": base, "costs": log[:: max(1, len(log) // 30)]}


def work_recipe(job):
    torch, net, c, s, ct, st = _setup(job)
    from teachkit.transfer import StyleTransfer, TransferConfig, transfer

    cfg = TransferConfig(size=job["size"], dtype=job["dtype"], seed=job.get("seed", 0))
    target = job.get("target")
    base = _rss_mib()
    res = transfer(c, s, cfg, backbone=net)
    hist = res.history
    last_scale = max(r["scale"] for r in hist)
    reach = None
    if target is not None:
        for r in hist:
            if r["scale"] == last_scale and r["total"] <= target:
                reach = {"seconds": r["elapsed"], "step": r["step"], "extra_steps": 0}
                break
        if reach is None and job.get("extend", 0):
            # not reached within the default steps: keep going at full resolution
            tr = StyleTransfer(ct, st, res.config, init=res.tensor, backbone=net)
            t0 = time.perf_counter()
            for k in range(job["extend"]):
                r = tr.step(1)[0]
                if r["total"] <= target:
                    reach = {"seconds": res.seconds + time.perf_counter() - t0, "step": len(hist) + k + 1,
                             "extra_steps": k + 1}
                    break
    # the result's cost in float32, whatever dtype ran
    f32 = StyleTransfer(ct, st, TransferConfig(size=job["size"], dtype="float32"), init=res.tensor, backbone=net)
    out = {
        "seconds": res.seconds,
        "steps": len(hist),
        "scales": list(res.config.scales),
        "final_cost_f32": f32.costs()["total"],
        "final_cost_own": res.costs["total"],
        "reach": reach,
        "rss_base": base,
    }
    if job.get("save"):
        torch.save(res.tensor, job["save"])
        res.image.save(job["save"].replace(".pt", ".png"))
    return out


WORKERS = {"floor": work_floor, "step": work_step, "reference": work_reference, "recipe": work_recipe}


def worker_main(spec: str) -> None:
    job = json.loads(spec)
    out = WORKERS[job["kind"]](job)
    out["peak_rss_mib"] = _peak_mib()
    out["delta_rss_mib"] = out["peak_rss_mib"] - out.pop("rss_base")
    print("RESULT " + json.dumps(out), flush=True)


# ---- the driver --------------------------------------------------------------------------------


def run_job(job: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]), PYTHONWARNINGS="ignore")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)],
                       stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"worker {job['kind']} failed (exit {p.returncode})")
    out = json.loads(lines[-1][7:])
    out["wall"] = time.perf_counter() - t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512", help="comma list of long sides (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="few steps everywhere: checks the machinery only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default: %(default)s)")
    ap.add_argument("--ref-steps", type=int, default=None, help="reference steps (default 300; quick: 20)")
    ap.add_argument("--timing-steps", type=int, default=None, help="timed steps per config (default 7; quick: 2)")
    ap.add_argument("--quality-sizes", default="256", help="sizes for the bfloat16 quality check ('' : none)")
    ap.add_argument("--content", default="chelsea")
    ap.add_argument("--style", default="stained_glass")
    ap.add_argument("--json", default=None, help="also write all the numbers to this JSON file")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0

    sizes = [int(v) for v in args.sizes.split(",") if v]
    qsizes = [int(v) for v in args.quality_sizes.split(",") if v]
    ref_steps = args.ref_steps or (20 if args.quick else 300)
    timing = args.timing_steps or (2 if args.quick else 7)
    common = dict(threads=args.threads, content=args.content, style=args.style, warmup=1 if args.quick else 2,
                  timing_steps=timing)
    import torch

    print(f"# teachkit transfer benchmark: torch {torch.__version__}, {args.threads} thread(s), "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, content={args.content} style={args.style}",
          flush=True)
    results: dict = {"args": vars(args), "sizes": {}}
    for size in sizes:
        r: dict = {}
        job = dict(common, size=size)
        print(f"## {size} px", flush=True)
        r["floor"] = run_job(dict(job, kind="floor"))
        print(f"  floor      {statistics.median(r['floor']['times']):.3f} s", flush=True)
        for dt in ("float32", "bfloat16"):
            r[f"step-{dt}"] = run_job(dict(job, kind="step", dtype=dt))
            print(f"  step {dt:8s} {statistics.median(r[f'step-{dt}']['times']):.3f} s", flush=True)
        r["reference"] = run_job(dict(job, kind="reference", steps=ref_steps))
        target = r["reference"]["cost"]
        print(f"  reference  {ref_steps} steps {r['reference']['seconds']:.1f} s  J = {target:.4g}", flush=True)
        save = f"/tmp/teachkit_bench_{size}_f32.pt"
        r["recipe"] = run_job(dict(job, kind="recipe", dtype="float32", target=target, extend=ref_steps, save=save))
        print(f"  recipe     {r['recipe']['seconds']:.1f} s  reach {r['recipe']['reach']}", flush=True)
        if size in qsizes:
            r["recipe-bf16"] = run_job(dict(job, kind="recipe", dtype="bfloat16", save=save.replace("f32", "bf16")))
            r["recipe-seed1"] = run_job(dict(job, kind="recipe", dtype="float32", seed=1,
                                             save=save.replace("f32", "seed1")))
            a = torch.load(save)
            for key, name in (("recipe-bf16", "bf16"), ("recipe-seed1", "seed1")):
                b = torch.load(save.replace("f32", name))
                mad = float((a - b).abs().mean())
                mse = float((a - b).pow(2).mean())
                r[key]["vs_f32_mean_abs"] = mad
                r[key]["vs_f32_psnr"] = 10 * math.log10(1 / mse) if mse > 0 else float("inf")
            print(f"  bf16 recipe {r['recipe-bf16']['seconds']:.1f} s", flush=True)
        results["sizes"][size] = r
    print()
    print(report(results, ref_steps))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def report(results: dict, ref_steps: int) -> str:
    sizes = list(results["sizes"])
    med = lambda r: statistics.median(r["times"])  # noqa: E731
    rows = [("", *[f"{s} px" for s in sizes])]

    def row(name, fn):
        vals = []
        for s in sizes:
            try:
                vals.append(fn(results["sizes"][s]))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("-")
        rows.append((name, *vals))

    row("(a) floor: VGG19 fwd+bwd to relu5_1, s/step", lambda r: f"{med(r['floor']):.3f}")
    row("(b) teachkit step float32, s/step", lambda r: f"{med(r['step-float32']):.3f}")
    row("    ratio float32 step / floor (target <= 1.1)", lambda r: f"{med(r['step-float32']) / med(r['floor']):.3f}")
    row("(b) teachkit step bfloat16, s/step", lambda r: f"{med(r['step-bfloat16']):.3f}")
    row("    speed-up bfloat16 vs float32", lambda r: f"{med(r['step-float32']) / med(r['step-bfloat16']):.2f}x")
    row(f"(c) reference: {ref_steps} L-BFGS steps, s", lambda r: f"{r['reference']['seconds']:.1f}")
    row(f"    reference J after {ref_steps} steps", lambda r: f"{r['reference']['cost']:.4g}")
    row("(d) default recipe: time to reach that J, s", lambda r: f"{r['recipe']['reach']['seconds']:.1f}")
    row("    ... at step (of scales)", lambda r: f"{r['recipe']['reach']['step']} ({'/'.join(map(str, r['recipe']['scales']))})")
    row("    ratio recipe / reference time (target <= 1/3)",
        lambda r: f"{r['recipe']['reach']['seconds'] / r['reference']['seconds']:.3f}")
    row("    default recipe, all its steps: s / final J", lambda r: f"{r['recipe']['seconds']:.1f} / {r['recipe']['final_cost_f32']:.4g}")
    row("peak RSS floor, MiB (delta)", lambda r: f"{r['floor']['peak_rss_mib']:.0f} ({r['floor']['delta_rss_mib']:.0f})")
    row("peak RSS step float32, MiB (delta)", lambda r: f"{r['step-float32']['peak_rss_mib']:.0f} ({r['step-float32']['delta_rss_mib']:.0f})")
    row("peak RSS step bfloat16, MiB (delta)", lambda r: f"{r['step-bfloat16']['peak_rss_mib']:.0f} ({r['step-bfloat16']['delta_rss_mib']:.0f})")
    row("peak RSS reference, MiB (delta)", lambda r: f"{r['reference']['peak_rss_mib']:.0f} ({r['reference']['delta_rss_mib']:.0f})")
    row("peak RSS default recipe, MiB (delta)", lambda r: f"{r['recipe']['peak_rss_mib']:.0f} ({r['recipe']['delta_rss_mib']:.0f})")
    row("bf16 recipe: s / final J (in float32)", lambda r: f"{r['recipe-bf16']['seconds']:.1f} / {r['recipe-bf16']['final_cost_f32']:.4g}")
    row("bf16 vs f32 image: mean |diff| / PSNR dB",
        lambda r: f"{r['recipe-bf16']['vs_f32_mean_abs']:.4f} / {r['recipe-bf16']['vs_f32_psnr']:.1f}")
    row("f32 seed 1 vs seed 0: final J / mean |diff| / PSNR",
        lambda r: f"{r['recipe-seed1']['final_cost_f32']:.4g} / {r['recipe-seed1']['vs_f32_mean_abs']:.4f} / {r['recipe-seed1']['vs_f32_psnr']:.1f}")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
