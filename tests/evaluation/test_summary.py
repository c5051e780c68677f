"""``python -m cassle.evaluation summary`` (cassle/evaluation/report.py, published.py, __main__.py):
published numbers beside a run's own, their sources, and one-line errors for bad run folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cassle.data.info import DATASET_INFO
from cassle.evaluation.published import FAMILIES, PUBLISHED, SOURCES, find_published, regulariser_family
from cassle.evaluation.report import summarize_runs
from cassle.registry import METHODS, REGULARIZERS
from tests.helpers import ROOT, assert_one_line_error

METHOD_NAMES, DISTILLER_NAMES = tuple(METHODS), tuple(REGULARIZERS)


def write_results(root, name: str, *, dataset: str, method: str, distiller, split: str = "class",
                  num_tasks: int = 5, final_acc: float = 50.0) -> str:
    """A run folder with a results.json as the whole-run evaluation writes it (the keys the summary reads)."""
    run = os.path.join(str(root), name)
    os.makedirs(run)
    results = {"run": name, "method": method, "distiller": distiller, "dataset": dataset, "split_strategy": split,
               "num_tasks": num_tasks, "final_acc": final_acc, "forgetting": 1.0, "forward_transfer": 2.0,
               "knn_acc1": [40.0]}
    with open(os.path.join(run, "results.json"), "w") as f:
        json.dump(results, f)
    return run


def table_rows(text: str, title_fragment: str) -> list[list[str]]:
    """Body rows of the first markdown table after the line containing ``title_fragment``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title_fragment in line)
    table = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif table:
            break
    return table[2:]


def summary_cli(*run_dirs: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cassle.evaluation", "summary", *run_dirs],
                          capture_output=True, text=True, cwd=ROOT)


def test_published_numbers_beside_the_runs_final_accuracy(tmp_path):
    runs = [
        write_results(tmp_path, "byol-ft", dataset="cifar100", method="byol", distiller=None, final_acc=51.25),
        write_results(tmp_path, "moco-cassle", dataset="imagenet100", method="mocov2plus", distiller="contrastive"),
        write_results(tmp_path, "simclr-pnr", dataset="cifar100", method="simclr", distiller="simclr_pnr"),
        write_results(tmp_path, "barlow-pnr-10t", dataset="cifar100", method="barlow_twins", distiller="barlow_pnr",
                      num_tasks=10),
        write_results(tmp_path, "digits", dataset="digits", method="simclr", distiller="simclr_pnr"),
    ]
    text = summarize_runs(runs)
    rows = {row[0]: row[1:] for row in table_rows(text, "Published final linear accuracy")}
    assert rows["byol-ft"] == ["cifar100 class-incremental 5 tasks, byol, finetune", "51.25", "52.70", "cassle-readme"]
    # CaSSLe's own figure, then the PNR paper's re-run of the same baseline
    assert rows["moco-cassle"][2:] == ["68.80; 63.49", "cassle-readme; pnr-paper-baseline"]
    assert rows["simclr-pnr"][2:] == ["63.19", "pnr-aggregator"]  # the best PNR value, method not stated
    assert rows["barlow-pnr-10t"][2:] == ["59.29", "pnr-aggregator"]
    assert rows["digits"][2:] == ["-", "-"]
    footnotes = [line for line in text.splitlines() if line.startswith("- [")]
    assert [line.split("]")[0][3:] for line in footnotes] == ["cassle-readme", "pnr-paper-baseline", "pnr-aggregator"]
    assert all(SOURCES[key].url in line for key, line in zip(["cassle-readme", "pnr-paper-baseline"], footnotes))
    # the CLI prints the same text
    proc = summary_cli(*runs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == text


def test_no_published_number_for_the_setting(tmp_path):
    run = write_results(tmp_path, "d", dataset="digits", method="byol", distiller="predictive")
    text = summarize_runs([run])
    assert table_rows(text, "Published final linear accuracy")[0][3:] == ["-", "-"]
    assert "Sources: no published number is known for these settings." in text


def test_every_published_number_has_a_source_and_a_valid_setting():
    assert PUBLISHED
    for p in PUBLISHED:
        assert p.source in SOURCES and SOURCES[p.source].url.startswith("https://")
        assert p.split_strategy in DATASET_INFO[p.dataset]["split_strategies"]
        assert p.method is None or p.method in METHOD_NAMES
        assert p.family in FAMILIES and 0.0 < p.value < 100.0
    settings = [(p.dataset, p.split_strategy, p.num_tasks, p.method, p.family, p.source) for p in PUBLISHED]
    assert len(settings) == len(set(settings)), "one number per setting and source"
    assert find_published("cifar100", "class", 5, "vicreg", "cassle")[0].value == 53.6


def test_every_regulariser_has_a_family():
    assert regulariser_family(None) == "finetune"
    families = {name: regulariser_family(name) for name in DISTILLER_NAMES}
    assert set(families.values()) == {"pnr", "cassle"}
    assert [n for n, f in families.items() if f == "pnr"] == [n for n in DISTILLER_NAMES if n.endswith("_pnr")]


@pytest.mark.parametrize("case", ["missing", "no_results", "corrupt", "not_an_object", "a_file"])
def test_bad_run_folder_is_a_one_line_error(tmp_path, case):
    good = write_results(tmp_path, "good", dataset="cifar100", method="byol", distiller=None)
    bad = str(tmp_path / "bad")
    if case != "missing":
        os.makedirs(bad)
    if case == "corrupt":
        (tmp_path / "bad" / "results.json").write_text('{"final_acc": 5')
    if case == "not_an_object":
        (tmp_path / "bad" / "results.json").write_text("[1, 2]")
    if case == "a_file":
        bad = str(tmp_path / "bad" / "results.json")
        (tmp_path / "bad" / "results.json").write_text("{}")
    proc = summary_cli(good, bad)
    expected = {"missing": "does not exist", "no_results": "no results.json", "corrupt": "corrupt",
                "not_an_object": "corrupt", "a_file": "is not a folder"}[case]
    assert_one_line_error(proc, bad, expected)
    assert proc.stdout == ""


def test_summary_imports_no_torch(tmp_path):
    run = write_results(tmp_path, "r", dataset="cifar100", method="simclr", distiller="simclr_pnr")
    code = ("import sys; from cassle.evaluation.__main__ import main; rc = main(['summary', sys.argv[1]]); "
            "print('torch' in sys.modules); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, run], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
