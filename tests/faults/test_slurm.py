"""SLURM's requeue, simulated on one machine: the job runs under SLURM's environment variables (those
Lightning's SLURMEnvironment reads), gets SIGUSR1 in the middle of an epoch (the driver has Lightning
write ``task<t>/hpc_ckpt_<n>.ckpt`` at the next batch; ``scontrol requeue`` is absent here, which
Lightning only warns about), then SIGTERM (what SLURM sends at the time limit). The requeued job runs
the SAME command, without --resume, with ``SLURM_RESTART_COUNT=1``: it continues from the hpc
checkpoint and ends as the uninterrupted run. Another job with the same command is refused."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys

import pytest

from tests.faults.helpers import (
    ROOT,
    assert_finished_tasks_intact,
    assert_interrupted,
    assert_refused,
    assert_same_run,
    env_with,
    fingerprint,
    stop,
    three_task_argv,
    wait_until,
    writing,
)

pytestmark = pytest.mark.faults

SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "cassle", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
         "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost", "SLURM_NNODES": "1"}


def test_requeued_job_continues_from_the_hpc_checkpoint(tmp_path, reference_run):
    run_dir = str(tmp_path / "runs" / "run")
    command = [sys.executable, os.path.join(ROOT, "main_pretrain.py"), *three_task_argv(str(tmp_path / "runs"))]
    # SIGUSR1 in the middle of an epoch: after the first batch of task 1's second epoch.
    env = env_with(**SLURM, CASSLE_CALLBACKS="tests.faults.callbacks:SignalAtBatchEnd", CASSLE_TEST_SIGNAL="SIGUSR1",
                   CASSLE_TEST_SIGNAL_AT="1:1:0", PYTHONPATH=ROOT)
    with open(tmp_path / "log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    hpc = os.path.join(run_dir, "task1", "hpc_ckpt_1.ckpt")
    saved = wait_until(lambda: os.path.exists(hpc) and not writing(run_dir, "hpc_ckpt_1.ckpt")(), process)
    returncode = stop(process, signal.SIGTERM)
    output = open(tmp_path / "log").read()
    assert saved, output[-3000:]
    assert_interrupted(returncode, output, signal.SIGTERM, "in task 1", "finished task 0 is kept")
    assert assert_finished_tasks_intact(run_dir) == [0]

    before = fingerprint(run_dir)
    for job in ({"SLURM_JOB_ID": "4243", "SLURM_RESTART_COUNT": "1"}, {"SLURM_JOB_ID": "4243"}):
        other = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env_with(**{**SLURM, **job}))
        assert_refused(other, run_dir, before, f"run folder {run_dir} exists", "--resume")

    requeued = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env=env_with(**SLURM, SLURM_RESTART_COUNT="1"), timeout=900)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert "SLURM job 4242 was requeued: continuing the run" in requeued.stderr
    assert f"task 1: continuing from {hpc} (epoch 2, after 1 batches)" in requeued.stderr
    assert not glob.glob(os.path.join(run_dir, "task*", "hpc_ckpt_*"))
    assert_same_run(run_dir, reference_run, resumed_mid_epoch=(1, 1))
