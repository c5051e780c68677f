"""The throughput benchmark runs end to end on a tiny setting (the machine's default precision: fp32 on a
CPU without native bf16) and prints its table; the bare PyTorch floor does one real step's math."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow  # the whole benchmark command end to end: make test-slow
def test_benchmark_tiny_cpu(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "cassle.benchmark",
        "--methods", "simclr", "--regularizers", "pnr", "--batch_size", "4", "--steps", "1",
        "--warmup", "1", "--num_workers", "1", "--accelerator", "cpu", "--output", str(out)],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    for fragment in ("steps/s", "of the floor", "data path views/s", "est. CIFAR-100", "fast/faithful"):
        assert fragment in table, table
    report = json.loads(out.read_text())
    from cassle.utils.hardware import cpu_default_precision

    assert report["options"]["precision"] == cpu_default_precision()  # never bf16 on a CPU without it
    rows = report["rows"]
    assert {(r["regularizer"], r["path"]) for r in rows} == {("pnr", path) for path in ("faithful", "fast", "bare")}
    assert all(r["steps_per_s"] > 0 for r in rows)
    assert all((r["data_views_per_s"] is None) == (r["path"] == "bare") for r in rows)


@pytest.mark.parametrize("method, regularizer", [("mocov2plus", "pnr")])
def test_bare_step_trains_the_model(method, regularizer, monkeypatch):
    """One bare step moves the encoder, the projector, g and the online classifier (the joint with the
    method's module), and leaves the frozen teacher alone."""
    import torch

    import cassle.benchmark
    from cassle.benchmark import bare_step_seconds

    built = []
    benchmark_model = cassle.benchmark.benchmark_model
    monkeypatch.setattr(cassle.benchmark, "benchmark_model", lambda *a: built.append(benchmark_model(*a)) or built[-1])
    torch.manual_seed(0)
    seconds = bare_step_seconds(method, batch_size=4, precision="32", device="cpu", steps=1, warmup=1,
                                regularizer=regularizer)
    assert seconds > 0
    model = built[0]
    for name in ("encoder", "projector", "distill_predictor", "classifier"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, name).parameters()), name
    assert all(p.grad is None for p in model.frozen_encoder.parameters())
