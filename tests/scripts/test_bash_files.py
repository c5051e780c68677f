"""The scripts in bash_files/ and the run_*.sh entry points, checked through ``--dry_run``.

Every script is run with bash and ``--dry_run`` appended: main_pretrain.py / main_linear.py then print
the configuration they resolved as JSON, which is compared with ``expected_recipes.json`` (the official
PNR recipes, every flag, with the documented fixes). The tests read what the scripts resolve to, never
the script text, so a dropped line continuation, a misspelt flag or a flag placed after ``"$@"`` shows.

The ``<method>_pnr.sh`` recipe of each benchmark is stored in full; the other variants are checked as
rules on top of it: CaSSLe = PNR with CaSSLe's distiller and no ``--negative_lamb``; fine-tuning = PNR
without a distiller; load_task0 = PNR from task 1 of a given checkpoint; 10 tasks = the 5-task recipe
with ``--num_tasks 10``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASH_FILES = os.path.join(ROOT, "bash_files")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_recipes.json")) as f:
    EXPECTED = json.load(f)
BENCHMARKS = EXPECTED["benchmarks"]
METHODS = EXPECTED["methods"]
HAVE_LINEAR = os.path.exists(os.path.join(ROOT, "main_linear.py"))
needs_linear = pytest.mark.skipif(not HAVE_LINEAR, reason="main_linear.py is not there yet")

# Variables the scripts read; cleared from the test environment so that a developer's shell cannot leak in.
SCRIPT_VARS = ("DATA_DIR", "TRAIN_DIR", "VAL_DIR", "IMAGENET_TRAIN_DIR", "IMAGENET_VAL_DIR", "CHECKPOINT_DIR",
               "NUM_TASKS", "SEED", "PROJECT",
               "ENTITY", "NAME", "PRETRAINED_PATH", "RUN_DIR", "METHODS", "REGULARIZERS", "NAME_SUFFIX",
               "DRY_RUN", "PYTHON")
DUMMY = {
    "DATA_DIR": "/dummy/data",
    "TRAIN_DIR": "/dummy/imagenet-100/train",
    "VAL_DIR": "/dummy/imagenet-100/val",
    "IMAGENET_TRAIN_DIR": "/dummy/imagenet/train",
    "IMAGENET_VAL_DIR": "/dummy/imagenet/val",
    "CHECKPOINT_DIR": "/dummy/trained_models",
    "PRETRAINED_PATH": "/dummy/checkpoints/task0.ckpt",
    "RUN_DIR": "/dummy/trained_models/some-run",
    "PROJECT": "dummy-project",
    "ENTITY": "dummy-entity",
}
# The second pass: another NAME, no wandb, no RUN_DIR (so the probes take PRETRAINED_PATH) and a flag
# appended after the recipe, which must win.
OVERRIDE_ENV = {**{k: v for k, v in DUMMY.items() if k != "RUN_DIR"}, "NAME": "override-name", "PROJECT": ""}
OVERRIDE_ARGS = ["--max_epochs", "3"]

PRETRAIN_VARIANTS = ("pnr", "cassle", "finetune", "pnr_load_task0")
CONTINUAL_RE = re.compile(r"continual/(?P<bench>.+?)/(?P<ten>10tasks/)?(?P<stem>[a-z0-9]+)_(?P<variant>"
                          + "|".join(sorted(PRETRAIN_VARIANTS, key=len, reverse=True)) + r")\.sh")
LINEAR_RE = re.compile(r"linear/(?P<bench>.+)/(?P<stem>[a-z0-9]+)_linear\.sh")


class Script(NamedTuple):
    path: str  # relative to bash_files/
    kind: str  # "continual" or "linear"
    bench: str
    stem: str  # method file name: simclr, mocov2plus, byol, barlow, vicreg
    variant: str  # pnr, cassle, finetune, pnr_load_task0, or "linear"
    ten: bool  # a 10-task wrapper

    @property
    def num_tasks(self) -> int:
        return 10 if self.ten else BENCHMARKS[self.bench]["num_tasks"]

    @property
    def default_name(self) -> str:
        regularizer = "pnr" if self.variant == "pnr_load_task0" else self.variant
        suffix = "-load-task0" if self.variant == "pnr_load_task0" else ""
        return f"{self.stem}-{regularizer}-{BENCHMARKS[self.bench]['tag']}-{self.num_tasks}t{suffix}"


def classify(path: str) -> Script:
    match = CONTINUAL_RE.fullmatch(path)
    if match:
        return Script(path, "continual", match["bench"], match["stem"], match["variant"], bool(match["ten"]))
    match = LINEAR_RE.fullmatch(path)
    if match:
        return Script(path, "linear", match["bench"], match["stem"], "linear", False)
    raise AssertionError(f"bash_files/{path} follows none of the script layouts")


def find_scripts() -> list[str]:
    found = []
    for folder, _, files in os.walk(BASH_FILES):
        found += [os.path.relpath(os.path.join(folder, name), BASH_FILES) for name in files if name.endswith(".sh")]
    return sorted(found)


def expected_script_paths() -> set[str]:
    paths = set()
    for bench, info in BENCHMARKS.items():
        for stem in METHODS:
            paths.add(f"linear/{bench}/{stem}_linear.sh")
            for variant in PRETRAIN_VARIANTS:
                paths.add(f"continual/{bench}/{stem}_{variant}.sh")
            if info["ten_tasks"]:
                for variant in ("pnr", "cassle", "finetune"):
                    paths.add(f"continual/{bench}/10tasks/{stem}_{variant}.sh")
    return paths


SCRIPTS = [classify(path) for path in find_scripts()]
CONTINUAL = [s for s in SCRIPTS if s.kind == "continual"]
LINEAR = [s for s in SCRIPTS if s.kind == "linear"]


def script_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    env.update(PYTHON=sys.executable, WANDB_MODE="disabled", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra or {})
    return env


def run_bash(script: str, args: Sequence[str], env: dict[str, str], cwd: str = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", script, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def dry_run(script: str, env_vars: dict[str, str], args: Sequence[str] = (), cwd: str = ROOT) -> dict[str, Any]:
    """Run a script (path relative to bash_files/, or absolute) with --dry_run appended; return its JSON."""
    proc = run_bash(os.path.join(BASH_FILES, script), [*args, "--dry_run"], script_env(env_vars), cwd)
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stderr}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"{script} did not print one JSON object ({err}):\n{proc.stdout[:2000]}") from None


class DryRuns:
    """Both passes of every script, run once in parallel; a failing script fails only its own tests."""

    def __init__(self) -> None:
        jobs = [(s.path, "main", DUMMY, []) for s in SCRIPTS if s.kind == "continual" or HAVE_LINEAR]
        jobs += [(path, "override", OVERRIDE_ENV, OVERRIDE_ARGS) for path, *_ in jobs]

        def run(job: tuple) -> tuple[tuple[str, str], dict[str, Any] | AssertionError]:
            try:
                return (job[0], job[1]), dry_run(job[0], job[2], job[3])
            except AssertionError as err:
                return (job[0], job[1]), err

        with ThreadPoolExecutor(max_workers=4) as pool:
            self._results = dict(pool.map(run, jobs))

    def __getitem__(self, key: tuple[str, str]) -> dict[str, Any]:
        result = self._results[key]
        if isinstance(result, AssertionError):
            raise AssertionError(f"{key[1]} pass: {result}")
        return result


@pytest.fixture(scope="module")
def resolved() -> DryRuns:
    """{(script path, "main" | "override"): the JSON the script resolved to}."""
    return DryRuns()


def mismatches(got: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    def same(a: Any, b: Any) -> bool:
        if isinstance(b, bool) or b is None or isinstance(a, bool):
            return a is b or a == b and type(a) is type(b)
        if isinstance(b, float) or isinstance(a, float):
            return isinstance(a, (int, float)) and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
        if isinstance(b, list):
            return isinstance(a, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(b, dict):
            return isinstance(a, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in b)
        return a == b and type(a) is type(b)

    return [f"{key}: got {got.get(key, '<missing>')!r}, expected {value!r}"
            for key, value in expected.items() if key not in got or not same(got[key], value)]


def class_split(num_tasks: int, dataset: str = "cifar100") -> list[list[int]]:
    key = "class_split_seed5_1000" if dataset == "imagenet" else "class_split_seed5"
    return EXPECTED[key][str(num_tasks)]


# The class-folder trees each dataset's scripts read (DUMMY variables), None: --data_dir only.
FOLDER_VARS = {"imagenet100": ("TRAIN_DIR", "VAL_DIR"), "imagenet": ("IMAGENET_TRAIN_DIR", "IMAGENET_VAL_DIR")}


def folders(dataset: str) -> dict[str, str | None]:
    train, val = FOLDER_VARS.get(dataset, (None, None))
    return {"train_dir": DUMMY.get(train), "val_dir": DUMMY.get(val)}


def recipe(kind: str, bench: str, stem: str) -> dict[str, Any]:
    """The stored recipe of a benchmark, or (``recipe_of``) the one it is derived from with its dataset."""
    source = BENCHMARKS[bench].get("recipe_of")
    if source is None:
        return dict(EXPECTED[kind][bench][stem])
    return {**EXPECTED[kind][source][stem], "dataset": BENCHMARKS[bench]["dataset"]}


def expected_pretrain(s: Script) -> dict[str, Any]:
    """What a continual script must resolve to in the main pass (env DUMMY, NAME unset)."""
    method = METHODS[s.stem]
    exp = recipe("pretrain", s.bench, s.stem)
    if s.variant == "cassle":
        exp.update(distiller=method["cassle"], negative_lamb=method["negative_lamb_default"])
    elif s.variant == "finetune":
        exp.update(distiller=None, negative_lamb=method["negative_lamb_default"])
    exp["pretrained_model"] = None
    if s.variant == "pnr_load_task0":
        exp.update(task_idx=1, pretrained_model=DUMMY["PRETRAINED_PATH"])
    exp["num_tasks"] = s.num_tasks
    exp["tasks"] = class_split(s.num_tasks, exp["dataset"]) if exp["split_strategy"] == "class" else None
    exp.update(
        data_dir=DUMMY["DATA_DIR"],
        **folders(exp["dataset"]),
        checkpoint_dir=DUMMY["CHECKPOINT_DIR"],
        name=s.default_name,
        run_dir=os.path.join(DUMMY["CHECKPOINT_DIR"], s.default_name),
        wandb=True, project=DUMMY["PROJECT"], entity=DUMMY["ENTITY"],
    )
    return exp


def expected_linear(s: Script) -> dict[str, Any]:
    """What a linear-probe script must resolve to in the main pass (RUN_DIR and PRETRAINED_PATH set)."""
    exp = recipe("linear", s.bench, s.stem)
    exp["tasks"] = class_split(exp["num_tasks"], exp["dataset"]) if exp["split_strategy"] == "class" else None
    exp.update(
        run_dir=DUMMY["RUN_DIR"], pretrained_feature_extractor=None,
        data_dir=DUMMY["DATA_DIR"],
        **folders(exp["dataset"]),
        checkpoint_dir=DUMMY["CHECKPOINT_DIR"],
        wandb=True, project=DUMMY["PROJECT"], entity=DUMMY["ENTITY"],
    )
    return exp


def counterpart(s: Script, variant: str | None = None, ten: bool | None = None) -> Script:
    variant = s.variant if variant is None else variant
    ten = s.ten if ten is None else ten
    path = f"continual/{s.bench}/{'10tasks/' if ten else ''}{s.stem}_{variant}.sh"
    return Script(path, "continual", s.bench, s.stem, variant, ten)


def differing_keys(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k, "<missing>") != b.get(k, "<missing>")}


# ---------------------------------------------------------------------------------------------------
# The set of scripts


def test_every_expected_script_exists_and_nothing_else():
    found = set(find_scripts())
    expected = expected_script_paths()
    assert not expected - found, f"missing scripts: {sorted(expected - found)}"
    assert not found - expected, f"scripts the expected recipes do not describe: {sorted(found - expected)}"


# ---------------------------------------------------------------------------------------------------
# Continual pretraining scripts


@pytest.mark.parametrize("s", CONTINUAL, ids=[s.path for s in CONTINUAL])
def test_continual_script_resolves_to_the_recipe(s, resolved):
    got = resolved[(s.path, "main")]
    problems = mismatches(got, expected_pretrain(s))
    assert not problems, f"{s.path}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("s", CONTINUAL, ids=[s.path for s in CONTINUAL])
def test_continual_script_arguments_come_last_and_env_is_read(s, resolved):
    got = resolved[(s.path, "override")]
    assert got["max_epochs"] == 3, f"{s.path}: an appended --max_epochs 3 did not win"
    assert got["name"] == "override-name", f"{s.path}: NAME from the environment was not used"
    assert got["run_dir"] == os.path.join(DUMMY["CHECKPOINT_DIR"], "override-name")
    assert (got["wandb"], got["project"], got["entity"]) == (False, None, None), \
        f"{s.path}: wandb flags passed although PROJECT is empty"


@pytest.mark.parametrize("s", [s for s in CONTINUAL if s.variant in ("cassle", "finetune")],
                         ids=[s.path for s in CONTINUAL if s.variant in ("cassle", "finetune")])
def test_baselines_differ_from_pnr_only_in_the_regulariser(s, resolved):
    got = resolved[(s.path, "main")]
    pnr = resolved[(counterpart(s, "pnr").path, "main")]
    assert differing_keys(got, pnr) <= {"distiller", "negative_lamb", "name", "run_dir"}, \
        f"{s.path} differs from its PNR recipe in {sorted(differing_keys(got, pnr) - {'name', 'run_dir'})}"
    assert got["distiller"] == (METHODS[s.stem]["cassle"] if s.variant == "cassle" else None)
    assert got["negative_lamb"] == METHODS[s.stem]["negative_lamb_default"]


@pytest.mark.parametrize("s", [s for s in CONTINUAL if s.variant == "pnr_load_task0"],
                         ids=[s.path for s in CONTINUAL if s.variant == "pnr_load_task0"])
def test_load_task0_starts_at_task_1_from_the_checkpoint(s, resolved):
    got = resolved[(s.path, "main")]
    pnr = resolved[(counterpart(s, "pnr").path, "main")]
    assert got["task_idx"] == 1
    assert got["pretrained_model"] == DUMMY["PRETRAINED_PATH"]
    assert differing_keys(got, pnr) <= {"task_idx", "pretrained_model", "name", "run_dir"}


@pytest.mark.parametrize("s", [s for s in CONTINUAL if s.ten], ids=[s.path for s in CONTINUAL if s.ten])
def test_ten_task_variant_is_the_five_task_recipe_with_ten_tasks(s, resolved):
    got = resolved[(s.path, "main")]
    five = resolved[(counterpart(s, ten=False).path, "main")]
    assert got["num_tasks"] == 10 and len(got["tasks"] or [None] * 10) == 10
    assert got["name"].endswith("-10t")
    assert differing_keys(got, five) <= {"num_tasks", "tasks", "task_names", "name", "run_dir"}


def test_load_task0_without_pretrained_path_stops_with_a_message():
    proc = run_bash(os.path.join(BASH_FILES, "continual/cifar/byol_pnr_load_task0.sh"), ["--dry_run"],
                    script_env({k: v for k, v in DUMMY.items() if k != "PRETRAINED_PATH"}))
    assert proc.returncode != 0
    assert "PRETRAINED_PATH" in proc.stderr and proc.stdout == ""


def test_relative_paths_are_taken_from_the_calling_directory(tmp_path):
    script = os.path.join(BASH_FILES, "continual/imagenet-100/class/simclr_pnr.sh")
    got = dry_run(script, {"DATA_DIR": "data", "CHECKPOINT_DIR": "./runs"}, cwd=str(tmp_path))
    assert got["data_dir"] == str(tmp_path / "data")
    assert got["train_dir"] == str(tmp_path / "data" / "imagenet-100" / "train")
    assert got["val_dir"] == str(tmp_path / "data" / "imagenet-100" / "val")
    assert got["checkpoint_dir"] == str(tmp_path / "runs")


def test_imagenet_1k_folders_default_under_data_dir(tmp_path):
    got = dry_run("continual/imagenet/class/byol_pnr.sh", {"DATA_DIR": "data"}, cwd=str(tmp_path))
    assert (got["dataset"], got["num_classes"]) == ("imagenet", 1000)
    assert got["train_dir"] == str(tmp_path / "data" / "imagenet" / "train")
    assert got["val_dir"] == str(tmp_path / "data" / "imagenet" / "val")


def test_defaults_live_in_the_repository():
    got = dry_run("continual/cifar/vicreg_finetune.sh", {})
    assert got["data_dir"] == os.path.join(ROOT, "datasets")
    assert got["checkpoint_dir"] == os.path.join(ROOT, "trained_models")
    assert (got["seed"], got["num_tasks"], got["wandb"]) == (5, 5, False)


def test_seed_num_tasks_and_entity_come_from_the_environment():
    got = dry_run("continual/cifar/simclr_cassle.sh", {"SEED": "7", "NUM_TASKS": "10", "PROJECT": "p"})
    assert got["seed"] == 7 and got["num_tasks"] == 10 and got["name"] == "simclr-cassle-cifar100-10t"
    assert got["tasks"] != class_split(10) and sorted(sum(got["tasks"], [])) == list(range(100))
    assert (got["wandb"], got["project"], got["entity"]) == (True, "p", None)
    domainnet = dry_run("continual/domainnet/simclr_pnr.sh", {"NUM_TASKS": "10"})
    assert domainnet["num_tasks"] == 6 and domainnet["name"] == "simclr-pnr-domainnet-6t"


# ---------------------------------------------------------------------------------------------------
# Linear-probe scripts


@needs_linear
@pytest.mark.parametrize("s", LINEAR, ids=[s.path for s in LINEAR])
def test_linear_script_resolves_to_the_recipe(s, resolved):
    got = resolved[(s.path, "main")]
    problems = mismatches(got, expected_linear(s))
    assert not problems, f"{s.path}:\n  " + "\n  ".join(problems)


@needs_linear
@pytest.mark.parametrize("s", LINEAR, ids=[s.path for s in LINEAR])
def test_linear_script_arguments_come_last_and_take_a_checkpoint(s, resolved):
    got = resolved[(s.path, "override")]
    assert got["max_epochs"] == 3
    assert got["name"] == "override-name"
    assert (got["run_dir"], got["pretrained_feature_extractor"]) == (None, DUMMY["PRETRAINED_PATH"])
    assert (got["wandb"], got["project"], got["entity"]) == (False, None, None)


# ---------------------------------------------------------------------------------------------------
# run_*.sh entry points (DRY_RUN=1: check every command with --dry_run, then print them)

# Benchmarks without a top-level entry point (ImageNet-1k: one method at a time) have run_script null.
RUN_SCRIPTS = sorted((b for b in BENCHMARKS if BENCHMARKS[b]["run_script"]), key=lambda b: BENCHMARKS[b]["run_script"])


def run_entry_point(bench: str, env_vars: dict[str, str], args: Sequence[str] = ()) -> subprocess.CompletedProcess:
    env = script_env({"DATA_DIR": DUMMY["DATA_DIR"], **env_vars})
    return run_bash(os.path.join(ROOT, BENCHMARKS[bench]["run_script"]), list(args), env, cwd=ROOT)


def printed_commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def expected_commands(bench: str, checkpoint_dir: str, regularizers: list[str], extra: list[str]) -> list[list[str]]:
    info = BENCHMARKS[bench]
    tasks = info["num_tasks"]
    commands, run_dirs = [], []
    for stem in EXPECTED["method_order"]:
        for reg in regularizers:
            name = f"{stem}-{reg}-{info['tag']}-{tasks}t"
            run_dir = os.path.join(checkpoint_dir, name)
            commands.append(["env", f"NAME={name}", "bash", f"bash_files/continual/{bench}/{stem}_{reg}.sh", *extra])
            commands.append(["env", f"NAME={name}-linear", f"RUN_DIR={run_dir}", "bash",
                             f"bash_files/linear/{bench}/{stem}_linear.sh"])
            run_dirs.append(run_dir)
    commands.append([sys.executable, "-m", "cassle.evaluation", "summary", *run_dirs])
    return commands


@needs_linear
@pytest.mark.parametrize("bench", RUN_SCRIPTS, ids=[BENCHMARKS[b]["run_script"] for b in RUN_SCRIPTS])
def test_run_script_prints_pretraining_probe_and_summary_for_each_method(bench, tmp_path):
    proc = run_entry_point(bench, {"DRY_RUN": "1", "CHECKPOINT_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert printed_commands(proc.stdout) == expected_commands(bench, str(tmp_path), ["pnr"], [])
    assert not os.listdir(tmp_path), "DRY_RUN=1 must not write anything"


@needs_linear
def test_run_script_full_comparison_passes_extra_arguments_to_pretraining(tmp_path):
    proc = run_entry_point("cifar", {"DRY_RUN": "1", "CHECKPOINT_DIR": str(tmp_path),
                                     "REGULARIZERS": "pnr cassle finetune"}, ["--max_epochs", "1"])
    assert proc.returncode == 0, proc.stderr
    expected = expected_commands("cifar", str(tmp_path), ["pnr", "cassle", "finetune"], ["--max_epochs", "1"])
    assert printed_commands(proc.stdout) == expected


@needs_linear
def test_run_script_stops_before_training_when_a_command_does_not_resolve(tmp_path):
    proc = run_entry_point("domainnet", {"CHECKPOINT_DIR": str(tmp_path)}, ["--max_epochs", "0"])
    assert proc.returncode != 0
    assert "pretraining of mocov2plus-pnr-domainnet-6t" in proc.stderr
    assert printed_commands(proc.stdout) == [] and not os.listdir(tmp_path)


def test_run_script_rejects_an_unknown_method(tmp_path):
    proc = run_entry_point("imagenet-100/data", {"METHODS": "byol simsiam", "CHECKPOINT_DIR": str(tmp_path)})
    assert proc.returncode != 0 and "unknown method 'simsiam'" in proc.stderr
    assert printed_commands(proc.stdout) == []


FAKE_PYTHON = """#!/usr/bin/env bash
# Dry runs go to the real interpreter; anything else is only logged (and fails when it matches FAKE_FAIL).
for arg in "$@"; do
    if [[ "$arg" == --dry_run ]]; then exec "$REAL_PYTHON" "$@"; fi
