"""Every bad input we know of, across every command-line tool: each must end
with exit status 2 and exactly one line on stderr (no traceback).

The table below is the single list. Each case runs in this process through
the tool's ``main(argv)`` (a subprocess per case would cost seconds of
imports each), with a time limit, and under an address-space limit so that
a tool that tries to allocate terabytes fails here instead of being killed.

    MDTHEORY_WRITE_BAD_INPUTS=1 python -m pytest tests/test_bad_inputs.py

also rewrites docs/bad_inputs.md from the outcomes (input, exit status,
message), so the document always shows what the code actually does.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from mdtheory.cli import run_cli

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "bad_inputs.md"
TIME_LIMIT_S = 20
EXTRA_ADDRESS_SPACE = 6 << 30  # what a case may map beyond what the test process already has

TOOLS = {  # the prefix shown in the table -> module whose main(argv) the tool runs
    "derive": "mdtheory.derive.__main__",
    "plots": "mdtheory.plots.__main__",
    "paper_tables": "mdtheory.plots.paper_tables",
    "train": "mdtheory.train.__main__",
    "parity.run": "experiments.parity.run",
    "parity.summarize": "experiments.parity.summarize",
    "lm.sweep": "experiments.lm.sweep",
    "lm.durability": "experiments.lm.durability",
}


@dataclass
class Case:
    tool: str
    argv: list[str]
    what: str                                   # the bad input, in words
    prepare: Callable[[Path], None] | None = None  # writes files under the case's folder
    extra: dict = field(default_factory=dict)


# --- files that the cases need ----------------------------------------------------

def _file(rel: str, content: bytes | str = "x"):
    def make(tmp: Path):
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return make


def _both(*makers):
    def make(tmp: Path):
        for m in makers:
            m(tmp)
    return make


def _dir(rel: str):
    return lambda tmp: (tmp / rel).mkdir(parents=True, exist_ok=True)


_HELD = []  # open lock files: the lock lasts as long as the test process


def _held(rel: str, pid: str = "12345"):
    """A results root held by another sweep (its lock file, flocked through
    an open file of its own, as another process's would be)."""
    def make(tmp: Path):
        import fcntl
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp / rel, os.O_RDWR | os.O_CREAT)
        os.write(fd, pid.encode())
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _HELD.append(fd)
    return make


def _fifo(rel: str):
    def make(tmp: Path):
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(tmp / rel)
    return make


_PARITY_METRICS = '{"step": 10, "loss": 0.7, "train_acc": 0.5, "val_acc": 0.5}\n'
_CONFIG = '{"task": {"name": "parity", "n": 8, "k": 2, "objective": "md", "window": [0, 0.3]}, "train": {}}\n'
TINY = ["--n", "8", "--k", "2", "--train-size", "64", "--val-size", "32", "--n-layer", "1",
        "--n-head", "1", "--n-embd", "8", "--batch-size", "16", "--steps", "4", "--eval-every", "2",
        "--no-progress", "--threads", "1"]

