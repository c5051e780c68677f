"""``python -m cassle.gpu_check``: the one-line exit without a GPU, the skipped-step rule, the GradScaler
recorder, a failing run, and the whole check in its CPU development mode (tiny sizes, fp32)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cassle.gpu_check import CALIBRATION_SKIPS, judge_scale_trace
from tests.helpers import ROOT, tiny_argv


def _run(args, tmp_path, **env):
    return subprocess.run([sys.executable, "-m", "cassle.gpu_check", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="2", WANDB_MODE="disabled", **env))


def test_without_a_gpu_it_says_so_in_one_line(tmp_path):
    result = _run(["--output", str(tmp_path / "check.json")], tmp_path, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no GPU") and "gpu-check" in lines[0], lines
    assert not (tmp_path / "check.json").exists()


def _trace(*scales):
    """(before, after) pairs from the scale after each step, starting at 2**16."""
    out, before = [], 65536.0
    for after in scales:
        out.append((before, float(after)))
        before = after
    return out


def test_rule_allows_calibration_at_the_start():
    # 3 overflows while the scale calibrates, then clean steps: passes.
    judged = judge_scale_trace(_trace(32768, 16384, 8192, *[8192] * 21))
    assert judged["problems"] == [] and judged["calibration_skips"] == 3 and judged["later_skips"] == 0
    assert judged["steps"] == 24 and judged["final_scale"] == 8192
    # No skip at all, and the scale growing (after 2000 clean steps) is not a skip.
    assert judge_scale_trace(_trace(*[65536] * 23, 131072))["problems"] == []


def test_rule_fails_on_a_skip_after_the_scale_settled():
    judged = judge_scale_trace(_trace(32768, *[32768] * 10, 16384, *[16384] * 12))
    assert judged["calibration_skips"] == 1 and judged["later_skips"] == 1
    assert any("after the scale had settled (first at step 12)" in p for p in judged["problems"])


def test_rule_fails_on_a_long_calibration_or_too_few_applied_steps():
    long_start = [65536 / 2 ** (k + 1) for k in range(CALIBRATION_SKIPS + 1)]
    judged = judge_scale_trace(_trace(*long_start, *[long_start[-1]] * 20))
    assert any("skipped steps at the start" in p for p in judged["problems"])
    # Allowed calibration, but in a run so short that most steps were skipped.
    judged = judge_scale_trace(_trace(32768, 16384, 8192, 8192))
    assert judged["problems"] == ["only 1 of 4 steps applied"]
    # Every step skipped: nothing trained.
    assert judge_scale_trace(_trace(32768, 16384))["problems"] == ["only 0 of 2 steps applied"]


def test_recorder_sees_the_real_grad_scaler_skip_a_step():
    import torch

    from cassle.gpu_check import recording_grad_scalers

    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with recording_grad_scalers() as traces:
        scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
        for value in (1.0, float("inf"), 1.0):  # the second step overflows
            optimizer.zero_grad()
            scaler.scale(model(torch.full((2, 3), value)).sum()).backward()
            scaler.step(optimizer)
            scaler.update()
        torch.amp.GradScaler("cpu", enabled=False).update()  # disabled scalers are not traced
    assert traces == [[(4.0, 4.0), (4.0, 2.0), (2.0, 2.0)]]
    judged = judge_scale_trace(traces[0])
    assert judged["calibration_skips"] == 0 and judged["later_skips"] == 1
    update = torch.amp.GradScaler.update
    assert update.__name__ == "update" and "gpu_check" not in update.__module__


def test_a_nan_loss_fails_the_run(tmp_path, capsys):
    """The joint with the real driver: plain SGD at an infinite learning rate makes the second step's loss
    NaN; the driver stops with its one-line error and the run is judged failed."""
    from cassle.gpu_check import run_training

    extra = ["--lr", "inf", "--warmup_epochs", "0", "--max_epochs", "2"]
    argv = tiny_argv(str(tmp_path), num_tasks=2, name="nan", extra=extra)
    run = run_training("nan", argv, str(tmp_path / "nan"), fp16=False, steps_per_task=2)
    assert run["status"] == "failed"
    assert any(p.startswith("exit status 2: error: task 0: the loss became nan") for p in run["problems"]), run
    assert "task 0 did not finish" in run["problems"] and "task 1 did not finish" in run["problems"]


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "report.json"
    result = _run(["--allow_cpu", "--tiny", "--methods", "simclr", "--output", str(out)], out.parent)
    return result, out


@pytest.mark.slow  # every section of make gpu-check, on the CPU: make test-slow
def test_cpu_development_mode_runs_every_section(cpu_check):
    result, out = cpu_check
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert report["status"] == "passed"
    assert list(sections) == ["environment", "decode", "training", "ddp", "benchmark"]
    env = sections["environment"]
    assert env["device"] == "cpu" and env["driver"] == "unknown" and env["lightning"]
    runs = {run["run"]: run for run in sections["training"]["runs"]}
    assert sorted(runs) == ["cifar100-simclr-faithful", "cifar100-simclr-fast", "imagenet100-simclr-fast"]
    for run in runs.values():
        assert run["status"] == "passed" and [t["task"] for t in run["tasks"]] == [0, 1]
        assert "train_pnr_reg_loss" in run["regularizer_terms"]  # task 1 ran the PNR regulariser
    # The runs used the recipes' flags (the scripts' values) with the check's overrides at the end.
    argv = runs["cifar100-simclr-fast"]["argv"]
    assert argv[argv.index("--lr") + 1] == "0.6" and argv[argv.index("--distiller") + 1] == "simclr_pnr"
    assert argv[-1] == "--fast_data" and "--precision" in argv
    assert sections["decode"]["status"] == "passed" and sections["decode"]["files"] == 100
    assert sections["ddp"]["status"].startswith("skipped")
    assert {r["path"] for r in sections["benchmark"]["rows"]} == {"faithful", "fast", "bare"}
    markdown = out.with_suffix(".md").read_text()
    for fragment in ("status: **passed**", "cifar100-simclr-faithful", "of the floor", "skipped: no GPU"):
        assert fragment in markdown
    assert "torch" in result.stdout and "Lightning" in result.stdout
