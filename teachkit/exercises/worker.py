"""The grader's worker process: loads one student file and answers calls of its functions; it decides nothing.

Run by path, so that it never imports teachkit (``import teachkit...`` gives stubs here).  One JSON object
per line: ``{"started"}``, then the parent's ``{"code", "filename", "names", "memory_mb", "file_mb"}`` gets
``{"ready": {name: parameters | "foreign" | None}}``, and ``{"call", "id", "args"}`` or ``{"grad", "output"}``
get ``{"value", "changed"}`` or ``{"raised": {"type", "message", "where"}}``.  :func:`encode` and the strict
:func:`decode` are the codec of both sides.
"""

from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import sys
import types

import numpy as np
import torch

DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
MAX_ELEMENTS = 1 << 20  # in one value
MAX_DEPTH = 6


def encode(x, depth: int = 0):
    """A value as JSON: numbers, strings, lists, tuples, tensors and arrays; anything else by its type's name."""
    if x is None or type(x) in (bool, int, float, str):
        return x
    if isinstance(x, torch.Tensor) and not x.is_complex():
        t = x.detach().cpu()
        t = t.float() if t.dtype == torch.bfloat16 else t
        if str(t.dtype)[6:] in DTYPES:
            return {"tensor": str(t.dtype)[6:], "shape": list(t.shape), "grad": bool(x.requires_grad),
                    "data": base64.b64encode(t.contiguous().numpy().tobytes()).decode()}
    if isinstance(x, (np.ndarray, np.generic)) and x.dtype.name in DTYPES:
        return {"array": x.dtype.name, "shape": list(np.shape(x)),
                "data": base64.b64encode(np.ascontiguousarray(x).tobytes()).decode()}
    if isinstance(x, (list, tuple)) and depth < MAX_DEPTH:
        items = [encode(v, depth + 1) for v in x]
        return {"tuple": items} if isinstance(x, tuple) else items
    return {"object": type(x).__name__}


def decode(x, depth: int = 0):
    """The inverse of :func:`encode`; anything else raises ValueError."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deep")
    if x is None or type(x) in (bool, int, float) or (type(x) is str and len(x) <= 1000):
        return x
    if type(x) is list and len(x) <= 10000:
        return [decode(v, depth + 1) for v in x]
    keys = set(x) if type(x) is dict else None
    if keys == {"tuple"} and type(x["tuple"]) is list:
        return tuple(decode(x["tuple"], depth + 1))
    if keys == {"object"} and type(x["object"]) is str and x["object"].isidentifier() and len(x["object"]) < 100:
        return type(x["object"], (), {})()  # stands for what it was: only its type's name matters
    if keys in ({"tensor", "shape", "grad", "data"}, {"array", "shape", "data"}):
        dtype, shape = x.get("tensor", x.get("array")), x["shape"]
        if dtype not in DTYPES or type(shape) is not list or len(shape) > 8 or type(x["data"]) is not str \
                or not all(type(n) is int and 0 <= n <= MAX_ELEMENTS for n in shape) \
                or int(np.prod(shape)) > MAX_ELEMENTS or type(x.get("grad", False)) is not bool:
            raise ValueError("bad array")
        arr = np.frombuffer(base64.b64decode(x["data"], validate=True), dtype=dtype).reshape(shape).copy()
        if "array" in x:
            return arr[()] if not shape else arr
        return torch.from_numpy(arr).requires_grad_(x["grad"] and arr.dtype.kind == "f")
    raise ValueError("unexpected value")


def leaves(x) -> list:
    """The tensors in a value (lists and tuples opened), in order."""
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in leaves(v)]
    return [x] if isinstance(x, (torch.Tensor, np.ndarray)) else []


def _raised(exc: BaseException) -> dict:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    try:
        message = str(exc)[:500]
    except Exception:  # a student's exception whose __str__ fails
        message = ""
    return {"type": type(exc).__name__[:100], "message": message, "where": tb.tb_frame.f_code.co_name[:100] if tb else ""}


class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``teachkit`` and its modules, as empty stand-ins: every name in them is a function that fails."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split(".")[0] == "teachkit" else None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _absent
        return module

    def exec_module(self, module):
        pass


class TeachkitNotAvailable(RuntimeError):
    """What every name of the stand-in teachkit raises when called."""


def _absent(name: str):
    if name.startswith("__"):
        raise AttributeError(name)

    def absent(*args, **kwargs):
        raise TeachkitNotAvailable(name)
    return absent


def _limit(memory_mb: int, file_mb: int) -> None:
    """Memory (above what is mapped now), file size, no new processes, no core files: where the OS has them."""
    try:
        import resource
    except ImportError:  # Windows: the parent's time limits and capped output only
        return
    try:
        mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        mapped = 0
    limits = [("RLIMIT_FSIZE", file_mb << 20), ("RLIMIT_NPROC", 0), ("RLIMIT_CORE", 0)]
    limits += [("RLIMIT_AS", mapped + (memory_mb << 20))] if mapped else []
    for name, value in limits:
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError):
                pass


def main() -> None:
    del sys.path[0]  # this file's folder
    torch.set_num_threads(1)
    torch.ones(2, requires_grad=True).sum().backward()  # torch's lazy set-up, before the limits
    # the protocol gets private copies of stdin/stdout; the student's prints go to the parent's capped file
    inp, out = os.fdopen(os.dup(0), "r", encoding="utf-8"), os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    sys.meta_path.insert(0, _Stubs())

    def send(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    send({"started": True})
    setup = json.loads(inp.readline())
    _limit(setup["memory_mb"], setup["file_mb"])
    namespace = {"__name__": "__submission__"}
    for piece in setup["code"]:  # statement by statement: one that fails does not keep the others out
        try:
            exec(compile(piece, setup["filename"], "exec"), namespace)  # noqa: S102 -- the student's code, by design
        except Exception:
            pass
    functions, status = {}, {}
    for name in setup["names"]:
        fn = namespace.get(name)
        own = inspect.isfunction(fn) and fn.__code__.co_filename == setup["filename"]
        status[name] = None if fn is None else list(inspect.signature(fn).parameters)[:8] if own else "foreign"
        if own:
            functions[name] = fn
    send({"ready": status})
    graphs: dict = {}
    for line in inp:
        request = json.loads(line)
        try:
            if "call" in request:
                args = decode(request["args"])
                before = [t.detach().clone() if isinstance(t, torch.Tensor) else t.copy() for t in leaves(args)]
                value = functions[request["call"]](*args)
                changed = any(not (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b))
                              for a, b in zip(before, leaves(args)))
                if isinstance(value, torch.Tensor) and value.requires_grad:
                    graphs[request["id"]] = (value, [t for t in leaves(args) if getattr(t, "requires_grad", False)])
                send({"value": encode(value), "changed": changed})
            else:
                value, inputs = graphs.pop(request["grad"])
                grads = torch.autograd.grad(value, inputs, decode(request["output"]), allow_unused=True)
                send({"value": [encode(g) for g in grads], "changed": False})
        except BaseException as exc:  # noqa: BLE001 -- whatever the student's code raises is the answer
            send({"raised": _raised(exc)})


if __name__ == "__main__":
    main()
