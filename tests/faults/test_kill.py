"""The kill test: a 3-task run interrupted at 5 seeded moments, three of them while a checkpoint or the
manifest is being written, and continued each time, ends bit for bit as the uninterrupted run: every
task's final weights, the manifest's metrics and every row of metrics.csv. Once with SIGKILL (nothing
runs after it: the files on disk are all there is), once with SIGTERM (each stop exits 143 with the one
line, whose command continues the run). About 1.5 minutes per signal on 2 cores."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from tests.faults.helpers import (
    ROOT,
    assert_finished_tasks_intact,
    assert_interrupted,
    assert_same_run,
    continue_argv,
    env_with,
    stop,
    three_task_argv,
    wait_until,
    writing,
)

pytestmark = pytest.mark.faults


def moments(seed: int) -> list[tuple[str, int]]:
    """Five moments, shuffled with ``seed``: while ``last.ckpt``, a ``final.ckpt`` and the manifest are
    written (each round meets them at the latest one task after it started, so the run cannot end before
    the fifth round), and two of: while ``metrics.csv`` is written, right after the ``k``-th file write."""
    rng = random.Random(seed)
    chosen = [("last.ckpt", 0), ("final.ckpt", 0), ("manifest.json", 0)]
    for _ in range(2):
        chosen.append(("metrics.csv", 0) if rng.random() < 0.5 else ("write", rng.randint(4, 12)))
    rng.shuffle(chosen)
    return chosen


def _write_count(path: str) -> int:
    try:
        with open(path) as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _wrote(path: str, suffix: str) -> bool:
    """Whether the write log at ``path`` lists a written file whose name ends with ``suffix``."""
    try:
        with open(path) as handle:
            return any(line.rstrip("\n").endswith(suffix) for line in handle)
    except OSError:
        return False


def interrupt_and_resume(tmp_path, signum: int, seed: int) -> list[str]:
    """Run :func:`three_task_argv` to its end through 5 interruptions with ``signum``; returns what happened
    at each (for the failure messages)."""
    run_dir = str(tmp_path / "runs" / "run")
    command = [sys.executable, os.path.join(ROOT, "main_pretrain.py"), *three_task_argv(str(tmp_path / "runs"))]
    history = []
    for round_, (what, count) in enumerate(moments(seed)):
        writes, log_path = str(tmp_path / f"writes-{round_}.log"), str(tmp_path / f"round-{round_}.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                       env=env_with(CASSLE_WRITE_LOG=writes))
        if what == "write":
            condition = lambda log=writes, at_least=count: _write_count(log) >= at_least  # noqa: E731
        else:
            # while the file is written, or right after when the poll missed its short write (a loaded
            # machine): either is a moment a job can be killed at, and the run is still interrupted
            condition = lambda log=writes, name=what, now=writing(run_dir, what): (  # noqa: E731
                now() or _wrote(log, name))
        reached = wait_until(condition, process, timeout=600, poll=0.002)
        returncode = stop(process, signum)
        output = open(log_path).read()
        assert reached, (f"round {round_}: the run ended before the moment ({what}) came", history, output[-3000:])
        history.append(f"round {round_}: {what}{f' {count}' if what == 'write' else ''} -> {returncode}")
        if signum == signal.SIGKILL:
            assert returncode == -signal.SIGKILL, (history, output[-3000:])
            started = os.path.exists(os.path.join(run_dir, "args.json"))
            command = [c for c in command if c != "--resume"] + (["--resume"] if started else [])
        else:
            line = assert_interrupted(returncode, output, signum)
            command = continue_argv(line)
            assert "--resume" in command
        assert_finished_tasks_intact(run_dir)
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env_with(), timeout=900)
    assert result.returncode == 0, (history, result.stderr[-3000:])
    return history


@pytest.mark.parametrize("signum, seed", [(signal.SIGKILL, 1), (signal.SIGTERM, 2)], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_five_times_ends_as_the_uninterrupted_run(tmp_path, reference_run, signum, seed):
    history = interrupt_and_resume(tmp_path, signum, seed)
    assert_same_run(str(tmp_path / "runs" / "run"), reference_run)
    assert len(history) == 5, history
