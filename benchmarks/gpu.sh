#!/usr/bin/env bash
# GPU smoke test + benchmark of the style-transfer engine, in one go (a few minutes on one GPU).
#
#   bash benchmarks/gpu.sh              # uses .venv/bin/python (or PY=/path/to/python)
#
# 1. smoke: a 64-px transfer on the GPU finishes, with finite costs and the right size, and its
#    first step's terms match a CPU run's to 1e-2 (same seed, float32; cuDNN may use TF32);
# 2. floor vs step at 512 px: a bare VGG19 forward + backward to relu5_1, and StyleTransfer.step
#    (float32), medians of timed blocks after warm-up, with torch.cuda.synchronize() around them;
#    target: step <= 1.3x floor;
# 3. engine time of the default transfer at 512 px and at 1024 px (TransferResult.seconds, net
#    already loaded; target at 1024 px <= 5 s), and the wall time of the CLI's 512-px default
#    (`teachkit transfer --size 512`, process start to PNG written).
# Prints the GPU's name with every figure.  Needs a CUDA build of torch; exits 1 without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export TEACHKIT_OFFLINE=1
OUT=${OUT:-/tmp}

"$PY" - <<'EOF'
import math, statistics, time
import torch

if not torch.cuda.is_available():
    raise SystemExit("no CUDA GPU here: nothing to measure")
from teachkit.features import load_backbone
from teachkit.images import to_tensor
from teachkit.transfer import StyleTransfer, TransferConfig, load_inputs, transfer

gpu = torch.cuda.get_device_name()
print(f"GPU: {gpu}; torch {torch.__version__}")
net = load_backbone("vgg19", device="cuda")
cpu_net = load_backbone("vgg19", device="cpu")

# ---- 1. smoke ---------------------------------------------------------------------------------
cfg = TransferConfig(size=64, steps=5, preview_every=0, dtype="float32")
r = transfer("chelsea", "stained_glass", cfg, backbone=net)
assert max(r.image.size) == 64 and len(r.history) == 5, (r.image.size, len(r.history))
assert all(math.isfinite(v) for v in r.costs.values() if v == v), r.costs
c, (s,) = load_inputs("chelsea", ["stained_glass"], cfg)
first = {}
for name, n in (("cuda", net), ("cpu", cpu_net)):
    st = StyleTransfer(to_tensor(c), to_tensor(s), cfg, backbone=n)
    first[name] = st.step(1)[0]
for k in ("content", "style", "total"):
    a, b = first["cuda"][k], first["cpu"][k]
    assert abs(a - b) <= 1e-2 * abs(b), (k, a, b)  # cuDNN may use TF32 for convolutions
print("smoke: OK (64 px, 5 steps on the GPU; first-step terms match the CPU's to 1e-2)")

# ---- 2. floor vs step at 512 px ----------------------------------------------------------------
def timed(fn, blocks=5, per_block=10, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(per_block):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / per_block)
    return statistics.median(times)

c5, (s5,) = load_inputs("chelsea", ["stained_glass"], TransferConfig(size=512))
x = torch.rand_like(to_tensor(c5)).cuda().requires_grad_(True)
def floor():
    a = net.extract(x, ["relu5_1"])["relu5_1"]
    a.pow(2).mean().backward()
    x.grad = None
floor_s = timed(floor)
st = StyleTransfer(to_tensor(c5), to_tensor(s5), TransferConfig(size=512, preview_every=0), backbone=net)
step_s = timed(lambda: st.step(10), per_block=1) / 10
print(f"512 px on {gpu}: floor {1000 * floor_s:.2f} ms, StyleTransfer.step {1000 * step_s:.2f} ms, "
      f"ratio {step_s / floor_s:.2f} (target <= 1.3)")

# ---- 3. whole transfers ------------------------------------------------------------------------
for size in (512, 1024):
    cfg = TransferConfig(size=size, preview_every=0)
    transfer("chelsea", "stained_glass", TransferConfig(size=64, steps=3, preview_every=0), backbone=net)
    torch.cuda.synchronize()
    r = transfer("chelsea", "stained_glass", cfg, backbone=net)
    print(f"default transfer {size} px ({len(r.history)} steps, scales {r.config.scales}) on {gpu}: "
          f"engine {r.seconds:.2f} s" + ("  (target <= 5 s)" if size == 1024 else ""))
EOF

start=$(date +%s.%N)
"$PY" -m teachkit.cli transfer --size 512 -o "$OUT/gpu_transfer_512.png" --quiet
end=$(date +%s.%N)
echo "CLI default at 512 px, process start to PNG written: $(echo "$end - $start" | bc) s"
