"""Grading a class of 30 files with ``teachkit exercises check``: a script, not a test.

The class: 18 ``.py`` files (9 right, 9 with one planted mistake each) and 12 notebooks (the six lessons'
teacher versions, which pass, and their student versions, not written yet), in one folder.  Each run
grades the whole folder as the command does (``grade_files``: a worker process per file, the checks in
this process), once with each ``--jobs`` value, in one run, and prints the wall time, the time per file,
the CPU seconds (this process and the workers: what a busy machine inflates least), the 1-minute load
average before and after, and how many exercises passed -- the same number every time, or the grading
is wrong (the right count is 110 of 132: 54 + 44 in the .py files, 12 in the teacher's notebooks).

    .venv/bin/python benchmarks/grade.py                 # --jobs 1,2
    .venv/bin/python benchmarks/grade.py --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from machine import cpu_line  # noqa: E402

from teachkit.exercises.grade import grade_files  # noqa: E402
from teachkit.notebooks import build, lessons  # noqa: E402

RIGHT = '''
import torch


def content_cost(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2)


def gram_matrix(a):
    A = a.reshape(a.shape[1], -1)
    return A @ A.T


def layer_style_cost(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (2 * n_H * n_W * n_C)


def style_cost(a_S, a_G, lambdas):
    J = 0
    for lam, s, g in zip(lambdas, a_S, a_G):
        J = J + lam * layer_style_cost(s, g)
    return J


def total_cost(J_content, J_style, alpha=10, beta=40):
    return alpha * J_content + beta * J_style


def rf_sizes(layers):
    sizes, size, jump = [], 1, 1
    for k, s in layers:
        size += (k - 1) * jump
        jump *= s
        sizes.append(size)
    return sizes
'''

#: one planted mistake per wrong file: (what the right file says, what the wrong one says)
MISTAKES = [
    ("0.5 * torch.sum((a_C - a_G) ** 2)", "0.5 * torch.sum(torch.abs(a_C - a_G))"),
    ("0.5 * torch.sum((a_C - a_G) ** 2)", "torch.sum((a_C - a_G) ** 2)"),
    ("A @ A.T", "A.T @ A"),
    ("(2 * n_H * n_W * n_C)", "(2 * n_H * n_W * n_C) ** 2"),
    ("J = J + lam * layer_style_cost(s, g)", "J = lam * layer_style_cost(s, g)"),
    ("alpha * J_content + beta * J_style", "beta * J_content + alpha * J_style"),
    ("alpha * J_content + beta * J_style", "10 * J_content + 40 * J_style"),
    ("size += (k - 1) * jump", "size += k - 1"),
    ("return 0.5 * torch.sum((a_C - a_G) ** 2)", "return float(0.5 * torch.sum((a_C - a_G) ** 2))"),
]


def write_class(folder: Path) -> list[Path]:
    paths = []
    for i in range(9):
        paths.append(folder / f"right{i:02d}.py")
        paths[-1].write_text(RIGHT, encoding="utf-8")
    for i, (right, wrong) in enumerate(MISTAKES):
        assert right in RIGHT, right
        paths.append(folder / f"wrong{i:02d}.py")
        paths[-1].write_text(RIGHT.replace(right, wrong, 1), encoding="utf-8")
    for les in lessons():
        for solutions in (True, False):
            lang = "zh" if les.number % 2 == 0 else "en"
            paths.append(folder / f"{'teacher' if solutions else 'student'}{les.number}.ipynb")
            paths[-1].write_text(json.dumps(build(les.number, lang, solutions), ensure_ascii=False), encoding="utf-8")
    return paths


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (the checks) and its ended children (the workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values to time (default: 1,2)")
    args = parser.parse_args()
    print(cpu_line(), f"; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_class(Path(tmp))
        n_py, n_nb = sum(p.suffix == ".py" for p in paths), sum(p.suffix == ".ipynb" for p in paths)
        print(f"class: {len(paths)} files ({n_py} .py, {n_nb} .ipynb)")
        print(f"{'jobs':>4}  {'wall s':>7}  {'s/file':>6}  {'CPU s':>6}  {'load':>9}  exercises passed")
        for jobs in (int(j) for j in args.jobs.split(",")):
            load0, cpu0, t0 = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
            results = grade_files(paths, jobs=jobs)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
            passed = sum(1 for found in results.values() for reason in found.values() if reason is None)
            total = sum(len(found) for found in results.values())
            print(f"{jobs:>4}  {wall:>7.1f}  {wall / len(paths):>6.2f}  {cpu:>6.1f}  {load0:>4.1f}-{os.getloadavg()[0]:<4.1f}"
                  f"  {passed} of {total}", flush=True)


if __name__ == "__main__":
    main()
