"""Fault catalogue, fast part: bad flags, paths, run folders and checkpoints that main_pretrain.py refuses
before it trains. Each case: exit status 2, one ``error:`` line naming the flag or path and what was
expected, no traceback, nothing created for a run that could not start, nothing changed in a run folder
that was there (every file's SHA-256 before and after, no ``.tmp-*`` left)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.faults.helpers import (
    assert_refused,
    assert_untouched,
    fake_run,
    fingerprint,
    run,
    run_main,
    unwritable,
)
from tests.helpers import assert_one_line_error, tiny_argv

# (id, flags added to a tiny 2-task digits run, fragments of the one error line)
BAD_FLAGS = [
    ("devices-0", ["--devices", "0"], ["--devices", "at least 1"]),
    ("devices-word", ["--devices", "two"], ["--devices", "'two'"]),
    ("lr-negative", ["--lr", "-1"], ["--lr", "must not be negative"]),
    ("lr-not-a-number", ["--lr", "fast"], ["--lr", "invalid float value: 'fast'"]),
    ("num-workers-negative", ["--num_workers", "-1"], ["--num_workers", "at least 0"]),
    ("checkpoint-frequency-0", ["--checkpoint_frequency", "0"], ["--checkpoint_frequency", "at least 1"]),
    ("limit-train-batches-0", ["--limit_train_batches", "0"], ["--limit_train_batches", "a fraction in (0, 1]"]),
    ("limit-train-batches-1.5", ["--limit_train_batches", "1.5"], ["--limit_train_batches", "whole number"]),
    ("batch-size-0", ["--batch_size", "0"], ["--batch_size", "at least 1"]),
    ("max-epochs-0", ["--max_epochs", "0"], ["--max_epochs", "at least 1"]),
    ("warmup-epochs-negative", ["--warmup_epochs", "-1"], ["--warmup_epochs", "at least 0"]),
    ("task-idx-too-high", ["--task_idx", "2"], ["--task_idx", "[0, 1]", "got 2"]),
    ("task-idx-negative", ["--task_idx", "-1"], ["--task_idx", "got -1"]),
    ("num-tasks-0", ["--num_tasks", "0"], ["--num_tasks", "at least 1"]),
    ("num-tasks-not-dividing", ["--num_tasks", "3"], ["--num_tasks"]),
    ("queue-not-multiple", ["--method", "mocov2plus", "--queue_size", "100"],
     ["--queue_size (100)", "multiple of the global batch (16"]),
    ("distiller-of-another-method", ["--distiller", "byol_pnr"], ["--distiller byol_pnr", "not simclr"]),
    ("distiller-unknown", ["--distiller", "ewc"], ["--distiller", "invalid choice: 'ewc'"]),
    ("method-unknown", ["--method", "simsiam"], ["--method", "invalid choice: 'simsiam'"]),
    ("optimizer-unknown", ["--optimizer", "lamb"], ["--optimizer", "invalid choice: 'lamb'"]),
    ("precision-unknown", ["--precision", "8"], ["--precision", "invalid choice: '8'"]),
    ("dataset-unknown", ["--dataset", "mnist"], ["--dataset", "invalid choice: 'mnist'"]),
    ("unknown-flag", ["--learning_rate", "0.1"], ["unrecognized arguments: --learning_rate"]),
    ("split-domain-not-domainnet", ["--split_strategy", "domain"], ["--split_strategy domain", "domainnet"]),
    ("scheduler-step-without-steps", ["--scheduler", "step"], ["--scheduler step", "--lr_decay_steps"]),
    ("name-with-slash", ["--name", "a/b"], ["--name", "plain folder name"]),
    ("wandb-without-project", ["--wandb"], ["--wandb", "--project"]),
    ("accelerator-unknown", ["--accelerator", "tpu"], ["--accelerator", "'tpu'"]),
]


@pytest.mark.parametrize("flags, fragments", [case[1:] for case in BAD_FLAGS], ids=[case[0] for case in BAD_FLAGS])
def test_bad_flag_value(tmp_path, flags, fragments):
    runs = tmp_path / "runs"
    result = run_main(tiny_argv(runs, num_tasks=2, extra=flags))
    assert_one_line_error(result, *fragments)
    assert not runs.exists()  # nothing created for a run that could not start


def test_batch_size_larger_than_a_task(tmp_path):
    runs = tmp_path / "runs"
    result = run_main(tiny_argv(runs, num_tasks=5, extra=["--batch_size", "400"]))
    assert_one_line_error(result, "task 0 has", "fewer than --batch_size 400")
    assert not runs.exists()


def test_no_gpu_when_the_flags_ask_for_one(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    runs = tmp_path / "runs"
    result = run_main(tiny_argv(runs, num_tasks=2, extra=["--accelerator", "gpu"]))
    assert_one_line_error(result, "no GPU found", "--accelerator cpu")
    assert not runs.exists()


# ------------------------------------------------------------------------------------------ data paths
def test_missing_data_dir(tmp_path):
    runs, data = tmp_path / "runs", tmp_path / "no-such-data"
    result = run_main(tiny_argv(runs, num_tasks=2, extra=["--dataset", "cifar100", "--data_dir", str(data)]))
    assert_one_line_error(result, f"--data_dir {data} does not exist")
    assert not runs.exists() and not data.exists()  # the data folder is not created either


def test_unreadable_data_file(tmp_path):
    """CIFAR-100 files that are not the pickles they should be (a truncated download)."""
    runs, data = tmp_path / "runs", tmp_path / "data"
    folder = data / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test"):
        (folder / name).write_bytes(b"\x80\x04truncated")
    result = run_main(tiny_argv(runs, num_tasks=2, extra=["--dataset", "cifar100", "--data_dir", str(data)]))
    assert_one_line_error(result, f"cannot read CIFAR-100 file {folder / 'train'}")
    assert not runs.exists()


def test_missing_image_folder(tmp_path):
    runs, train = tmp_path / "runs", tmp_path / "imagenet" / "train"
    result = run_main(tiny_argv(runs, num_tasks=2, extra=["--dataset", "imagenet100", "--train_dir", str(train),
                                                     "--val_dir", str(train), "--split_strategy", "data"]))
    assert_one_line_error(result, f"--train_dir {train} does not exist")
    assert not runs.exists()


def test_checkpoint_dir_under_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_main(tiny_argv(blocker / "runs", num_tasks=2))
    assert_one_line_error(result, str(blocker / "runs" / "run"))
    assert blocker.read_text() == "not a folder"


def test_read_only_checkpoint_dir(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with unwritable(str(runs)):
        result = run_main(tiny_argv(runs, num_tasks=2))
    assert_one_line_error(result, "no permission", str(runs / "run"))
    assert os.listdir(runs) == []


def test_read_only_run_folder_on_resume(tmp_path):
    run_dir = fake_run(str(tmp_path / "runs"))
    before = fingerprint(run_dir)
    with unwritable(run_dir):
        result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume"]))
    assert_refused(result, run_dir, before, "no permission", os.path.join(run_dir, ".lock"))


def test_read_only_damaged_checkpoint_on_resume(tmp_path):
    """A finished task's checkpoint that no longer matches the manifest, and cannot be set aside (a
    read-only file): one line naming it; nothing in the folder changes."""
    run_dir = fake_run(str(tmp_path / "runs"))
    final = os.path.join(run_dir, "task0", "final.ckpt")
    with open(final, "ab") as handle:
        handle.write(b"!")
    before = fingerprint(run_dir)
    with unwritable(final):
        result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume"]))
    assert_refused(result, run_dir, before, "no permission", final)


@pytest.mark.parametrize("limit, first_failing", [
    pytest.param(64, ".lock", marks=pytest.mark.faults),
    (1024, "args.json"),
], ids=["at-the-lock", "at-args-json"])
def test_full_disk_when_the_run_folder_is_created(tmp_path, limit, first_failing):
    """The file-size limit (what a full disk looks like to a writer; ``ulimit -f`` in a new process) hit by
    the lock or by the run's arguments: one line naming the file, and no folder left (nothing was computed:
    the same command starts the run once there is space)."""
    import resource

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    runs = tmp_path / "runs"
    runs.mkdir()
    result = run(tiny_argv(runs, num_tasks=2), preexec_fn=small_files)
    assert_one_line_error(result, "file-size limit", str(runs / "run" / first_failing))
    assert os.listdir(runs) == []


# ------------------------------------------------------------------------------------------ run folders
def test_existing_run_without_resume(tmp_path):
    run_dir = fake_run(str(tmp_path / "runs"))
    before = fingerprint(run_dir)
    assert_refused(run_main(tiny_argv(tmp_path / "runs", num_tasks=2)), run_dir, before,
                   f"run folder {run_dir} exists", "--resume")


def test_resume_without_a_run(tmp_path):
    runs = tmp_path / "runs"
    result = run_main(tiny_argv(runs, num_tasks=2, extra=["--resume"]))
    assert_one_line_error(result, "--resume", f"no run to continue in {runs / 'run'}")
    assert not runs.exists()


@pytest.mark.parametrize("flags, fragment", [
    (["--lr", "0.5"], "--lr 0.3 -> 0.5"),
    (["--seed", "6"], "--seed 5 -> 6"),
    (["--max_epochs", "2"], "--max_epochs 1 -> 2"),
    (["--distiller", "simclr_pnr"], "--distiller None -> 'simclr_pnr'"),
], ids=["lr", "seed", "max_epochs", "distiller"])
def test_resume_with_a_flag_that_changes_results(tmp_path, flags, fragment):
    run_dir = fake_run(str(tmp_path / "runs"))
    before = fingerprint(run_dir)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume", *flags]))
    assert_refused(result, run_dir, before, "--resume with flags that change results", fragment)


def test_resume_with_flags_that_change_nothing(tmp_path):
    """--num_workers, --checkpoint_frequency, --limit_val_batches may differ: the finished run is listed."""
    run_dir = fake_run(str(tmp_path / "runs"), finished=(0, 1))
    before = fingerprint(run_dir)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=[
        "--resume", "--num_workers", "1", "--checkpoint_frequency", "3", "--limit_val_batches", "2"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "task 1: finished earlier, skipped" in result.stderr
    assert_untouched(run_dir, before)


@pytest.mark.parametrize("name, content, fragment", [
    ("args.json", "{\"method\": ", "run arguments"),
    ("args.json", "[1, 2]", "run arguments"),
    ("run.json", "garbage", "run identity"),
    ("manifest.json", "{}", "run manifest"),
    ("manifest.json", "[]", "run manifest"),
    ("manifest.json", "{\"tasks\": []}", "run manifest"),
    ("manifest.json", "{\"tasks\": {\"0\": {\"bytes\": 3}}}", "run manifest"),
    ("manifest.json", "\x00\x01garbage", "run manifest"),
    ("manifest.json", "", "run manifest"),
], ids=["args-truncated", "args-list", "identity-garbage", "manifest-empty-object", "manifest-list",
        "manifest-task-list", "manifest-entry-without-checkpoint", "manifest-garbage", "manifest-empty-file"])
@pytest.mark.parametrize("resume", [True, False], ids=["resume", "no-resume"])
def test_corrupt_run_file(tmp_path, name, content, fragment, resume):
    run_dir = fake_run(str(tmp_path / "runs"))
    with open(os.path.join(run_dir, name), "w") as handle:
        handle.write(content)
    before = fingerprint(run_dir)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume"] if resume else []))
    if not resume and name == "args.json":  # not read without --resume: the folder holds a run, refused
        assert_refused(result, run_dir, before, f"run folder {run_dir} exists", "--resume")
    else:
        assert_refused(result, run_dir, before, fragment, os.path.join(run_dir, name), "corrupt")


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def stand_in_checkpoints(tmp_path_factory):
    """Checkpoints without training: a fresh SimCLR model of the tiny run saved as the driver saves one,
    the same with another --output_dim, and one that says it is a BYOL checkpoint."""
    import torch

    from cassle.args.pretrain import parse_args
    from cassle.train import build_model, checkpoint_metadata

    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for name, extra in (("simclr", []), ("simclr-output-8", ["--output_dim", "8"])):
        cfg = parse_args(tiny_argv(folder, num_tasks=2, extra=extra))
        model = build_model(cfg, 0)
        paths[name] = str(folder / f"{name}.ckpt")
        torch.save({"state_dict": model.state_dict(), "cassle": checkpoint_metadata(cfg, 0)}, paths[name])
    byol = torch.load(paths["simclr"], weights_only=False)
    byol["cassle"]["method"] = "byol"
    paths["byol"] = str(folder / "byol.ckpt")
    torch.save(byol, paths["byol"])
    paths["corrupt"] = str(folder / "corrupt.ckpt")
    with open(paths["corrupt"], "wb") as handle:
        handle.write(open(paths["simclr"], "rb").read()[:5000])  # a copy cut short
    paths["not-lightning"] = str(folder / "plain.ckpt")
    torch.save({"encoder": {}}, paths["not-lightning"])
    return paths


@pytest.mark.parametrize("which, fragments", [
    ("missing", ["checkpoint not found"]),
    ("corrupt", ["corrupt or not a torch checkpoint"]),
    ("not-lightning", ["has no state_dict"]),
    ("byol", ["--method byol", "this run uses --method simclr"]),
    ("simclr-output-8", ["does not match this model's shape", "--output_dim"]),
])
def test_bad_pretrained_model(tmp_path, stand_in_checkpoints, which, fragments):
    path = stand_in_checkpoints.get(which, str(tmp_path / "missing.ckpt"))
    runs = tmp_path / "runs"
    result = run_main(tiny_argv(runs, num_tasks=2, extra=["--task_idx", "1", "--pretrained_model", path]))
    assert_one_line_error(result, path, *fragments)
    assert not runs.exists()  # checked before the run folder is made


def test_resume_of_a_load_task0_run_with_other_start_flags(tmp_path, stand_in_checkpoints):
    """A run started at task 1 from a checkpoint: --resume with another --pretrained_model, another
    --task_idx, or a --pretrained_model on a run that trained its own task 0, is refused."""
    start = stand_in_checkpoints["simclr"]
    run_dir = fake_run(str(tmp_path / "runs"), finished=(), extra=["--task_idx", "1", "--pretrained_model", start])
    before = fingerprint(run_dir)
    other = stand_in_checkpoints["simclr-output-8"]
    for flags, fragments in (
        (["--pretrained_model", other], [f"--pretrained_model {other} is not the checkpoint", start]),
        (["--task_idx", "0"], ["--task_idx 0", "started at task 1"]),
        (["--task_idx", "0", "--pretrained_model", start], ["--task_idx 0", "started at task 1"]),
    ):
        result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume", *flags]))
        assert_refused(result, run_dir, before, *fragments)
    own = fake_run(str(tmp_path / "runs"), name="own")
    before = fingerprint(own)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, name="own",
                           extra=["--resume", "--task_idx", "1", "--pretrained_model", start]))
    assert_refused(result, own, before, "--task_idx 1", "started at task 0")


# ------------------------------------------------------------------------------------------ locks, SLURM
def test_run_folder_in_use(tmp_path):
    """A live holder (the pid of the process that started this test, on this host) keeps a second job out; its
    lock is kept."""
    run_dir = fake_run(str(tmp_path / "runs"))
    lock = os.path.join(run_dir, ".lock")
    holder = {"host": socket.gethostname(), "pid": os.getppid(), "started": "now", "slurm_job_id": None,
              "launch": None}
    with open(lock, "w") as handle:
        json.dump(holder, handle)
    before = fingerprint(run_dir)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume"]))
    assert_one_line_error(result, f"in use by pid {os.getppid()} on host {socket.gethostname()}", lock)
    assert fingerprint(run_dir) == before and json.load(open(lock)) == holder


def test_lock_of_another_host_is_refused(tmp_path):
    run_dir = fake_run(str(tmp_path / "runs"))
    lock = os.path.join(run_dir, ".lock")
    holder = {"host": "node-that-is-not-this-one", "pid": 1, "started": "then", "slurm_job_id": None,
              "launch": None}
    with open(lock, "w") as handle:
        json.dump(holder, handle)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume"]))
    assert_one_line_error(result, "in use by pid 1 on host node-that-is-not-this-one")
    assert json.load(open(lock)) == holder


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    """A lock left by a killed job on this host (its pid is gone) is taken over; the finished run is
    listed and the lock released at the end."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = fake_run(str(tmp_path / "runs"), finished=(0, 1))
    lock = os.path.join(run_dir, ".lock")
    with open(lock, "w") as handle:
        json.dump({"host": socket.gethostname(), "pid": int(dead.stdout), "started": "then"}, handle)
    before = fingerprint(run_dir)
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2, extra=["--resume"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "task 1: finished earlier, skipped" in result.stderr
    assert_untouched(run_dir, before)


SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "cassle", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
         "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}


def test_another_slurm_job_without_resume_is_refused(tmp_path):
    """Only a requeue of the job that made the folder continues it without --resume; another job (even
    one that was requeued itself) is refused."""
    run_dir = fake_run(str(tmp_path / "runs"), env=SLURM)
    assert json.load(open(os.path.join(run_dir, "run.json")))["slurm_job_id"] == "4242"
    before = fingerprint(run_dir)
    for job, restarts in (("4243", "1"), ("4243", "0"), ("4242", "0")):
        env = dict(SLURM, SLURM_JOB_ID=job, SLURM_RESTART_COUNT=restarts)
        result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2), env=env)
        assert_refused(result, run_dir, before, f"run folder {run_dir} exists", "--resume")


