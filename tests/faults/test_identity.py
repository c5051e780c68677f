"""A run started at task 1 from a task-0 checkpoint (``--task_idx 1 --pretrained_model``), stopped in
task 1, is continued by ``--resume`` alone: the run's start is taken from the folder, and the tasks end
as those of the run that trained its own task 0 (each task is seeded alike)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.faults.helpers import (
    ROOT,
    assert_interrupted,
    assert_same_run,
    env_with,
    start,
    stop,
    three_task_argv,
    wait_until,
)

pytestmark = pytest.mark.faults


def test_load_task0_run_resumed_without_its_start_flags(tmp_path, reference_run):
    runs = str(tmp_path / "runs")
    run_dir = os.path.join(runs, "run")
    task0 = os.path.join(reference_run, "task0", "final.ckpt")
    process = start(three_task_argv(runs) + ["--task_idx", "1", "--pretrained_model", task0], str(tmp_path / "log"))
    reached = wait_until(lambda: os.path.exists(os.path.join(run_dir, "task1", "last.ckpt")), process)
    returncode = stop(process, signal.SIGTERM)
    output = open(tmp_path / "log").read()
    assert reached, output[-3000:]
    assert_interrupted(returncode, output, signal.SIGTERM, "in task 1", "no task had finished")
    resumed = subprocess.run([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *three_task_argv(runs),
                              "--resume"], capture_output=True, text=True, cwd=ROOT, env=env_with(), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "task 1: continuing from" in resumed.stderr and "task 0" not in resumed.stderr
    assert_same_run(run_dir, reference_run, tasks=(1, 2))
