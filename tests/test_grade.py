"""`teachkit exercises check`: a class of correct, wrong and hostile files is graded right.

No fake pass (imported functions, code that runs while the file loads, forged answers), no lost row (a
folder, a missing file, a file that crashes, loops, floods or exhausts memory), no surviving child
process, a CSV that no spreadsheet runs, a terminal table without control characters, aligned in 中文.
Every file is graded once (one module fixture, two files at a time); the tests read that table.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from teachkit.exercises.grade import grade_files, table
from teachkit.messages import text
from teachkit.notebooks import build

MARK = "teachkit-grade-test-7f3a"  # in the command lines of the processes the hostile files start

CORRECT = '''
import torch

unroll = lambda a: a.reshape(a.shape[1], -1)  # a module-level helper


def content_cost(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2)


def _gram(a):
    A = unroll(a)
    return A @ A.T


gram_matrix = _gram


def layer_style_cost(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (2 * n_H * n_W * n_C)


def style_cost(a_S, a_G, lambdas):
    return sum(lam * layer_style_cost(s, g) for lam, s, g in zip(lambdas, a_S, a_G))


def total_cost(J_content, J_style, alpha=10, beta=40):
    return alpha * J_content + beta * J_style


def rf_sizes(layers):
    sizes, size, jump = [], 1, 1
    for k, s in layers:
        size += (k - 1) * jump
        jump *= s
        sizes.append(size)
    return sizes


print("a cell that must not run when grading")
raise SystemExit("nor this one")
'''

TOTAL = '''

def total_cost(J_content, J_style, alpha=10, beta=40):
    return alpha * J_content + beta * J_style
'''

WRONG = '''
import torch


def content_cost(a_C, a_G):
    return torch.sum(a_C - a_G)


def gram_matrix(a):
    return a.reshape(a.shape[1], -1).T @ a.reshape(a.shape[1], -1)


def layer_style_cost(a_S, a_G):
    return torch.sum(a_S - a_G)


def style_cost(a_S, a_G, lambdas):
    return sum(torch.sum(s) for s in a_S)


def total_cost(J_content, J_style, alpha=10, beta=40):
    return J_content + J_style


def rf_sizes(layers):
    return [1 for _ in layers]
'''

# Code that runs while the file loads, trying to decide the verdict: patch the checks, forge answers on
# every descriptor, leave a result file behind, end the process
PATCH = '''
import os


class Cheat:
    import teachkit.exercises.checks as checks
    checks.check_content_cost = checks.check_total_cost = lambda *a, **k: None
    for fd in range(3, 64):
        try:
            os.write(fd, b'{"ready": {}}\\n{"value": 1.0, "changed": false}\\n')
        except OSError:
            pass


def default(result=open("result.json", "w").write('{"content_cost": null}')):
    return result
''' + WRONG

EXIT = '''
import os


def ends(f):
    os._exit(0)


@ends
def total_cost(J_content, J_style, alpha=10, beta=40):
    return 1.0
'''

LOOP = '''
import torch


def rf_sizes(layers):
    while True: pass


def content_cost(a_C, a_G):
    return 0.5 * torch.sum((a_C - a_G) ** 2)
'''

CHILDREN = '''
import os
import subprocess
import sys

WRITER = "import sys, time; time.sleep(2); open(sys.argv[1], 'w').write('late')"


class Spawn:  # a child holding the output, a fork, and a writer in a session of its own
    subprocess.Popen(["sleep", "40", "{mark}"])
    subprocess.Popen([sys.executable, "-c", WRITER, r"{folder}/escaped.txt", "{mark}"], start_new_session=True)
    if os.fork() == 0:
        import time
        time.sleep(2)
        open(r"{folder}/forked.txt", "w").write("late")
        os._exit(0)
''' + TOTAL

MEMORY = '''
import torch


class Big:
    try:
        block = bytearray(1_500_000_000)
    except MemoryError:
        block = None


def content_cost(a_C, a_G):
    block = bytearray(1_500_000_000)
    return 0.5 * torch.sum((a_C - a_G) ** 2)
''' + TOTAL

FLOOD = '''
import sys


class Flood:
    try:
        for _ in range(50):
            sys.stderr.write("x" * 1_000_000)
    except OSError:
        pass
''' + TOTAL

FORGE = '''
import os
import torch


def content_cost(a_C, a_G):
    for fd in range(3, 64):
        try:
            os.write(fd, b'{"raised": {"type": "X"}}\\n')
        except OSError:
            pass
    return 0.5 * torch.sum((a_C - a_G) ** 2)
''' + TOTAL

PORT = '''
import torch


def compute_content_cost(content_output, generated_output):
    a_C = content_output[-1]
    a_G = generated_output[-1]
    m, n_H, n_W, n_C = a_G.shape
    a_C_unrolled = torch.reshape(a_C, shape=[m, -1, n_C])
    a_G_unrolled = torch.reshape(a_G, shape=[m, -1, n_C])
    return torch.sum(torch.square(a_C_unrolled - a_G_unrolled)) / (4.0 * n_H * n_W * n_C)


def gram_matrix(A):
    return torch.matmul(A, torch.transpose(A, 0, 1))


def compute_layer_style_cost(a_S, a_G):
    m, n_H, n_W, n_C = a_G.shape
    a_S = torch.transpose(torch.reshape(a_S, shape=[-1, n_C]), 0, 1)
    a_G = torch.transpose(torch.reshape(a_G, shape=[-1, n_C]), 0, 1)
    return torch.sum(torch.square(gram_matrix(a_S) - gram_matrix(a_G))) / (4.0 * ((n_H * n_W * n_C) ** 2))


def compute_style_cost(style_image_output, generated_image_output, STYLE_LAYERS=[("block1_conv1", 1.0)]):
    J_style = 0
    a_S = style_image_output[:-1]
    a_G = generated_image_output[:-1]
    for i, weight in zip(range(len(a_S)), STYLE_LAYERS):
        J_style += weight[1] * compute_layer_style_cost(a_S[i], a_G[i])
    return J_style
''' + TOTAL


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    files = {
        "alice_all.py": CORRECT,
        "alice_lesson4.ipynb": json.dumps(build(4, "en", solutions=False)),
        "bob.py": "\ufeff" + CORRECT.replace("alpha * J_content + beta * J_style",  # Notepad's BOM, CRLF
                                              "beta * J_content + alpha * J_style").replace("\n", "\r\n"),
        "carol.py": "from teachkit.costs import content_cost, gram_matrix, total_cost\n",
        "dave.py": PATCH,
        "eve\x1b[2J\nx.py": EXIT,  # control characters in a name
        "frank.py": LOOP,
        "grace.py": CHILDREN.replace("{mark}", MARK).replace("{folder}", str(folder)),
        "heidi.py": MEMORY,
        "=HYPERLINK(ivan).py": FLOOD,  # a name a spreadsheet would run
        "judy.py": FORGE,
    }
    for name, code in files.items():
        (folder / name).write_text(code, encoding="utf-8", newline="")
    (folder / "kevin").mkdir()
    paths = [folder / n for n in files] + [folder / "kevin", folder / "nobody.py"]
    results = grade_files(paths, timeout=8, jobs=2)
    time.sleep(3)  # what a process that escaped the grading would write by now
    return folder, {Path(p).name: found for p, found in results.items()}, results


def _ids(found: dict) -> dict:
    return {e: (m.id if m is not None else None) for e, m in found.items()}


def test_correct_work_passes_with_helpers_aliases_bom_and_crlf(graded):
    _, by, _ = graded
    assert set(_ids(by["alice_all.py"]).values()) == {None} and len(by["alice_all.py"]) == 6
    bob = _ids(by["bob.py"])
    assert bob["content_cost"] is None and bob["total_cost"] == "exercises.total_swapped"


def test_no_fake_pass(graded):
    _, by, _ = graded
    assert set(_ids(by["carol.py"]).values()) == {"exercises.grade.not_own"}  # teachkit's own functions
    assert None not in _ids(by["dave.py"]).values()  # the checks patched, answers forged: nothing passes
    assert _ids(by["eve\x1b[2J\nx.py"]) == {"__file__": "exercises.grade.ended"}
    judy = _ids(by["judy.py"])
    assert judy["content_cost"] == "exercises.grade.bad_reply" and judy["total_cost"] is None


def test_each_exercise_has_its_own_time_limit_and_every_file_its_row(graded):
    folder, by, results = graded
    assert len(results) == 13
    frank = by["frank.py"]
    assert frank["receptive_field"].id == "exercises.too_slow" and frank["content_cost"] is None
    assert by["kevin"]["__file__"].params["reason"].id == "exercises.grade.not_a_file"
    assert by["nobody.py"]["__file__"].params["reason"].id == "image.not_found"
    assert by["=HYPERLINK(ivan).py"]["total_cost"] is None  # 50 MB on stderr while loading: capped, nothing lost


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the limits and /proc of Linux")
def test_no_child_survives_and_memory_is_limited(graded):
    folder, by, _ = graded
    assert by["grace.py"]["total_cost"] is None  # a child holding the output did not make it time out
    assert not (folder / "escaped.txt").exists() and not (folder / "forked.txt").exists()
    alive = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            alive += [entry.name] if MARK.encode() in (entry / "cmdline").read_bytes() else []
        except OSError:
            pass
    assert not alive
    heidi = by["heidi.py"]
    assert heidi["content_cost"].id == "exercises.raised" and "MemoryError" in heidi["content_cost"].params["error"]
    assert heidi["total_cost"] is None


def test_csv_is_safe_and_has_a_score_and_a_row_per_student(graded):
    _, _, results = graded
    rows = list(csv.reader(io.StringIO(table(results, "en", as_csv=True))))
    assert rows[0][:2] == ["student", "file"] and rows[0][-1] == "score"
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
        assert not any(unicodedata.category(ch)[0] == "C" for cell in row for ch in cell), row
    by_file = {Path(r[1]).name: dict(zip(rows[0], r)) for r in rows[1:]}
    assert by_file["alice_all.py"]["score"] == "6/6" and by_file["carol.py"]["score"] == "0/6"
    alice = [r for r in rows if r[0] == "alice" and "2" in r[1] and not r[1].endswith((".py", ".ipynb"))]
    assert len(alice) == 1 and alice[0][-1] == "6/6"  # the notebook's unwritten content_cost: passed elsewhere
    assert by_file["alice_lesson4.ipynb"]["content_cost"] == text("exercises.not_written", "en", name="content_cost")


def test_the_chinese_table_is_aligned_and_says_its_reasons_in_chinese(graded):
    _, _, results = graded
    out = table(results, "zh")
    assert "\x1b" not in out and "GradeError" not in out
    grid = out.split("\n\n")[0].splitlines()
    width = lambda s: sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)  # noqa: E731
    assert grid[0].startswith("文件") and len({width(line) for line in grid[2:]}) == 1
    reasons = [line for line in out.splitlines() if re.match(r"\[\d+\] ", line)]
    assert reasons and all(re.search("[\u4e00-\u9fff]", line) for line in reasons)


def test_the_assignments_port_passes_with_its_layout_and_constant(tmp_path, capsys):
    from teachkit.cli import main

    port = tmp_path / "port.py"
    port.write_text(PORT, encoding="utf-8")
    assert main(["exercises", "check", str(port), "--layout", "assignment", "--constant", "assignment", "--csv",
                 "--lang", "en"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[1][-1] == "5/5", rows
    assert main(["exercises", "check", str(port), "--layout", "assignment", "--lang", "en"]) == 0
    out = capsys.readouterr().out  # the notes' constant expected: the hint names this command's option
    assert "--constant assignment" in out and "constant='" not in out


def test_bad_options_are_one_line(capsys):
    from teachkit.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["exercises", "check", "x.py", "--timeout", "inf"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "inf" in err and "Traceback" not in err
