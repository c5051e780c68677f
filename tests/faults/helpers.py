"""Tools of the fault catalogue: run the real command line, fingerprint a run folder, make a path
unwritable (as root too), build a run folder without training, and stop a run at a chosen moment."""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import importlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.helpers import ROOT, assert_one_line_error, tiny_argv

# The default suite builds run folders without training; a trained run of 2 tasks takes ~20-40 s here.
TWO_TASKS = ["--num_tasks", "2"]


# ------------------------------------------------------------------------------------------ running
def env_with(**extra: str) -> dict[str, str]:
    """The environment of a test run: wandb off, 2 threads, unbuffered output, plus ``extra``."""
    return dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="disabled", OMP_NUM_THREADS="2", **extra)


def run(argv: Sequence[str], script: str = "main_pretrain.py", env: dict[str, str] | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """Run ``script`` with ``argv`` to the end (stdout and stderr captured as text)."""
    command = [sys.executable, os.path.join(ROOT, script), *argv] if script.endswith(".py") \
        else [sys.executable, "-m", script, *argv]
    return subprocess.run(command, capture_output=True, text=True, env=env or env_with(),
                          cwd=kwargs.pop("cwd", ROOT), timeout=kwargs.pop("timeout", 900), **kwargs)


def run_main(argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None,
             entry: str = "main_pretrain") -> subprocess.CompletedProcess:
    """``main_pretrain.main(argv)`` (or ``main_linear.main`` with ``entry="main_linear"``) in this process,
    as :func:`run` runs it in a new one: the same exit status, stdout and stderr, without the ~5 s a new
    process spends importing torch and Lightning. For the cases that end before training; ``env`` is added
    to the environment and ``cwd`` entered for the call, and both are restored after it, with the
    SIGINT/SIGTERM handlers the driver installs."""
    module = importlib.import_module(entry)

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update({"WANDB_MODE": "disabled", **(env or {})})
        os.chdir(cwd or ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = module.main(list(argv))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def start(argv: Sequence[str], log_path: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``main_pretrain.py`` in the background, its stderr (and stdout) going to ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env or env_with(), cwd=ROOT)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen | None = None, timeout: float = 600,
               poll: float = 0.005) -> bool:
    """Poll ``condition`` until it holds (True), ``process`` ends or ``timeout`` passes (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return condition()
        time.sleep(poll)
    return False


def stop(process: subprocess.Popen, signum: int, timeout: float = 300) -> int:
    """Send ``signum`` and wait for the process; its exit status (negative: killed by a signal)."""
    if process.poll() is None:
        process.send_signal(signum)
    return process.wait(timeout=timeout)


def assert_interrupted(returncode: int, stderr: str, signum: int, *fragments: str) -> str:
    """Exit 128 + signal, one ``error:`` line naming the signal and the command that continues the run
    (with ``--resume``), no traceback; returns that line."""
    assert returncode == 128 + signum, (returncode, stderr[-3000:])
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    line = errors[0]
    assert f"interrupted by {signal.Signals(signum).name}" in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


# ------------------------------------------------------------------------------------------ run folders
def fingerprint(folder: str) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` (relative path -> digest), the lock excepted."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if name == ".lock" or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return out


def leftovers(folder: str) -> list[str]:
    """Half-written files (``.tmp-*``) below ``folder``."""
    return sorted(glob.glob(os.path.join(folder, "**", ".tmp-*"), recursive=True)
                  + glob.glob(os.path.join(folder, ".tmp-*")))


def assert_untouched(folder: str, before: dict[str, str]) -> None:
    """Every file of ``before`` is still there, unchanged, nothing was added, and no ``.tmp-*`` is left."""
    assert fingerprint(folder) == before
    assert not leftovers(folder)
    assert not os.path.exists(os.path.join(folder, ".lock"))


def assert_refused(result: subprocess.CompletedProcess, folder: str, before: dict[str, str],
                   *fragments: str) -> None:
    """A bad input: exit 2, one ``error:`` line with ``fragments``, no traceback, the folder untouched."""
    assert_one_line_error(result, *fragments)
    assert_untouched(folder, before)


def fake_run(checkpoint_dir: str, finished: Sequence[int] = (0,), name: str = "run",
             extra: Sequence[str] = (), env: dict[str, str] | None = None) -> str:
    """A run folder of ``tiny_argv(checkpoint_dir, num_tasks=2, extra=extra)`` as the driver leaves it
    after finishing ``finished``, made by the driver's own code without training: args.json, run.json and
    split.json as the owner writes them, and for each finished task a small stand-in ``final.ckpt``
    recorded in the manifest with its size and SHA-256 (fine for every check that reads no weights).

    ``env`` (e.g. SLURM variables) is in force while the folder is made."""
    from cassle.args.pretrain import parse_args
    from cassle.run_folder import RunFolder, task_dir
    from cassle.train import resolve_hardware

    argv = tiny_argv(checkpoint_dir, name=name, num_tasks=2, extra=list(extra))
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        cfg = resolve_hardware(parse_args(argv))
        folder, cfg = RunFolder.open_as_owner(cfg)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        for task in finished:
            final = os.path.join(task_dir(cfg.run.run_dir, task), "final.ckpt")
            os.makedirs(os.path.dirname(final), exist_ok=True)
            with open(final, "wb") as handle:
                handle.write(f"stand-in checkpoint of task {task}".encode())
            folder.finish_task(task, final, {"val_acc1": 10.0 * (task + 1)}, 1.0)
    finally:
        folder.release()
    return cfg.run.run_dir


def copy_run(source: str, checkpoint_dir: str) -> str:
    """A copy of the run folder ``source`` under ``checkpoint_dir`` (same name)."""
    target = os.path.join(checkpoint_dir, os.path.basename(source))
    shutil.copytree(source, target)
    return target


def csv_rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [dict(row) for row in csv.DictReader(handle)]


# ------------------------------------------------------------------------------------------ permissions
def _chattr(flag: str, path: str) -> bool:
    tool = shutil.which("chattr")
    return tool is not None and subprocess.run([tool, flag, path], capture_output=True).returncode == 0


def _writes_blocked(path: str) -> bool:
    """True if nothing can be written: a new file in the folder ``path``, or the file ``path`` itself."""
    if os.path.isfile(path):
        try:
            open(path, "ab").close()
        except OSError:
            return True
        return False
    probe = os.path.join(path, ".probe-write")
    try:
        open(probe, "w").close()
    except OSError:
        return True
    os.remove(probe)
    return False


@contextlib.contextmanager
def unwritable(path: str) -> Iterator[None]:
    """Make the folder or file ``path`` unwritable (no file can be created, replaced or removed in the
    folder; the file cannot be changed, renamed or removed) for the duration: ``chmod a-w``, or, as root
    (where permissions change nothing), the immutable attribute (``chattr +i``). Skips the test if
    neither works."""
    mode = os.stat(path).st_mode
    os.chmod(path, mode & ~0o222)
    immutable = False
    try:
        if not _writes_blocked(path):
            immutable = _chattr("+i", path)
            if not immutable or not _writes_blocked(path):
                pytest.skip("cannot make a path read-only here (root, and no chattr +i on this filesystem)")
        yield
    finally:
        if immutable:
            _chattr("-i", path)
        os.chmod(path, mode)


# ------------------------------------------------------------------------------------------ long runs
def three_task_argv(checkpoint_dir: str, name: str = "run") -> list[str]:
    """The run of the long fault tests: 3 tasks (a data split of the digits) of 3 epochs of 2 batches of 8, so
    that every task writes ``last.ckpt`` twice (at the start of epochs 2 and 3) and its ``final.ckpt``."""
    return tiny_argv(checkpoint_dir, num_tasks=3, name=name,
                     extra=["--split_strategy", "data", "--max_epochs", "3", "--limit_train_batches", "2",
                            "--batch_size", "8"])


def writing(run_dir: str, suffix: str = "") -> Callable[[], bool]:
    """A condition: a file whose name ends with ``suffix`` is being written in the run folder or one of its
    task folders (its ``.tmp-*`` stand-in exists)."""
    def check() -> bool:
        for folder in [run_dir, *glob.glob(os.path.join(run_dir, "task*"))]:
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            if any(name.startswith(".tmp-") and name.endswith(suffix) for name in names):
                return True
        return False
    return check


def continue_argv(line: str) -> list[str]:
    """The command of an interruption's one line (``... continue with: python main_pretrain.py ...``), with
    this test's Python."""
    import shlex

    command = shlex.split(line.split("continue with: ", 1)[1])
    assert command[0] == "python", line
    return [sys.executable, *command[1:]]


def assert_finished_tasks_intact(run_dir: str) -> list[int]:
    """Every task the manifest lists has its checkpoint as recorded (size, SHA-256); returns them."""
    from cassle.utils.manifest import RunManifest

    if not os.path.exists(os.path.join(run_dir, "manifest.json")):
        return []
    manifest = RunManifest(run_dir)
    for task in manifest.finished_tasks():
        assert manifest.damage(task) is None, manifest.damage(task)
    return manifest.finished_tasks()


def assert_same_run(run_dir: str, reference: str, tasks: Sequence[int] = (0, 1, 2),
                    resumed_mid_epoch: tuple[int, int] | None = None) -> None:
    """``run_dir`` ended as ``reference`` did, bit for bit: each of ``tasks`` (the ones ``run_dir``
    finished) has the same ``final.ckpt`` weights (torch.equal per key), metrics in the manifest and rows
    in its ``metrics.csv``; and nothing that only serves a resume (``last.ckpt``, ``hpc_ckpt_*``,
    ``.tmp-*``, the lock) is left.

    ``resumed_mid_epoch``: ``(task, epoch)`` resumed from a mid-epoch checkpoint: the training means of
    that epoch (``train_*`` columns, averaged by Lightning over the epoch's batches, which it does not
    checkpoint) cover the batches after the checkpoint only, and are left out of the comparison."""
    import json

    import torch

    ours, theirs = (json.load(open(os.path.join(folder, "manifest.json")))["tasks"] for folder in (run_dir, reference))
    assert sorted(ours) == [str(task) for task in tasks], sorted(ours)
    for task in sorted(ours):
        assert ours[task]["metrics"] == theirs[task]["metrics"], task
        weights = [torch.load(os.path.join(folder, f"task{task}", "final.ckpt"), map_location="cpu",
                              weights_only=False)["state_dict"] for folder in (run_dir, reference)]
        assert list(weights[0]) == list(weights[1]), task
        different = [key for key in weights[1] if not torch.equal(weights[0][key], weights[1][key])]
        assert not different, (task, different[:5])
        rows = [csv_rows(os.path.join(folder, f"task{task}", "metrics.csv")) for folder in (run_dir, reference)]
        if resumed_mid_epoch is not None and resumed_mid_epoch[0] == int(task):
            epoch = str(resumed_mid_epoch[1])
            rows = [[{k: v for k, v in row.items() if not (row["epoch"] == epoch and k.startswith("train_"))}
                     for row in table] for table in rows]
        assert rows[0] == rows[1], task
    assert not leftovers(run_dir)
    assert not glob.glob(os.path.join(run_dir, "task*", "last.ckpt"))
    assert not glob.glob(os.path.join(run_dir, "task*", "hpc_ckpt_*.ckpt"))
    assert not os.path.exists(os.path.join(run_dir, ".lock"))