CASES = [
    # derive
    Case("derive", ["--window", "0.3", "0.2", "--json"], "window with T0 > T1"),
    Case("derive", ["--k", "0", "--json"], "k = 0"),
    Case("derive", ["--k", "6", "--n", "5", "--json"], "n < k"),
    Case("derive", ["--n", "20", "--delta", "1.5", "--json"], "delta outside (0, 1)"),
    Case("derive", ["--k", "6", "--json", "--provenance", "{tmp}/adir"], "--provenance is a directory",
         _dir("adir")),
    Case("derive", ["--k", "6", "--json", "--provenance", "{tmp}/afile/p.json"],
         "--provenance under a file", _file("afile")),
    Case("derive", ["--latex", "{tmp}/afile/sub"], "--latex under a file", _file("afile")),
    Case("derive", ["ngram", "--out", "{tmp}/adir"], "ngram --out is a directory", _dir("adir")),
    Case("derive", ["ngram", "--out", "/proc/x/t.json"], "ngram --out not writable"),
    Case("derive", ["ngram", "--min-count", "0", "--out", "{tmp}/t.json"], "ngram --min-count 0"),
    Case("derive", ["ngram", "--estimator", "bogus"], "ngram unknown estimator"),
    Case("derive", ["ngram", "--corpus", "shakespeare"], "ngram without --out (no default file)"),
    Case("derive", ["ngram", "--text-file", "{tmp}/missing.txt", "--out", "{tmp}/t.json"],
         "ngram --text-file missing"),
    Case("derive", ["ngram", "--text-file", "{tmp}/adir", "--out", "{tmp}/t.json"],
         "ngram --text-file is a directory", _dir("adir")),
    Case("derive", ["ngram", "--text-file", "/proc/self/mem", "--out", "{tmp}/t.json"],
         "ngram --text-file unreadable (/proc/self/mem)"),
    Case("derive", ["ngram", "--text-file", "{tmp}/fifo", "--out", "{tmp}/t.json"],
         "ngram --text-file is a FIFO", _fifo("fifo")),
    # plots
    Case("plots", ["--results", "{tmp}/nothing", "--out", "{tmp}/fig"], "--results missing"),
    Case("plots", ["--results", "{tmp}/afile", "--out", "{tmp}/fig"], "--results is a file", _file("afile")),
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/afile"], "--out is an existing file",
         _both(_dir("res"), _file("afile"))),
    Case("plots", ["--results", "{tmp}/res", "--out", "/proc/x"], "--out not creatable (/proc/x)",
         _dir("res")),
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--only", "nosuch"],
         "--only unknown figure", _dir("res")),
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--only", "theory_mixture_signal"],
         "corrupt lm/predicted_t.json", _file("res/lm/predicted_t.json", "{not json")),
    # the figures read the aggregators' outputs, never a run folder
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--only", "parity_accuracy"],
         "corrupt parity/curves.csv (a row with more fields than the others)",
         _file("res/parity/curves.csv", "condition,step,metric\nmd,10,val_acc\nmd,20,val_acc,0.5,0.6\n")),
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--only", "parity_paper_mlp"],
         "non-UTF-8 parity/paper_mlp/curves.csv", _file("res/parity/paper_mlp/curves.csv", b"\xff\xfe{\n")),
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--only", "lm_loss_vs_step"],
         "corrupt lm/window_sweep_curves.csv", _file("res/lm/window_sweep_curves.csv", b'"run,step\n\xff"x\n')),
    Case("plots", ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--only", "lm_window_sweep"],
         "corrupt lm/window_sweep_by_window.csv", _file("res/lm/window_sweep_by_window.csv", b'"t0,t1\n\xff"x\n')),
    # paper tables
    Case("paper_tables", ["--results", "{tmp}/nothing", "--out", "{tmp}/gen"], "--results missing"),
    Case("paper_tables", ["--results", "{tmp}/res", "--out", "{tmp}/afile"], "--out is an existing file",
         _both(_dir("res"), _file("afile"))),
    Case("paper_tables", ["--results", "{tmp}/res", "--out", "/proc/x"], "--out not creatable (/proc/x)",
         _dir("res")),
    # train parity
    Case("train", ["parity", *TINY, "--seed", "-1", "--out", "{tmp}/run"], "parity --seed -1"),
    Case("train", ["parity", *TINY, "--window", "0.3", "0.2", "--out", "{tmp}/run"], "parity window T0 > T1"),
    Case("train", ["parity", "--n", "8", "--k", "9", "--out", "{tmp}/run"], "parity k > n"),
    Case("train", ["parity", *TINY, "--n-embd", "1000000", "--out", "{tmp}/run"],
         "parity --n-embd 1000000 (TBs of weights)"),
    Case("train", ["parity", *TINY[2:], "--n", "1000000", "--k", "2", "--out", "{tmp}/run"],
         "parity --n 1000000 (out of memory)"),
    Case("train", ["parity", *TINY, "--tbins", "1000000", "--out", "{tmp}/run"], "parity --tbins 1000000"),
    Case("train", ["parity", *TINY, "--out", "{tmp}/afile"], "parity --out is an existing file", _file("afile")),
    Case("train", ["parity", *TINY, "--out", "/proc/x"], "parity --out /proc/x"),
    Case("train", ["parity", *TINY, "--out", "{tmp}/mine"], "parity --out holds the user's own metrics.jsonl",
         _file("mine/metrics.jsonl", '{"mine": 1}\n')),
    Case("train", ["parity", *TINY, "--objective", "ar", "--window", "0", "0.2", "--out", "{tmp}/run"],
         "parity --objective ar with --window (ignored)"),
    Case("train", ["parity", *TINY, "--sampler", "mixture:0.3*window:0,0.2+0.3*uniform", "--out", "{tmp}/run"],
         "parity mixture weights not summing to 1"),
    Case("train", ["parity", *TINY, "--sampler", "nosuch:1", "--out", "{tmp}/run"], "parity unknown sampler"),
    Case("train", ["parity", *TINY, "--steps", "-5", "--out", "{tmp}/run"], "parity --steps -5"),
    Case("train", ["parity", *TINY, "--batch-size", "0", "--out", "{tmp}/run"], "parity --batch-size 0"),
    Case("train", ["parity", *TINY, "--lr", "nan", "--out", "{tmp}/run"], "parity --lr nan"),
    Case("train", ["parity", *TINY, "--batch-size", "100000000", "--out", "{tmp}/run"],
         "parity --batch-size 100000000 (out of memory)"),
    Case("train", ["parity", *TINY, "--model", "mlp", "--batch-size", "100000000", "--out", "{tmp}/run"],
         "parity --model mlp --batch-size 100000000 (out of memory)"),
    Case("train", ["parity", *TINY, "--sampler", "signal-optimal:inf", "--out", "{tmp}/run"],
         "parity --sampler signal-optimal:inf"),
    Case("train", ["parity", *TINY, "--sampler", "signal-optimal:nan", "--out", "{tmp}/run"],
         "parity --sampler signal-optimal:nan"),
    # train lm
    Case("train", ["lm", "--text-file", "{tmp}/adir", "--out", "{tmp}/run"], "lm --text-file is a directory",
         _dir("adir")),
    Case("train", ["lm", "--text-file", "{tmp}/missing.txt", "--out", "{tmp}/run"], "lm --text-file missing"),
    Case("train", ["lm", "--text-file", "/proc/self/mem", "--out", "{tmp}/run"],
         "lm --text-file unreadable (/proc/self/mem)"),
    Case("train", ["lm", "--text-file", "{tmp}/fifo", "--out", "{tmp}/run"], "lm --text-file is a FIFO",
         _fifo("fifo")),
    Case("train", ["lm", "--text-file", "/dev/null", "--out", "{tmp}/run"], "lm --text-file /dev/null"),
    Case("train", ["lm", "--eval-nt", "1000000000", "--steps", "1", "--out", "{tmp}/run"],
         "lm --eval-nt 1000000000 (TBs of eval masks)"),
    Case("train", ["lm", "--n-embd", "1000000", "--steps", "1", "--out", "{tmp}/run"],
         "lm --n-embd 1000000 (TBs of weights)"),
    # experiments
    Case("parity.run", ["--preset", "nosuch"], "unknown preset"),
    Case("parity.run", ["--preset", "tiny", "--jobs", "0", "--root", "{tmp}/root"], "--jobs 0"),
    Case("parity.run", ["--preset", "tiny", "--stack", "0", "--root", "{tmp}/root"], "--stack 0"),
    Case("parity.run", ["--preset", "tiny", "--root", "{tmp}/afile"], "--root is a file", _file("afile")),
    Case("parity.summarize", ["--root", "{tmp}/nothing"], "--root without runs"),
    Case("parity.summarize", ["--root", "{tmp}/root"], "summary.csv is a directory",
         _both(_file("root/runs/r/config.json", _CONFIG), _file("root/runs/r/metrics.jsonl", _PARITY_METRICS),
               _dir("root/summary.csv"))),
    Case("parity.summarize", ["--root", "{tmp}/root"], "non-UTF-8 metrics.jsonl",
         _both(_file("root/runs/r/config.json", _CONFIG), _file("root/runs/r/metrics.jsonl", b"\xff\xfe{\n"))),
    Case("lm.sweep", ["--preset", "tiny", "--results", "{tmp}/afile"], "--results is a file", _file("afile")),
    Case("lm.sweep", ["--preset", "tiny", "--results", "/proc/x"], "--results /proc/x"),
    Case("lm.sweep", ["--preset", "tiny", "--jobs", "0", "--results", "{tmp}/res"], "--jobs 0"),
    Case("lm.sweep", ["--preset", "tiny", "--results", "{tmp}/res", "--no-progress"],
         "corrupt predicted_t.json under --results", _file("res/predicted_t.json", "{not json")),
    Case("lm.sweep", ["--preset", "tiny", "--seeds", "0", "0", "--results", "{tmp}/res", "--no-progress"],
         "--seeds 0 0 (a seed twice)"),
    Case("lm.sweep", ["--preset", "tiny", "--seeds", "-1", "--results", "{tmp}/res", "--no-progress"],
         "--seeds -1"),
    Case("lm.sweep", ["--preset", "tiny", "--steps", "0", "--results", "{tmp}/res", "--no-progress"],
         "--steps 0"),
    Case("lm.sweep", ["--preset", "tiny", "--runs", "nomatch*", "--results", "{tmp}/res", "--no-progress"],
         "--runs matching no run", _file("res/predicted_t.json", '{"t_star": 0.46}')),
    Case("lm.sweep", ["--text-file", "/dev/null", "--corpus", "null", "--results", "{tmp}/res", "--no-progress"],
         "--text-file /dev/null"),
    Case("lm.sweep", ["--preset", "tiny", "--results", "{tmp}/res", "--no-progress"],
         "--results in use by another sweep",
         _both(_file("res/predicted_t.json", '{"t_star": 0.46}'), _held("res/.lock"))),
    Case("lm.durability", ["--seeds", "0", "0", "--results", "{tmp}/res", "--no-progress"],
         "--seeds 0 0 (a seed twice)"),
    Case("lm.durability", ["--results", "{tmp}/res", "--no-progress"], "--results in use by another sweep",
         _held("res/.lock")),
]


