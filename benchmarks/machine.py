"""Which machine a figure came from: the one home of "which CPU is this" for every benchmark.

Every figure in the README and the RESULTS files names its CPU (AVX2 or AVX-512/bf16, cores) or GPU,
because a VGG19 step differs by about 3x between the two kinds of CPU.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name."""
    return _cpuinfo("model name") or platform.processor() or "unknown CPU"


def cpu_flags() -> str:
    """'AVX-512 + bf16', 'AVX-512', 'AVX2', 'no AVX2' or '?' (not Linux)."""
    flags = set((_cpuinfo("flags") or "").split())
    if not flags:
        return "?"
    if "avx512f" in flags:
        return "AVX-512" + (" + bf16" if "avx512_bf16" in flags else "")
    return "AVX2" if "avx2" in flags else "no AVX2"


def cpu_line() -> str:
    """The machine in one line: CPU model and kind, cores, torch's CPU capability, threads, GPU if any."""
    import torch

    from teachkit.transfer import cpu_bf16_native

    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu_name()} ({cpu_flags()}), {os.cpu_count()} cores, torch {torch.__version__} capability "
            f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads "
            f"({cpu_bf16_native()[1]}){gpu}")
