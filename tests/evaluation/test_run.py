"""Whole-run evaluation (cassle/evaluation/run.py): the accuracy matrix, the continual metrics, the
result files, the summary across runs and the command line.

The assembly is tested with the per-checkpoint probe replaced by given metrics (hand-computed
expectations); one real tiny run checks ``main_pretrain.py --eval_every_task`` end to end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

import cassle.evaluation.probe as probe
from cassle.args.linear import parse_args
from cassle.errors import CassleError
from cassle.evaluation.report import summarize_runs
from cassle.evaluation.run import evaluate_run
from tests.helpers import ROOT, assert_one_line_error, run_cli, tiny_argv

DOMAINS = ["real", "quickdraw", "painting", "sketch", "infograph", "clipart"]


def make_run(root, name: str, *, dataset: str = "digits", split: str = "class", task_names=None,
             finished=(0, 1, 2, 3, 4), online=None, method: str = "simclr", distiller: str | None = "simclr_pnr",
             touch_checkpoints: bool = False) -> str:
    """A run folder as main_pretrain.py writes it (args.json, split.json, manifest.json)."""
    run = os.path.join(str(root), name)
    os.makedirs(run)
    names = task_names or [f"task{t}" for t in range(5)]
    tasks = [[2 * t, 2 * t + 1] for t in range(len(names))] if split == "class" else None
    with open(os.path.join(run, "args.json"), "w") as f:
        json.dump({"name": name, "method": method, "distiller": distiller, "dataset": dataset,
                   "split_strategy": split, "num_tasks": len(names)}, f)
    with open(os.path.join(run, "split.json"), "w") as f:
        json.dump({"split_strategy": split, "tasks": tasks, "task_names": names}, f)
    manifest = {"tasks": {}}
    for t in finished:
        metrics = {"val_acc1": online[t]} if online else {}
        manifest["tasks"][str(t)] = {"checkpoint": f"task{t}/final.ckpt", "metrics": metrics}
        if touch_checkpoints:
            os.makedirs(os.path.join(run, f"task{t}"), exist_ok=True)
            open(os.path.join(run, f"task{t}", "final.ckpt"), "wb").close()
    with open(os.path.join(run, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return run


def fake_probe(monkeypatch, table: dict) -> list:
    """Replace the per-checkpoint probe: ``table[task index or None]`` is the metrics dict it returns."""
    calls = []

    def fake(config, checkpoint, data=None, logger=None):
        calls.append(checkpoint)
        task = None if checkpoint is None else int(os.path.basename(os.path.dirname(checkpoint))[len("task"):])
        return probe.ProbeResult(dict(table[task]), {}, {})

    monkeypatch.setattr(probe, "probe_checkpoint", fake)
    return calls


def class_metrics(row, all_acc, knn=None):
    out = {f"val_acc1_task{j}": v for j, v in enumerate(row)}
    out.update(val_acc1=all_acc, val_acc5=99.0, val_loss=0.5)
    if knn is not None:
        out["knn_acc1"] = knn
    return out


# Hand-computed example: 5 tasks, acc[i][j] after task i on task j, random-init baseline b[j].
ACC = [
    [90.0, 20.0, 25.0, 30.0, 35.0],
    [70.0, 85.0, 28.0, 33.0, 38.0],
    [60.0, 75.0, 80.0, 36.0, 40.0],
    [65.0, 70.0, 72.0, 88.0, 45.0],
    [55.0, 60.0, 70.0, 75.0, 92.0],
]
BASELINE = [30.0, 22.0, 24.0, 26.0, 31.0]
# forgetting: j=0: max(90, 70, 60, 65) - 55 = 35; j=1: max(85, 75, 70) - 60 = 25; j=2: max(80, 72) - 70 = 10;
# j=3: 88 - 75 = 13  ->  (35 + 25 + 10 + 13) / 4 = 20.75
FORGETTING = 20.75
# forward transfer: (20 - 22) + (28 - 24) + (36 - 26) + (45 - 31) = -2 + 4 + 10 + 14 = 26  ->  26 / 4 = 6.5
FORWARD_TRANSFER = 6.5
ALL = [49.9, 55.5, 61.1, 67.7, 70.4]  # val_acc1 of each probe on the whole test set (given, not derived)
ONLINE = [41.0, 42.0, 43.0, 44.0, 45.0]


def md_rows(md: str) -> dict:
    """Markdown table rows of ``md``: first cell -> the other cells, stripped."""
    rows = {}
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def linear_args(run_dir: str, *extra: str):
    return parse_args(["--run_dir", run_dir, "--accelerator", "cpu", "--cache_features", *extra])


def test_class_incremental_matrix_forgetting_forward_transfer(tmp_path, monkeypatch):
    run = make_run(tmp_path, "r", online=ONLINE)
    table = {i: class_metrics(ACC[i], ALL[i], knn=80.0 + i) for i in range(5)}
    table[None] = class_metrics(BASELINE, 26.6, knn=33.0)
    calls = fake_probe(monkeypatch, table)

    res = evaluate_run(linear_args(run, "--max_epochs", "7", "--lr", "0.5"))

    assert calls == [os.path.join(run, f"task{t}", "final.ckpt") for t in range(5)] + [None]
    assert res["acc_matrix"] == ACC
    assert res["random_init"] == BASELINE
    assert res["final_acc"] == pytest.approx(70.4)  # val_acc1 of the last probe, not the row mean
    assert res["mean_task_acc"] == pytest.approx(sum(ACC[4]) / 5)
    assert res["forgetting"] == pytest.approx(FORGETTING)
    assert res["forward_transfer"] == pytest.approx(FORWARD_TRANSFER)
    assert res["knn_acc1"] == [80.0, 81.0, 82.0, 83.0, 84.0]
    assert res["online"] == {str(i): ONLINE[i] for i in range(5)}
    assert (res["run"], res["method"], res["distiller"], res["dataset"]) == ("r", "simclr", "simclr_pnr", "digits")
    assert res["task_names"] == [f"task{t}" for t in range(5)] and res["complete"] is True
    assert res["probe"]["lr"] == 0.5 and res["probe"]["epochs"] == 7 and res["probe"]["cache_features"] is True
    assert res["linear"]["3"]["val_acc1_task3"] == 88.0

    on_disk = json.load(open(os.path.join(run, "results.json")))
    assert on_disk["acc_matrix"] == ACC and on_disk["forgetting"] == pytest.approx(FORGETTING)
    md = open(os.path.join(run, "results.md")).read()
    rows = md_rows(md)
    assert rows["after task"] == ["task0", "task1", "task2", "task3", "task4", "all", "kNN", "online"]
    assert rows["3"] == ["65.0", "70.0", "72.0", "88.0", "45.0", "67.7", "83.0", "44.0"]
    assert rows["random init"] == ["30.0", "22.0", "24.0", "26.0", "31.0", "26.6", "33.0", "-"]
    assert "Final accuracy A_T: 70.40" in md
    assert "Forgetting: 20.75" in md and "Forward transfer: 6.50" in md
    with open(os.path.join(run, "results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(os.path.join(run, "results.png")) > 10_000


def test_data_incremental_has_one_column_and_no_forgetting(tmp_path, monkeypatch):
    run = make_run(tmp_path, "d", split="data", finished=(0, 1, 2), task_names=["task0", "task1", "task2"])
    table = {i: {"val_acc1": 60.0 + 5 * i, "val_acc5": 90.0, "val_loss": 1.0} for i in range(3)}
    table[None] = {"val_acc1": 30.0, "val_acc5": 70.0, "val_loss": 2.0}
    fake_probe(monkeypatch, table)
    res = evaluate_run(linear_args(run, "--split_strategy", "data"))
    assert res["acc_matrix"] == [[60.0], [65.0], [70.0]] and res["random_init"] == [30.0]
    assert res["columns"] == ["all"]
    assert res["final_acc"] == 70.0 and res["forgetting"] is None and res["forward_transfer"] is None
    md = open(os.path.join(run, "results.md")).read()
    assert "Forgetting: n/a" in md and "Forward transfer: n/a" in md


def test_domain_incremental_columns_are_domains(tmp_path, monkeypatch):
    run = make_run(tmp_path, "dn", dataset="domainnet", split="domain", task_names=DOMAINS,
                   finished=range(6), method="byol", distiller="byol_pnr")
    # acc[i][j] = 10 * (i + 1) + j; baseline b[j] = j
    table = {i: {f"val_acc1_{d}": 10.0 * (i + 1) + j for j, d in enumerate(DOMAINS)} for i in range(6)}
    for i in range(6):
        table[i].update(val_acc1=50.0 + i, domain_aware_acc1=60.0, domain_agnostic_acc1=50.0 + i)
    table[None] = {f"val_acc1_{d}": float(j) for j, d in enumerate(DOMAINS)}
    table[None]["val_acc1"] = 3.0
    fake_probe(monkeypatch, table)
    res = evaluate_run(linear_args(run, "--dataset", "domainnet", "--data_dir", str(tmp_path)))
    assert res["columns"] == DOMAINS and res["acc_matrix"][2][3] == 33.0
    # no forgetting: every column grows by 10 per task -> max over earlier rows - last row < 0
    # j: max_{i in [j, 4]} (10 (i + 1) + j) - (60 + j) = 50 + j - 60 - j = -10
    assert res["forgetting"] == pytest.approx(-10.0)
    # forward transfer: acc[j-1][j] - b[j] = 10 j + j - j = 10 j, mean over j = 1..5 -> 30
    assert res["forward_transfer"] == pytest.approx(30.0)
    assert res["final_acc"] == 55.0 and res["domain_aware_acc1"] == 60.0 and res["domain_agnostic_acc1"] == 55.0
    assert "Domain-aware accuracy: 60.00" in open(os.path.join(run, "results.md")).read()


def test_unfinished_run_uses_the_tasks_so_far(tmp_path, monkeypatch):
    run = make_run(tmp_path, "p", finished=(0, 1))
    table = {i: class_metrics(ACC[i], ALL[i]) for i in range(2)}
    table[None] = class_metrics(BASELINE, 26.6)
    fake_probe(monkeypatch, table)
    res = evaluate_run(linear_args(run))
    assert len(res["acc_matrix"]) == 2 and res["complete"] is False
    assert res["forgetting"] == pytest.approx(90.0 - 70.0)  # j = 0 only
    assert res["forward_transfer"] == pytest.approx(20.0 - 22.0)  # j = 1 only
    assert res["final_acc"] == ALL[1] and res["notes"]


def test_results_say_which_labelled_subset_the_probe_used(tmp_path, monkeypatch):
    from cassle.evaluation.report import describe_probe

    run = make_run(tmp_path, "s")
    table = {i: class_metrics(ACC[i], ALL[i]) for i in range(5)}
    table[None] = class_metrics(BASELINE, 26.6)
    fake_probe(monkeypatch, table)
    config = linear_args(run, "--semi_supervised", "0.1")
    res = evaluate_run(config)
    assert res["probe"]["semi_supervised"] == 0.1 and res["probe"]["label_fraction"] == 1.0
    assert res["probe"]["labels"].startswith("--semi_supervised 0.1: official stratified split")
    assert "--semi_supervised 0.1: official stratified split" in open(os.path.join(run, "results.md")).read()
    assert "--semi_supervised 0.1" in describe_probe(config)  # the title of main_linear.py's table
    assert "--label_fraction 0.01: class-balanced" in describe_probe(linear_args(run, "--label_fraction", "0.01"))


def test_run_folder_errors(tmp_path, monkeypatch):
    fake_probe(monkeypatch, {})
    empty = make_run(tmp_path, "empty", finished=())
    with pytest.raises(CassleError, match="no finished task"):
        evaluate_run(linear_args(empty))
    with pytest.raises(CassleError, match="does not exist"):
        evaluate_run(dataclasses.replace(linear_args(empty), run_dir=str(tmp_path / "nope")))
    other = make_run(tmp_path, "other", method="byol")
    with pytest.raises(CassleError, match="--method byol, not --method simclr"):
        evaluate_run(linear_args(other, "--method", "simclr"))
    with pytest.raises(CassleError, match="--dataset cifar100"):
        cifar = make_run(tmp_path, "cifar", dataset="cifar100")
        evaluate_run(linear_args(cifar))


def test_missing_run_folder_is_one_line_error(tmp_path):
    result = run_cli("main_linear.py", ["--run_dir", str(tmp_path / "missing"), "--accelerator", "cpu"])
    assert_one_line_error(result, str(tmp_path / "missing"))


# ------------------------------------------------------------------------------------------------
# Results are never lost to a folder that cannot be written


def chmod_blocks_writes(folder) -> bool:
    """Make ``folder`` read-only; False where that does not stop writes (root ignores permissions)."""
    os.chmod(folder, 0o555)
    try:
        open(os.path.join(folder, ".probe"), "w").close()
    except OSError:
        return True
    os.remove(os.path.join(folder, ".probe"))
    os.chmod(folder, 0o755)
    return False


def evaluated_class_run(tmp_path, monkeypatch):
    run = make_run(tmp_path, "r")
    table = {i: class_metrics(ACC[i], ALL[i]) for i in range(5)}
    table[None] = class_metrics(BASELINE, 26.6)
    fake_probe(monkeypatch, table)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return run, str(elsewhere)


def test_read_only_run_folder_keeps_the_results(tmp_path, monkeypatch, capsys):
    from cassle.evaluation.run import linear_main

    run, elsewhere = evaluated_class_run(tmp_path, monkeypatch)
    if not chmod_blocks_writes(run):
        pytest.skip("running as root: a read-only folder is still writable (see the next test)")
    try:
        with pytest.raises(CassleError) as err:
            linear_main(linear_args(run))
    finally:
        os.chmod(run, 0o755)
    message = str(err.value)
    assert "\n" not in message and run in message and f"written to {elsewhere}" in message
    assert json.load(open(os.path.join(elsewhere, "results.json")))["acc_matrix"] == ACC
    assert all(os.path.exists(os.path.join(elsewhere, name)) for name in ("results.md", "results.png"))
    assert "Final accuracy A_T: 70.40" in capsys.readouterr().out  # printed before the files were written


def test_unwritable_results_go_to_the_output_folder(tmp_path, monkeypatch):
    from cassle.evaluation.run import linear_main

    run, _ = evaluated_class_run(tmp_path, monkeypatch)
    open(os.path.join(run, "linear_heads"), "w").close()  # a file where the heads' folder goes
    output = tmp_path / "out" / "r.json"
    with pytest.raises(CassleError) as err:
        linear_main(linear_args(run, "--save_checkpoint", "--output", str(output)))
    message = str(err.value)
    assert "\n" not in message and run in message and f"written to {output.parent}" in message
    for name in ("results.json", "results.md", "results.png", "linear_heads/task4.pt", "linear_heads/random_init.pt"):
        assert os.path.exists(output.parent / name), name
    assert json.load(open(output))["forgetting"] == pytest.approx(FORGETTING)  # --output itself is written too


def test_checkpoint_probe_into_an_impossible_path_writes_beside(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    argv = ["--random_init", "--dataset", "digits", "--accelerator", "cpu", "--cache_features", "--num_workers", "0",
            "--batch_size", "32", "--label_fraction", "0.1", "--max_epochs", "1", "--knn_k", "0",
            "--output", str(blocker / "m.json")]  # its parent is a file
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="2")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main_linear.py"), *argv], capture_output=True,
                            text=True, cwd=str(cwd), env=env)
    assert_one_line_error(result, str(blocker), f"written to {cwd}")
    assert "| val_acc1 " in result.stdout
    assert json.load(open(cwd / "m.json"))["metrics"]["val_acc1"] > 0


def test_summary_table_and_cli(tmp_path, monkeypatch):
    done = make_run(tmp_path, "simclr-pnr", online=ONLINE)
    table = {i: class_metrics(ACC[i], ALL[i], knn=80.0 + i) for i in range(5)}
    table[None] = class_metrics(BASELINE, 26.6)
    fake_probe(monkeypatch, table)
    evaluate_run(linear_args(done))
    pending = make_run(tmp_path, "byol-finetune", method="byol", distiller=None)

    text = summarize_runs([done, pending])
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == ["run", "method", "regulariser", "final acc",
                                                              "forgetting", "forward transfer", "kNN"]
    assert [c.strip() for c in lines[2].split("|")[1:-1]] == ["simclr-pnr", "simclr", "simclr_pnr", "70.40",
                                                              "20.75", "6.50", "84.00"]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == ["byol-finetune", "byol", "none (fine-tuning)",
                                                              "not evaluated", "", "", ""]
    proc = subprocess.run([sys.executable, "-m", "cassle.evaluation", "summary", done, pending],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == text


def test_latest_checkpoint_cli(tmp_path):
    run = make_run(tmp_path, "r", finished=(0, 1, 2), touch_checkpoints=True)
    proc = subprocess.run([sys.executable, "-m", "cassle.evaluation", "latest-checkpoint", run],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == os.path.join(run, "task2", "final.ckpt")
    empty = make_run(tmp_path, "e", finished=())
    for folder in (empty, str(tmp_path / "missing")):
        proc = subprocess.run([sys.executable, "-m", "cassle.evaluation", "latest-checkpoint", folder],
                              capture_output=True, text=True, cwd=ROOT)
        assert_one_line_error(proc, folder)


# ------------------------------------------------------------------------------------------------
# One real run: main_pretrain.py --eval_every_task probes every task after the last one.


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_run")
    argv = tiny_argv(str(root), num_tasks=2, name="run", extra=["--eval_every_task", "--linear_max_epochs", "3",
                                                                  "--knn_k", "5"])
    proc = run_cli("main_pretrain.py", argv, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return os.path.join(str(root), "run"), proc


def test_eval_every_task_writes_the_results(evaluated_run):
    run, proc = evaluated_run
    res = json.load(open(os.path.join(run, "results.json")))
    assert len(res["acc_matrix"]) == 2 and all(len(row) == 2 for row in res["acc_matrix"])
    assert all(0.0 <= v <= 100.0 for row in res["acc_matrix"] for v in row)
    assert len(res["random_init"]) == 2 and all(v is not None for v in res["knn_acc1"])
    assert res["probe"]["cache_features"] is True and res["probe"]["epochs"] == 3 and res["probe"]["lr"] == 0.1
    assert res["final_acc"] == res["linear"]["1"]["val_acc1"]
    assert res["forgetting"] is not None and res["forward_transfer"] is not None
    assert set(res["online"]) == {"0", "1"}
    for name in ("results.md", "results.png"):
        assert os.path.getsize(os.path.join(run, name)) > 0
    assert "# Linear evaluation of run" in proc.stdout and "Final accuracy A_T" in proc.stdout
