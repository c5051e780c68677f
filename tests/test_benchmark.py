"""The throughput benchmark runs end to end on a tiny setting and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT


def test_benchmark_tiny_cpu(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "cassle.benchmark",
        "--methods", "byol", "--regularizers", "none", "pnr", "--batch_size", "8", "--steps", "2",
        "--warmup", "1", "--num_workers", "1", "--accelerator", "cpu", "--output", str(out)],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    for fragment in ("steps/s", "data path views/s", "est. CIFAR-100", "fast/faithful"):
        assert fragment in table, table
    import json

    rows = json.loads(out.read_text())["rows"]
    assert {(r["regularizer"], r["path"]) for r in rows} == {
        ("none", "faithful"), ("none", "fast"), ("pnr", "faithful"), ("pnr", "fast")}
    assert all(r["steps_per_s"] > 0 and r["data_views_per_s"] > 0 for r in rows)
