"""Files on disk in trained runs: the user's umask, a ``$TMPDIR`` that cannot be used, and finished
checkpoints deleted, cut short or bit-flipped before a --resume (the task is trained again, with a
message, to the same weights)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from cassle.utils.run_lock import read_lock
from tests.faults.helpers import ROOT, env_with, fake_run, fingerprint, run, unwritable, wait_until
from tests.helpers import assert_one_line_error, tiny_argv

pytestmark = pytest.mark.faults


def _argv(checkpoint_dir: str) -> list[str]:
    return tiny_argv(checkpoint_dir, num_tasks=3, extra=["--split_strategy", "data"])


def _run(argv: list[str], mask: int, tmpdir: str) -> subprocess.CompletedProcess:
    def set_umask() -> None:
        os.umask(mask)

    return subprocess.run([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *argv], capture_output=True,
                          text=True, cwd=ROOT, env=env_with(TMPDIR=tmpdir), preexec_fn=set_umask, timeout=900)


def _start(argv: list[str], mask: int, tmpdir: str, log_path: str, release: str) -> subprocess.Popen:
    """Start the run; its first task waits for the file ``release`` before it trains."""
    def set_umask() -> None:
        os.umask(mask)

    env = env_with(TMPDIR=tmpdir, CASSLE_CALLBACKS="tests.faults.callbacks:WaitForRelease",
                   CASSLE_TEST_RELEASE=release, PYTHONPATH=ROOT)
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *argv], stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env, preexec_fn=set_umask)


def _modes(run_dir: str, names: list[str]) -> dict[str, int]:
    return {name: stat.S_IMODE(os.stat(os.path.join(run_dir, name)).st_mode) for name in names}


def _weights(run_dir: str) -> dict[int, dict]:
    import torch

    return {task: torch.load(os.path.join(run_dir, f"task{task}", "final.ckpt"), map_location="cpu",
                             weights_only=False)["state_dict"] for task in range(3)}


def test_umask_tmpdir_and_damaged_checkpoints(tmp_path):
    """One run through several faults: a folder in which nothing was computed (started with a wrong
    --lr) is started again by the corrected command; umask 077 and a $TMPDIR that does not exist; three
    damaged checkpoints, trained again by --resume under umask 022 with a read-only $TMPDIR, to the
    same weights; meanwhile a second job on the folder is refused, naming the first."""
    runs = tmp_path / "runs"
    run_dir = fake_run(str(runs), finished=(), extra=["--lr", "0.5"])
    files = ["args.json", "run.json", "split.json", "manifest.json", "task0/final.ckpt", "task2/final.ckpt",
             "task1/metrics.csv"]
    first = _run(_argv(str(runs)), 0o077, str(tmp_path / "no-such-tmp"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"note: nothing was computed in {run_dir} yet: starting it again with these flags" in first.stderr
    assert json.load(open(os.path.join(run_dir, "args.json")))["lr"] == 0.3
    assert set(_modes(run_dir, files).values()) == {0o600}
    before = _weights(run_dir)

    # Task 0's checkpoint deleted, task 1's cut short, one byte of task 2's flipped.
    os.remove(os.path.join(run_dir, "task0", "final.ckpt"))
    with open(os.path.join(run_dir, "task1", "final.ckpt"), "r+b") as handle:
        handle.truncate(1000)
    with open(os.path.join(run_dir, "task2", "final.ckpt"), "r+b") as handle:
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0x01]))

    # --resume under umask 022 with a read-only $TMPDIR: each task is trained again, with a message.
    tmpdir = tmp_path / "read-only-tmp"
    tmpdir.mkdir()
    with unwritable(str(tmpdir)):
        release = str(tmp_path / "release")
        resumed = _start(_argv(str(runs)) + ["--resume"], 0o022, str(tmpdir), str(tmp_path / "resumed.log"), release)
        lock = os.path.join(run_dir, ".lock")
        assert wait_until(lambda: (read_lock(lock) or {}).get("pid") == resumed.pid, resumed, timeout=120)
        second = run(_argv(str(runs)) + ["--resume"])
        open(release, "w").close()
        assert_one_line_error(second, f"run folder {run_dir} is in use by pid {resumed.pid} on host "
                                      f"{socket.gethostname()}")
        resumed.wait(timeout=900)
    output = open(tmp_path / "resumed.log").read()
    assert resumed.returncode == 0, output[-3000:]
    for task, why in ((0, "is missing"), (1, "has 1000 bytes"), (2, "does not match the SHA-256")):
        assert f"task {task}: its checkpoint cannot be trusted" in output and why in output, output[-3000:]
    for task in (1, 2):
        assert os.path.exists(os.path.join(run_dir, f"task{task}", "final.ckpt.damaged"))
    after = _weights(run_dir)
    for task in range(3):
        assert list(after[task]) == list(before[task])
        import torch

        assert all(torch.equal(after[task][key], before[task][key]) for key in before[task]), task
    assert set(_modes(run_dir, ["manifest.json", "task0/final.ckpt", "task2/final.ckpt"]).values()) == {0o644}


def test_linear_probe_of_a_read_only_run_folder(tmp_path, reference_run):
    """main_linear.py on a run folder it cannot write: the results go to the current folder, and the one
    error line says so and where; the run folder is unchanged. (A copy of the reference run cut to its
    first task, to probe one backbone.)"""
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(reference_run, run_dir)
    manifest_path = os.path.join(run_dir, "manifest.json")
    manifest = json.load(open(manifest_path))
    manifest["tasks"] = {"0": manifest["tasks"]["0"]}
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    before = fingerprint(run_dir)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with unwritable(run_dir):
        result = run(["--run_dir", run_dir, "--dataset", "digits", "--accelerator", "cpu", "--cache_features",
                      "--batch_size", "256", "--num_workers", "0"], script="main_linear.py", cwd=str(cwd))
    assert_one_line_error(result, f"cannot write into {run_dir}", f"written to {cwd} instead")
    assert fingerprint(run_dir) == before
    assert json.load(open(cwd / "results.json"))["final_acc"] is not None
