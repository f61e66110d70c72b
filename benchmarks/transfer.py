"""Benchmark of teachkit's style transfer (a script, not a test).

For each size it measures, each configuration in its own subprocess (so that peak memory is that
configuration's own, read with ``resource.getrusage(...).ru_maxrss``):

(a) floor      a bare VGG19 forward + backward to the deepest layer used (relu5_1 by default)
(b) step-f32   one teachkit optimisation step (StyleTransfer.step), float32
    step-bf16  the same under bfloat16 autocast
               (a) and (b) are timed in turns in one process (the ratios), and each alone in its
               own process (its peak memory)
(c) reference  a plain loop written here: one scale, full resolution, torch L-BFGS, float32, the
               lecture's costs (teachkit.costs), from white noise, ``--ref-steps`` steps
(d) recipe     teachkit's default recipe (coarse-to-fine, ``transfer()`` with the default config at
               that size): the time until the full-resolution total cost first reaches the cost the
               reference has after ``--ref-steps`` steps (same cost definition, same weights)
(e) quality    (``--quality-sizes``) the default recipe in float32 and in bfloat16, and float32 with
               another seed: final cost (always evaluated in float32) and pixel differences

Times are CPU seconds of the worker process (``time.process_time``; one torch thread by default):
on a shared machine, wall time also counts the time other processes hold the core, CPU time
does not.  Wall times are kept in the JSON.  Per-step times are medians of ``--timing-steps``
steps after warm-up steps; compare ratios measured in the same run.  Usage::

    python benchmarks/transfer.py                       # sizes 256 and 512, the full run
    python benchmarks/transfer.py --quick --sizes 128   # a smoke run in about a minute
    python benchmarks/transfer.py --report run.json     # the table of a saved --json run
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

#: The recipe this benchmark measures (the engine's default before issue 9: lecture weights, white
#: noise, one scale, 200 steps): pinned, so that its J stays comparable with the reference loop's.
#: bfloat16 is forced (force_dtype) so that an emulating CPU shows what it costs there.
RECIPE = dict(normalization="lecture", init="noise", steps=200, force_dtype=True)


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
    from teachkit.images import to_tensor
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
        t = time.process_time()
        out = net.extract(x, [deepest])[deepest]
        out.sum().backward()
        x.grad = None
        times.append(time.process_time() - t)
    return {"layer": deepest, "times": times[job["warmup"]:], "rss_base": base}


def work_step(job):
    torch, net, c, s, ct, st = _setup(job)
    from teachkit.transfer import StyleTransfer, TransferConfig

    cfg = TransferConfig(size=job["size"], dtype=job["dtype"], scales=(job["size"],), **RECIPE)
    base = _rss_mib()
    tr = StyleTransfer(ct, st, cfg, backbone=net)
    times = []
    for i in range(job["warmup"] + job["timing_steps"]):
        t = time.process_time()
        tr.step(1)
        times.append(time.process_time() - t)
    return {"times": times[job["warmup"]:], "rss_base": base}


def work_timing(job):
    """Floor, float32 step and bfloat16 step, timed in turns in one process: on a shared, noisy
    machine a neighbour's load then hits all three alike, and their ratios stay meaningful."""
    torch, net, c, s, ct, st = _setup(job)
    from teachkit.transfer import StyleTransfer, TransferConfig

    cfg = TransferConfig(size=job["size"], scales=(job["size"],), dtype="float32", **RECIPE)
    deepest = _deepest(net, cfg)
    x = torch.rand_like(ct).requires_grad_(True)

    def floor():
        out = net.extract(x, [deepest])[deepest]
        out.sum().backward()
        x.grad = None

    runs = {
        "floor": floor,
        "float32": StyleTransfer(ct, st, cfg, backbone=net).step,
        "bfloat16": StyleTransfer(ct, st, TransferConfig(size=job["size"], scales=(job["size"],), dtype="bfloat16",
                                                         **RECIPE), backbone=net).step,
    }
    times = {k: [] for k in runs}
    wall = {k: [] for k in runs}
    for i in range(job["warmup"] + job["timing_steps"]):
        for k, fn in runs.items():
            t, w = time.process_time(), time.perf_counter()
            fn()
            if i >= job["warmup"]:
                times[k].append(time.process_time() - t)
                wall[k].append(time.perf_counter() - w)
    return {"layer": deepest, "times": times, "wall": wall, "rss_base": _rss_mib()}