def test_requeued_slurm_job_continues_without_resume(tmp_path):
    run_dir = fake_run(str(tmp_path / "runs"), finished=(0, 1), env=SLURM)
    before = fingerprint(run_dir)
    env = dict(SLURM, SLURM_RESTART_COUNT="1")
    result = run_main(tiny_argv(tmp_path / "runs", num_tasks=2), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SLURM job 4242 was requeued: continuing the run" in result.stderr
    assert "task 1: finished earlier, skipped" in result.stderr
    assert_untouched(run_dir, before)


# ------------------------------------------------------------------------------------------ moved runs
def test_resume_through_a_relative_checkpoint_dir_and_a_moved_folder(tmp_path):
    """A run made with an absolute --checkpoint_dir resumes through a relative one, and from another
    place after its folder was moved: the manifest holds paths relative to the run folder."""
    run_dir = fake_run(str(tmp_path / "runs"), finished=(0, 1))
    before = fingerprint(run_dir)
    relative = run_main(tiny_argv("runs", num_tasks=2, extra=["--resume"]), cwd=str(tmp_path))
    assert relative.returncode == 0, relative.stderr[-3000:]
    assert "task 1: finished earlier, skipped (runs/run/task1/final.ckpt)" in relative.stderr
    moved = tmp_path / "elsewhere"
    os.rename(tmp_path / "runs", moved)
    result = run_main(tiny_argv(moved, num_tasks=2, extra=["--resume"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"task 1: finished earlier, skipped ({moved / 'run' / 'task1' / 'final.ckpt'})" in result.stderr
    assert_untouched(str(moved / "run"), before)


# ------------------------------------------------------------------------------------------ evaluation
def test_summary_of_missing_and_corrupt_runs(tmp_path):
    missing = str(tmp_path / "missing")
    result = run(["summary", missing], script="cassle.evaluation")
    assert_one_line_error(result, missing, "does not exist")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "results.json").write_text("{\"final_acc\": ")
    result = run(["summary", str(corrupt)], script="cassle.evaluation")
    assert_one_line_error(result, str(corrupt / "results.json"), "corrupt")
    assert (corrupt / "results.json").read_text() == "{\"final_acc\": "
