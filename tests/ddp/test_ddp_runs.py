"""The real command line under DDP on the CPU (2 processes, gloo): rank 0 owns the run folder, the ranks
train the same weights, a run without online evaluation trains, a killed run resumes, torchrun launches."""

from __future__ import annotations

from cassle.utils.checkpoint import load_checkpoint
from cassle.utils.manifest import RunManifest
from tests.ddp.helpers import digests, run_ddp, tiny_ddp_argv, write_counts, writes


def test_mocov2plus_pnr_under_ddp_with_fast_data(tmp_path):
    """Queues and momentum encoder under DDP, both ranks on --fast_data shards: rank 0 alone writes every
    file of the run folder, each once per task; both ranks end every task with the same weights."""
    result = run_ddp(tmp_path, tiny_ddp_argv(tmp_path, "mocov2plus", "mocov2plus_pnr", extra=["--fast_data"]))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "run"
    manifest = RunManifest(str(run_dir))
    assert manifest.finished_tasks() == [0, 1]
    seen = digests(tmp_path)
    assert set(seen) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for task in (0, 1):
        assert seen[(task, 0)]["world_size"] == 2
        assert seen[(task, 0)]["sha256"] == seen[(task, 1)]["sha256"], f"ranks differ after task {task}"
    rank0 = seen[(0, 0)]["pid"]
    assert {pid for pid, _ in writes(tmp_path)} == {rank0}  # rank 1 wrote nothing
    counts = write_counts(tmp_path)
    for task in (0, 1):
        assert counts[str(run_dir / f"task{task}" / "final.ckpt")] == 1
    assert counts[str(run_dir / "manifest.json")] == 2  # one entry per task
    assert counts[str(run_dir / "args.json")] == 1 and counts[str(run_dir / ".lock")] == 1
    assert not (run_dir / ".lock").exists()  # released at the end
    # The enqueued keys came from both ranks: 2 steps x 2 ranks x 16 keys in a queue of 64.
    state = load_checkpoint(manifest.checkpoint(0))["state_dict"]
    assert int(state["queue_ptr"]) == (2 * 2 * 16) % 64
