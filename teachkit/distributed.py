"""A dataset scan on ``torch.distributed``, started by ``torchrun -m teachkit patches scan ...``: each rank
joins torchrun's group (gloo on the CPU, nccl on CUDA), scans its share ``shard=(rank, world)``, and the
ranks' top-k tables meet through ``all_gather``; :func:`teachkit.patches.merge` folds them in rank order
into the one-process scan, array by array.  Every rank must see the same dataset (fingerprints compared)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import threading
from typing import Iterator, Sequence

import numpy as np
import torch

from .atlas import Atlas
from .messages import TeachkitError
from .progress import Progress, ProgressCallback

__all__ = ["launched", "process_group", "scan", "gather_atlas", "device_for_rank", "DistributedError"]


class DistributedError(TeachkitError, RuntimeError):
    """The processes of one distributed scan disagree (dataset, settings)."""


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    except ValueError:
        return False


def device_for_rank(device: "str | torch.device | None" = None) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when CUDA is asked for (or is there and nothing
    was asked), else the CPU.  ``'cuda'`` without a number means this rank's own GPU."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if dev == torch.device("cuda") else dev


@contextlib.contextmanager
def process_group(device: "str | torch.device" = "cpu", timeout_s: float = 3600.0) -> Iterator[None]:
    """Join the process group of torchrun's environment (gloo for a CPU ``device``, nccl for CUDA) and
    leave it at the end; inside an already initialised group, nothing is joined or left."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=_dt.timedelta(seconds=timeout_s))
    try:
        yield
        # Every rank done with its collectives before any leaves: a rank that tears its connections
        # down while another still reads from them makes gloo abort that other process.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _all_gather(t: torch.Tensor) -> list[np.ndarray]:
    """Every rank's copy of ``t`` (same shape and dtype on every rank), as numpy arrays in rank order."""
    import torch.distributed as dist

    t = t.to(torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu").contiguous()
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [o.cpu().numpy() for o in out]


def gather_atlas(part: Atlas, dst: int = 0) -> Atlas | None:
    """Merge every rank's partial atlas on rank ``dst`` (None on the others); a collective.  The metadata
    travels as objects, the top-k tables as tensors."""
    import torch.distributed as dist

    from .patches import merge

    world, rank = dist.get_world_size(), dist.get_rank()
    metas: list = [None] * world
    dist.all_gather_object(metas, part.meta)
    for key in ("backbone", "weights_id", "image_size", "k", "positions_per_image", "per_image", "min_inside",
                "layers", "channels"):
        if any(m[key] != metas[0][key] for m in metas):
            raise DistributedError("dist.settings_differ", key=key)
    values, stacks = {}, {}
    for n in part.layers:
        values[n] = _all_gather(torch.from_numpy(part.values[n]))
        stacks[n] = _all_gather(torch.from_numpy(np.stack([a[n].astype(np.int64) for a in (
            part.images, part.ys, part.xs, part.sources)])))
    if rank != dst:
        return None
    atlases = [Atlas(meta, {n: values[n][r] for n in part.layers}, *({n: stacks[n][r][j] for n in part.layers}
                                                                   for j in range(4))) for r, meta in enumerate(metas)]
    whole = atlases[0]
    for other in atlases[1:]:  # rank order = image order: ties go to the earlier image, as in one process
        whole = merge(whole, other)
    whole.meta["stopped"] = next((m.get("stopped") for m in metas if m.get("stopped")), "")
    whole.meta["scan_seconds"] = max(float(m["scan_seconds"]) for m in metas)  # wall time of the slowest
    whole.meta["processes"] = world
    whole._dataset = part._dataset
    return whole


def _check_same_dataset(ds) -> None:
    import torch.distributed as dist

    world = dist.get_world_size()
    seen: list = [None] * world
    dist.all_gather_object(seen, (ds.fingerprint, len(ds)))
    for r, (fp, n) in enumerate(seen):
        if fp != seen[0][0]:
            raise DistributedError("dist.datasets_differ", rank=r, n=n, theirs=fp, n0=seen[0][1], ours=seen[0][0])


def scan(backbone, dataset, layers: Sequence[str] | None = None, *, callback: ProgressCallback | None = None,
         stop: threading.Event | None = None, dst: int = 0, **options) -> Atlas | None:
    """:func:`teachkit.patches.scan` by every rank of the process group: each scans ``shard=(rank, world)``
    (the other options must be the same on every rank) and rank ``dst`` gets the whole atlas, the others
    None.  ``callback`` sees this rank's progress (``values`` carry ``rank`` and ``world``); a rank
    stopped early still joins the merge (the result is then partial)."""
    import torch.distributed as dist

    from . import patches
    from .datasets import get_dataset

    world, rank = dist.get_world_size(), dist.get_rank()
    ds = get_dataset(dataset)
    _check_same_dataset(ds)

    def mine(p: Progress):
        values = {**p.values, "rank": rank, "world": world}
        return callback is not None and callback(dataclasses.replace(p, values=values))

    part = patches.scan(backbone, ds, layers, shard=(rank, world), callback=mine, stop=stop, **options)
    return gather_atlas(part, dst)