def work_reference(job):
    """The plain loop: everything written out here, only the cost functions come from teachkit."""
    torch, net, c, s, ct, st = _setup(job)
    from teachkit import costs
    from teachkit.transfer import TransferConfig, schedule

    cfg = schedule(TransferConfig(size=job["size"], **RECIPE), 1).config  # the same weights as the recipe measured
    content_layer, style_layers, lam = cfg.content_layer, list(cfg.style_layers), list(cfg.layer_weights)
    base = _rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
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

    # torch's L-BFGS, one evaluation per step (no line search).  Two things a plain loop needs
    # to work at all (found while building teachkit, kept here so the reference is not a straw
    # man): (1) its fall-back step (a unit gradient step) assumes J ~ 1, so J is multiplied by a
    # constant fixed at the start (L-BFGS is otherwise invariant to it); (2) the pixels are kept in
    # [0, 1] by evaluating J on clamp(x) plus 1/2 ||x - clamp(x)||^2, not by clamping x after each
    # step, which corrupts L-BFGS's memory (the cost then rises again after ~100 steps).
    opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=cfg.history_size,
                            tolerance_grad=0, tolerance_change=0)
    x.grad = None
    J(x).backward()
    scale = 0.1 / float(x.grad.pow(2).mean().sqrt())
    x.grad = None
    log = []

    def closure():
        opt.zero_grad()
        v = J(x.clamp(0, 1))
        f = v * scale + 0.5 * (x - x.detach().clamp(0, 1)).pow(2).sum()
        f.backward()
        log.append(float(v))
        return f.detach()

    for i in range(job["steps"]):
        opt.step(closure)
        if i % 25 == 24:
            print(f"  reference step {i + 1}: J = {log[-1]:.4g}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    seconds = time.process_time() - c0
    with torch.no_grad():
        final = float(J(x.clamp(0, 1)))
    return {"cost": final, "seconds": seconds, "wall": wall, "rss_base": base,
            "costs": log[:: max(1, len(log) // 30)]}


def work_recipe(job):
    """The default recipe (scales and step split of TransferConfig(size=...)), timed per step.

    With a ``target`` it is continued at full resolution (up to ``extend`` more steps, same
    L-BFGS run) until the full-resolution total cost first reaches the target, and stops there.
    """
    torch, net, c, s, ct, st = _setup(job)
    from teachkit.transfer import StyleTransfer, TransferConfig, schedule, transfer

    base_cfg = TransferConfig(size=job["size"], dtype=job["dtype"], seed=job.get("seed", 0),
                              scales=(job["size"],), **RECIPE)
    plan = list(schedule(base_cfg, 1).scale_steps)
    target = job.get("target")
    extend = job.get("extend", 0) if target is not None else 0
    cfg = TransferConfig(size=job["size"], dtype=job["dtype"], seed=job.get("seed", 0), scales=(job["size"],),
                         scale_steps=tuple(plan[:-1]) + (plan[-1] + extend,), preview_every=0, **RECIPE)
    n_default, n_scales = sum(plan), len(plan)
    cpu, vals = {}, {}
    base = _rss_mib()
    c0 = time.process_time()

    def callback(p):
        cpu[p.step] = time.process_time() - c0
        vals[p.step] = p.values["total"]
        final_scale = str(p.message).startswith(f"scale {n_scales}/")
        return target is not None and final_scale and p.values["total"] <= target

    res = transfer(c, s, cfg, backbone=net, callback=callback)
    hist = res.history
    reach = None
    if target is not None and vals[hist[-1]["step"]] <= target:
        r = hist[-1]
        reach = {"seconds": cpu[r["step"]], "wall": r["elapsed"], "step": r["step"],
                 "steps_at_full_size": r["step"] - sum(plan[:-1])}
    default_end = min(n_default, len(hist))
    # the cost of the image the default recipe returns, in float32, whatever dtype ran
    if target is None:
        f32 = StyleTransfer(ct, st, TransferConfig(size=job["size"], scales=(job["size"],), dtype="float32",
                                                   **RECIPE), init=res.tensor, backbone=net)
        final_f32 = f32.costs()["total"]
    else:
        final_f32 = None
    out = {
        "seconds": cpu.get(default_end),  # the default recipe's own steps, CPU s
        "wall": hist[default_end - 1]["elapsed"] if hist else None,
        "steps": default_end,
        "plan": plan,
        "scales": list(res.config.scales),
        "cost_at_default_end": vals.get(default_end),  # evaluated in the recipe's dtype
        "final_cost_f32": final_f32,
        "reach": reach,
        "rss_base": base,
    }
    if job.get("save"):
        torch.save(res.tensor, job["save"])
        res.image.save(job["save"].replace(".pt", ".png"))
    return out


WORKERS = {"floor": work_floor, "step": work_step, "timing": work_timing, "reference": work_reference,
           "recipe": work_recipe}


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


CLASSROOM_PROBE = r"""
import time
c0 = time.process_time()
import torch
torch.set_num_threads(1)
from teachkit.transfer import StyleTransfer, TransferConfig, load_inputs
from teachkit.images import to_tensor
c1 = time.process_time()
from teachkit.features import load_backbone, vgg19_original_state
vgg19_original_state()
c2 = time.process_time()
net = load_backbone("vgg19", device="cpu")
c3 = time.process_time()
print(f"start-up, CPU s: import torch + teachkit {c1 - c0:.2f}, decode weights {c2 - c1:.2f}, "
      f"build the net {c3 - c2:.2f}; capability {torch.backends.cpu.get_cpu_capability()}")
for size in (128, 256):
    c, (s,) = load_inputs("chelsea", ["stained_glass"], TransferConfig(size=size))
    st = StyleTransfer(to_tensor(c), to_tensor(s), TransferConfig(size=size, dtype="auto"), backbone=net)
    st.step(2)
    times = []
    for _ in range(5):
        t = time.process_time()
        st.step(1)
        times.append(time.process_time() - t)
    print(f"step at {size} px (dtype auto -> {st.autocast_dtype or 'float32'}), CPU s: {sorted(times)[2]:.3f}")
"""


def classroom(args) -> None:
    """Start-up, per-step and end-to-end seconds for the presets (issue 9), with ``--threads`` threads
    for the two transfers (the probe of start-up and steps always uses one).

    Run it under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` to emulate a classroom CPU."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TEACHKIT_OFFLINE="1")
    subprocess.run([sys.executable, "-c", CLASSROOM_PROBE], check=True, env=env, cwd=os.path.dirname(HERE))
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "teachkit-classroom.png")
    for preset in ("quick", "default"):
        cmd = [sys.executable, "-m", "teachkit.cli", "transfer", args.content, args.style, "--preset", preset,
               "-o", out, "--quiet"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=dict(env, OMP_NUM_THREADS=str(args.threads)),
                       cwd=os.path.dirname(HERE), stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"teachkit transfer --preset {preset}, process start to PNG: CPU {cpu:.1f} s ({args.threads} thread(s)), "
              f"wall {wall:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)


def plan_costs(args) -> None:
    """What resolving once costs and saves (issue 16), CPU seconds, 1 thread, ``--repeat`` runs, medians:
    the engine's plan of the ``quick`` preset (every scale's targets and weights, no step), its first
    step, the page's start image (``initial_image``, no network) and the old way to get it (a whole
    StyleTransfer: three forward passes)."""
    import statistics

    import torch

    torch.set_num_threads(1)
    from teachkit.features import load_backbone
    from teachkit.images import to_tensor
    from teachkit.transfer import Engine, StyleTransfer, TransferConfig, initial_image, load_inputs, schedule

    net = load_backbone("vgg19", device="cpu")
    cfg = TransferConfig.preset("quick", dtype="float32")
    c, s = load_inputs(args.content, [args.style], cfg)
    first = schedule(cfg).first
    c_first = to_tensor(c.resize((round(c.size[0] * first / max(c.size)), round(c.size[1] * first / max(c.size)))))

    def cpu(fn):
        t = time.process_time()
        fn()
        return time.process_time() - t

    rows = {"plan (Engine: targets + weights of both scales)": [], "first step (128 px)": [],
            "start image: initial_image": [], "start image: old, a StyleTransfer at 128 px": []}
    for _ in range(args.repeat):
        engine = None

        def make():
            nonlocal engine
            engine = Engine(c, s, cfg, backbone=net)

        rows["plan (Engine: targets + weights of both scales)"].append(cpu(make))
        st = engine._scale(engine.plan.first, None, None)
        rows["first step (128 px)"].append(cpu(lambda: st.step(1)))
        rows["start image: initial_image"].append(cpu(lambda: initial_image(c, cfg)))
        rows["start image: old, a StyleTransfer at 128 px"].append(
            cpu(lambda: StyleTransfer(c_first, [to_tensor(s[0])], cfg, backbone=net).image()))
    print(f"CPU s per call, median of {args.repeat}, 1 thread, capability "
          f"{torch.backends.cpu.get_cpu_capability()}, float32, --preset quick ({args.content} + {args.style}):")
    for name, values in rows.items():
        print(f"  {name:<48} {statistics.median(values):.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512", help="comma list of long sides (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="few steps everywhere: checks the machinery only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default: %(default)s)")
    ap.add_argument("--ref-steps", type=int, default=None, help="reference steps (default 300; quick: 20)")
    ap.add_argument("--timing-steps", type=int, default=None, help="timed steps per config (default 7; quick: 2)")
    ap.add_argument("--quality-sizes", default="256", help="sizes for the bfloat16 quality check ('' : none)")
    ap.add_argument("--no-bf16-reach", action="store_true", help="skip the bfloat16 run of (d)")
    ap.add_argument("--content", default="chelsea")
    ap.add_argument("--style", default="stained_glass")
    ap.add_argument("--json", default=None, help="also write all the numbers to this JSON file")
    ap.add_argument("--report", metavar="FILE.json", default=None, help="only print the table of a saved --json run")
    ap.add_argument("--classroom", action="store_true",
                    help="start-up, step and end-to-end CPU seconds (1 thread) of the quick and default presets")
    ap.add_argument("--plan", action="store_true",
                    help="CPU seconds of the engine's plan, its first step and the start image (issue 16)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of --plan (default: %(default)s)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.plan:
        plan_costs(args)
        return 0
    if args.worker:
        worker_main(args.worker)
        return 0
    if args.classroom:
        classroom(args)
        return 0
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        print(report(saved, saved["args"]["ref_steps"] or (20 if saved["args"]["quick"] else 300)))
        return 0

    sizes = [int(v) for v in args.sizes.split(",") if v]
    qsizes = [int(v) for v in args.quality_sizes.split(",") if v]
    ref_steps = args.ref_steps or (20 if args.quick else 300)
    timing = args.timing_steps or (2 if args.quick else 7)
    common = dict(threads=args.threads, content=args.content, style=args.style, warmup=1 if args.quick else 2,
                  timing_steps=timing)
    import torch

    from teachkit.transfer import cpu_bf16_native

    print(f"# teachkit transfer benchmark: torch {torch.__version__}, {args.threads} thread(s), "
          f"{os.cpu_count()} CPUs, CPU capability {torch.backends.cpu.get_cpu_capability()} "
          f"({cpu_bf16_native()[1]}), load {os.getloadavg()[0]:.1f}, content={args.content} style={args.style}",
          flush=True)
    results: dict = {"args": vars(args), "sizes": {}}
    for size in sizes:
        r: dict = {}
        job = dict(common, size=size)
        print(f"## {size} px", flush=True)
        r["timing"] = run_job(dict(job, kind="timing"))
        print("  timing (interleaved): " + ", ".join(
            f"{k} {statistics.median(v):.3f} s" for k, v in r["timing"]["times"].items()), flush=True)
        r["floor"] = run_job(dict(job, kind="floor"))
        print(f"  floor alone {statistics.median(r['floor']['times']):.3f} s", flush=True)
        for dt in ("float32", "bfloat16"):
            r[f"step-{dt}"] = run_job(dict(job, kind="step", dtype=dt))
            print(f"  step {dt:8s} alone {statistics.median(r[f'step-{dt}']['times']):.3f} s", flush=True)
        r["reference"] = run_job(dict(job, kind="reference", steps=ref_steps))
        target = r["reference"]["cost"]
        print(f"  reference  {ref_steps} steps {r['reference']['seconds']:.1f} s  J = {target:.4g}", flush=True)
        r["recipe"] = run_job(dict(job, kind="recipe", dtype="float32", target=target, extend=ref_steps))
        print(f"  recipe float32  reach {r['recipe']['reach']}", flush=True)
        if not args.no_bf16_reach:
            r["recipe-bf16-reach"] = run_job(dict(job, kind="recipe", dtype="bfloat16", target=target,
                                                  extend=ref_steps))
            print(f"  recipe bfloat16 reach {r['recipe-bf16-reach']['reach']}", flush=True)
        if size in qsizes:
            save = f"/tmp/teachkit_bench_{size}_f32.pt"
            r["recipe-f32"] = run_job(dict(job, kind="recipe", dtype="float32", save=save))
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
            print(f"  quality: f32 {r['recipe-f32']['final_cost_f32']:.4g}, bf16 {r['recipe-bf16']['final_cost_f32']:.4g},"
                  f" f32 seed 1 {r['recipe-seed1']['final_cost_f32']:.4g}", flush=True)
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

    t = lambda r, k: statistics.median(r["timing"]["times"][k])  # noqa: E731
    row("(a) floor: VGG19 fwd+bwd to relu5_1, s/step", lambda r: f"{t(r, 'floor'):.3f}")
    row("(b) teachkit step float32, s/step", lambda r: f"{t(r, 'float32'):.3f}")
    row("    ratio float32 step / floor (target <= 1.1)", lambda r: f"{t(r, 'float32') / t(r, 'floor'):.3f}")
    row("(b) teachkit step bfloat16, s/step", lambda r: f"{t(r, 'bfloat16'):.3f}")
    row("    speed-up bfloat16 vs float32", lambda r: f"{t(r, 'float32') / t(r, 'bfloat16'):.2f}x")
    row("    (each alone, separate processes: floor / f32 / bf16)",
        lambda r: f"{med(r['floor']):.3f} / {med(r['step-float32']):.3f} / {med(r['step-bfloat16']):.3f}")
    row(f"(c) reference: {ref_steps} L-BFGS steps, s", lambda r: f"{r['reference']['seconds']:.1f}")
    row(f"    reference J after {ref_steps} steps", lambda r: f"{r['reference']['cost']:.4g}")
    row("(d) default recipe: time to reach that J, s", lambda r: f"{r['recipe']['reach']['seconds']:.1f}")
    row("    ... at step (steps at full size; default split)",
        lambda r: f"{r['recipe']['reach']['step']} ({r['recipe']['reach']['steps_at_full_size']}; "
                  f"{'/'.join(map(str, r['recipe']['plan']))} at {'/'.join(map(str, r['recipe']['scales']))} px)")
    row("    ratio recipe / reference time (target <= 1/3)",
        lambda r: f"{r['recipe']['reach']['seconds'] / r['reference']['seconds']:.3f}")
    row("    default recipe's own steps: s / J at its end",
        lambda r: (f"{r['recipe']['seconds']:.1f} / {r['recipe']['cost_at_default_end']:.4g}"
                   if r["recipe"]["steps"] >= sum(r["recipe"]["plan"]) else "(target reached before its end)"))
    row("peak RSS floor, MiB (delta)", lambda r: f"{r['floor']['peak_rss_mib']:.0f} ({r['floor']['delta_rss_mib']:.0f})")
    row("peak RSS step float32, MiB (delta)", lambda r: f"{r['step-float32']['peak_rss_mib']:.0f} ({r['step-float32']['delta_rss_mib']:.0f})")
    row("peak RSS step bfloat16, MiB (delta)", lambda r: f"{r['step-bfloat16']['peak_rss_mib']:.0f} ({r['step-bfloat16']['delta_rss_mib']:.0f})")
    row("peak RSS reference, MiB (delta)", lambda r: f"{r['reference']['peak_rss_mib']:.0f} ({r['reference']['delta_rss_mib']:.0f})")
    row("peak RSS default recipe, MiB (delta)", lambda r: f"{r['recipe']['peak_rss_mib']:.0f} ({r['recipe']['delta_rss_mib']:.0f})")
    row("(d') bf16 recipe: time to reach the reference J, s",
        lambda r: f"{r['recipe-bf16-reach']['reach']['seconds']:.1f} (step {r['recipe-bf16-reach']['reach']['step']})")
    row("    ratio bf16 recipe / reference time",
        lambda r: f"{r['recipe-bf16-reach']['reach']['seconds'] / r['reference']['seconds']:.3f}")
    row("(e) default recipe f32: s / final J", lambda r: f"{r['recipe-f32']['seconds']:.1f} / {r['recipe-f32']['final_cost_f32']:.4g}")
    row("    default recipe bf16: s / final J (in float32)",
        lambda r: f"{r['recipe-bf16']['seconds']:.1f} / {r['recipe-bf16']['final_cost_f32']:.4g}")
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
