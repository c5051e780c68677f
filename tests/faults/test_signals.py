"""SIGINT and SIGTERM: between two tasks, during training and before training starts; SIGUSR1 under
SLURM outside training. Each stop is exit 128 + signal with one line that says what is kept and the
command that continues the run; the run continued with that command ends bit for bit as the
uninterrupted one."""

from __future__ import annotations

import os
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
    start,
    stop,
    three_task_argv,
    wait_until,
)
from tests.helpers import tiny_argv


def _catches(pid: int, signum: int) -> bool:
    """True once process ``pid`` has a handler for ``signum`` (Linux: SigCgt in /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            mask = next(int(line.split()[1], 16) for line in handle if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask & (1 << (signum - 1)))


def _continue_to_the_end(line: str) -> subprocess.CompletedProcess:
    result = subprocess.run(continue_argv(line), capture_output=True, text=True, cwd=ROOT, env=env_with(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.faults
def test_sigint_between_tasks_and_during_training_then_continue(tmp_path, reference_run):
    """SIGINT as task 0 ends (after its last step, before its final checkpoint): task 0 is finished and
    kept, the run stops before task 1 (exit 130, its one line). Continued with that line's command, it gets
    SIGINT again in task 1 (once its first last.ckpt is written): task 0 is kept, task 1 resumes at epoch
    2. Continued again, it ends bit for bit as the uninterrupted run. (SIGTERM during training: the
    kill test.)"""
    run_dir = str(tmp_path / "runs" / "run")
    env = env_with(CASSLE_CALLBACKS="tests.faults.callbacks:SignalAtTrainEnd", CASSLE_TEST_SIGNAL="SIGINT",
                   CASSLE_TEST_SIGNAL_TASK="0", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main_pretrain.py"),
                             *three_task_argv(str(tmp_path / "runs"))], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=900)
    line = assert_interrupted(result.returncode, result.stderr, signal.SIGINT, "after task 0",
                              "finished task 0 is kept", f"continue with: python {ROOT}/main_pretrain.py")
    assert line.endswith(" --resume")
    assert not os.path.exists(os.path.join(run_dir, "task1"))
    assert assert_finished_tasks_intact(run_dir) == [0]

    with open(tmp_path / "log", "w") as log:
        process = subprocess.Popen(continue_argv(line), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env_with())
    reached = wait_until(lambda: os.path.exists(os.path.join(run_dir, "task1", "last.ckpt")), process)
    returncode = stop(process, signal.SIGINT)
    output = open(tmp_path / "log").read()
    assert reached, output[-3000:]
    line = assert_interrupted(returncode, output, signal.SIGINT, "in task 1, epoch", "finished task 0 is kept",
                              "task 1 resumes at epoch 2")
    assert assert_finished_tasks_intact(run_dir) == [0]
    resumed = _continue_to_the_end(line)
    assert "task 0: finished earlier, skipped" in resumed.stderr and "task 1: continuing from" in resumed.stderr
    assert_same_run(run_dir, reference_run)


def test_sigterm_before_training_starts(tmp_path):
    """SIGTERM while the driver imports Lightning (its handler installed): exit 143, one line, and no run
    folder (nothing was written; the continue command has no --resume)."""
    runs = tmp_path / "runs"
    argv = tiny_argv(str(runs), num_tasks=2)
    process = start(argv, str(tmp_path / "log"))
    assert wait_until(lambda: _catches(process.pid, signal.SIGTERM), process, timeout=60, poll=0.001)
    returncode = stop(process, signal.SIGTERM)
    output = open(tmp_path / "log").read()
    line = assert_interrupted(returncode, output, signal.SIGTERM, "before training started", "no task had finished")
    assert "--resume" not in line
    assert not runs.exists()


def test_sigusr1_under_slurm_before_training_requeues_and_runs_on(tmp_path):
    """Under SLURM, SIGUSR1 (the time-limit warning) outside training asks for a requeue at once (there is
    no scontrol here: one note) instead of ending the process, its default action; SIGTERM then stops it."""
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "cassle", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}
    log_path = str(tmp_path / "log")
    process = start(tiny_argv(str(tmp_path / "runs"), num_tasks=2), log_path, env=env_with(**slurm))
    assert wait_until(lambda: _catches(process.pid, signal.SIGUSR1), process, timeout=60, poll=0.001)
    process.send_signal(signal.SIGUSR1)
    message = "SIGUSR1: could not requeue SLURM job 4242"
    noted = wait_until(lambda: message in open(log_path).read(), process, timeout=60)
    returncode = stop(process, signal.SIGTERM)
    output = open(log_path).read()
    assert noted, output[-3000:]
    assert_interrupted(returncode, output, signal.SIGTERM)