class _TimeLimit(Exception):
    pass


@contextlib.contextmanager
def _limits():
    """A time limit (SIGALRM) and an address-space limit for one case."""
    def on_alarm(signum, frame):
        raise _TimeLimit(f"still running after {TIME_LIMIT_S} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    cap = vm + EXTRA_ADDRESS_SPACE
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    signal.alarm(TIME_LIMIT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_case(case: Case, tmp: Path) -> dict:
    """Run one case in this process; returns exit status, stderr, seconds."""
    tmp.mkdir(parents=True, exist_ok=True)
    if case.prepare:
        case.prepare(tmp)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    main = importlib.import_module(TOOLS[case.tool]).main
    err, out = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    cwd = os.getcwd()
    os.chdir(tmp)  # a tool that falls back to a default path writes here, not into the repository
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), _limits():
            try:
                code = run_cli(main, argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _TimeLimit as exc:
        code, err = "timeout", io.StringIO(f"{exc}\n")
    except BaseException as exc:  # noqa: BLE001 - what a user would see: a traceback, exit 1
        code = 1
        err.write("".join(traceback.format_exception(exc)))
    finally:
        os.chdir(cwd)
    text = err.getvalue().replace(str(tmp), "<tmp>")
    return {"code": code, "stderr": text, "seconds": time.perf_counter() - start}


def _verdict(result: dict) -> str | None:
    lines = result["stderr"].strip().splitlines()
    if result["code"] != 2:
        return f"exit {result['code']}, expected 2"
    if len(lines) != 1 or "Traceback" in result["stderr"]:
        return f"{len(lines)} stderr lines, expected 1"
    return None


def _message(result: dict) -> str:
    text = result["stderr"].strip()
    if "Traceback" in text:
        return "traceback: " + text.splitlines()[-1]
    if result["code"] == "timeout" or not text:
        return text or "(nothing on stderr)"
    return text.splitlines()[0] if len(text.splitlines()) == 1 else \
        f"{len(text.splitlines())} lines, first: {text.splitlines()[0]}"


def write_doc(rows) -> None:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["# Bad inputs and what the tools answer",
             "",
             "Generated by `MDTHEORY_WRITE_BAD_INPUTS=1 python -m pytest tests/test_bad_inputs.py`",
             "from the outcomes of running each case (do not edit by hand). Every row must",
             "show exit status 2 and a one-line message; `<tmp>` is the case's temporary",
             "folder.",
             "",
             "| tool | bad input | command-line arguments | exit | message |",
             "|---|---|---|---|---|"]
    for case, result in rows:
        args = " ".join(case.argv).replace("{tmp}", "<tmp>")
        lines.append(f"| {case.tool} | {cell(case.what)} | `{cell(args)}` | {result['code']} | "
                     f"{cell(_message(result))} |")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    from mdtheory.cli import atomic_write_text
    atomic_write_text(DOC, "\n".join(lines) + "\n")


def test_every_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rows, failures = [], []
    for i, case in enumerate(CASES):
        result = run_case(case, tmp_path / f"case{i}")
        rows.append((case, result))
        problem = _verdict(result)
        if problem:
            failures.append(f"{case.tool} {case.what}: {problem}: {_message(result)[:300]}")
    if os.environ.get("MDTHEORY_WRITE_BAD_INPUTS"):
        write_doc(rows)
    assert not failures, f"{len(failures)} of {len(CASES)} bad inputs misbehave:\n" + "\n".join(failures)


def test_harness_tells_a_traceback_from_a_one_line_error(tmp_path):
    """The table can fail: a tool raising a plain exception reads as exit 1."""
    ok = run_case(Case("derive", ["--k", "0", "--json"], "k = 0"), tmp_path / "a")
    assert _verdict(ok) is None and ok["stderr"].startswith("error:")

    mod = type(sys)("fake_tool")
    mod.main = lambda argv: (_ for _ in ()).throw(KeyError("boom"))
    sys.modules["fake_tool"] = mod
    TOOLS["fake"] = "fake_tool"
    try:
        bad = run_case(Case("fake", [], "raises"), tmp_path / "b")
    finally:
        del TOOLS["fake"], sys.modules["fake_tool"]
    assert bad["code"] == 1 and "Traceback" in bad["stderr"] and _verdict(bad)


def test_doc_lists_every_case():
    """docs/bad_inputs.md is regenerated from this table: same cases, in order."""
    if not DOC.exists():
        pytest.skip("docs/bad_inputs.md not generated yet")
    text = DOC.read_text(encoding="utf-8")
    for case in CASES:
        assert f"| {case.tool} | {case.what.replace('|', chr(92) + '|')} |" in text, case.what