done
printf '%s\\n' "$*" >>"$FAKE_LOG"
if [[ -n "${FAKE_FAIL:-}" && "$*" == *"$FAKE_FAIL"* ]]; then exit 3; fi
if [[ "$1" == -m ]]; then echo "| summary table |"; fi
"""


def fake_python(tmp_path) -> dict[str, str]:
    path = tmp_path / "python"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return {"PYTHON": str(path), "REAL_PYTHON": sys.executable, "FAKE_LOG": str(tmp_path / "calls.log"),
            "CHECKPOINT_DIR": str(tmp_path / "runs"), "METHODS": "byol simclr"}


@needs_linear
def test_run_script_runs_pretraining_then_probe_per_run_then_the_summary(tmp_path):
    env = fake_python(tmp_path)
    proc = run_entry_point("cifar", env, ["--max_epochs", "1"])
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    runs = tmp_path / "runs"
    assert [call.split()[0] for call in calls] == ["main_pretrain.py", "main_linear.py"] * 2 + ["-m"]
    assert "--name byol-pnr-cifar100-5t" in calls[0] and calls[0].endswith("--max_epochs 1")
    assert f"--run_dir {runs}/byol-pnr-cifar100-5t" in calls[1]
    assert calls[1].split().count("--max_epochs") == 1, "extra arguments are for the pretraining only"
    assert "--name simclr-pnr-cifar100-5t" in calls[2]
    assert calls[4] == f"-m cassle.evaluation summary {runs}/byol-pnr-cifar100-5t {runs}/simclr-pnr-cifar100-5t"
    assert (runs / "summary-cifar100-5t.md").read_text() == "| summary table |\n"
    assert "| summary table |" in proc.stdout


@needs_linear
def test_run_script_stops_at_the_first_failed_step_and_names_it(tmp_path):
    env = {**fake_python(tmp_path), "FAKE_FAIL": "--name byol-pnr-imagenet100-data-5t"}
    proc = run_entry_point("imagenet-100/data", env)
    assert proc.returncode != 0
    assert "pretraining of byol-pnr-imagenet100-data-5t failed (exit 3)" in proc.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) == 1, "nothing may run after a failed step"
