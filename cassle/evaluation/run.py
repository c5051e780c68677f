"""``main_linear.py`` after parsing: the probe of one checkpoint, or the whole-run evaluation.

:func:`evaluate_run` probes the final checkpoint of every finished task of a run folder and a
randomly initialised backbone, builds the accuracy matrix ``acc[i][j]`` and the continual metrics
(``cassle.utils.metrics``), and writes ``results.json``, ``results.md`` and ``results.png`` into the
run folder. Results are never lost to an unwritable folder: they go to the next writable one of
``--output``'s folder, the current directory and the system's temporary directory, and the command
then fails with one line that says where they are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, NamedTuple

from cassle.errors import CassleError
from cassle.evaluation.config import LinearConfig
from cassle.evaluation.report import (
    describe_probe,
    format_metrics_table,
    format_results_md,
    jsonable,
    plot_results,
    probe_settings,
)
from cassle.utils.files import atomic_write
from cassle.utils.report import is_finite_number, log

#: Writes one file's content into an open binary handle (cassle.utils.files.atomic_write).
FileWriter = Callable[[IO[bytes]], None]


# ============================================================================ writing results
def _text(text: str) -> FileWriter:
    return lambda handle: handle.write(text.encode())


def _json(obj: Any) -> FileWriter:
    return _text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _tensors(state: dict[str, Any]) -> FileWriter:
    def write(handle: IO[bytes]) -> None:
        import torch

        torch.save(state, handle)

    return write


def _write_into(folder: str, files: dict[str, FileWriter]) -> None:
    for name, write in files.items():
        atomic_write(os.path.join(folder, name), write)  # never half a file at the final name


def write_outputs(files: dict[str, FileWriter], folder: str, fallbacks: Sequence[str]) -> tuple[str, str | None]:
    """Write ``files`` (names relative to a folder) into ``folder``, or, if it cannot be written, all
    of them into the first writable folder of ``fallbacks``.

    Returns:
        ``(the folder written, None)``, or, after a fallback, ``(that folder, one line saying why
        and where)``.

    Raises:
        CassleError: no folder could be written (one line naming them).
    """
    failures: list[str] = []
    candidates = [folder] + [f for f in dict.fromkeys(fallbacks) if os.path.abspath(f) != os.path.abspath(folder)]
    for candidate in candidates:
        try:
            _write_into(candidate, files)
        except CassleError as err:
            failures.append(f"{candidate} ({err})")
            continue
        if candidate == folder:
            return folder, None
        return candidate, (f"cannot write into {failures[0]}: {', '.join(files)} written to "
                           f"{os.path.abspath(candidate)} instead")
    raise CassleError(f"could not write {', '.join(files)} anywhere: {'; '.join(failures)}")


def fallback_folders(config: LinearConfig) -> list[str]:
    """Where results go when their folder cannot be written: ``--output``'s folder, then the current
    directory, then the system's temporary directory."""
    folders = [os.path.dirname(os.path.abspath(config.output))] if config.output else []
    return folders + [os.getcwd(), tempfile.gettempdir()]


def _raise_if_moved(notes: Sequence[str | None]) -> None:
    moved = [n for n in notes if n]
    if moved:
        raise CassleError("; ".join(moved))


# ============================================================================ wandb
def make_wandb_logger(config: LinearConfig, save_dir: str) -> Any:
    """One wandb run for this evaluation (``--wandb``); None otherwise, and wandb is not imported."""
    if not config.wandb:
        return None
    from pytorch_lightning.loggers import WandbLogger

    try:
        os.makedirs(save_dir, exist_ok=True)
    except OSError as err:  # the results will fall back too (write_outputs); wandb's files go to the temp dir
        log(f"note: cannot create {save_dir} ({err.strerror}): wandb files go to {tempfile.gettempdir()}")
        save_dir = tempfile.gettempdir()
    logger = WandbLogger(name=config.name, project=config.project, entity=config.entity, offline=config.offline,
                         save_dir=save_dir)
    logger.log_hyperparams(jsonable(config.to_dict()))
    return logger


def _sub_logger(root: Any, prefix: str) -> Any:
    if root is None:
        return None
    from pytorch_lightning.loggers import WandbLogger

    return WandbLogger(experiment=root.experiment, prefix=prefix)


def _finish_wandb(root: Any, summary: dict[str, Any], image: str | None = None) -> None:
    if root is None:
        return
    experiment = root.experiment
    for key, value in summary.items():
        if is_finite_number(value):
            experiment.summary[key] = value
    if image and os.path.exists(image):
        import wandb

        experiment.log({"results": wandb.Image(image)})
    experiment.finish()


# ============================================================================ one checkpoint
def default_output(config: LinearConfig) -> str:
    """``--output``, else ``<checkpoint>.linear.json``, else ``<checkpoint_dir>/<name>.json``."""
    if config.output:
        return config.output
    if config.pretrained_feature_extractor:
        return config.pretrained_feature_extractor + ".linear.json"
    return os.path.join(config.checkpoint_dir, f"{config.name}.json")


def evaluate_checkpoint(config: LinearConfig) -> dict[str, Any]:
    """The probe of ``--pretrained_feature_extractor`` (or of a random backbone): prints the metrics
    table, writes the metrics JSON (and, with ``--save_checkpoint``, the head's weights beside it).

    Returns:
        The metrics JSON's content.
    """
    from cassle.evaluation.probe import probe_checkpoint

    checkpoint = None if config.random_init else config.pretrained_feature_extractor
    output = default_output(config)
    folder = os.path.dirname(os.path.abspath(output))
    logger = make_wandb_logger(config, folder)
    start = time.time()
    result = probe_checkpoint(config, checkpoint, logger=logger)
    payload = jsonable({
        "checkpoint": checkpoint, "random_init": checkpoint is None, "dataset": config.dataset,
        "method": result.meta.get("method", config.method), "task_idx": result.meta.get("task_idx"),
        "split_strategy": config.split_strategy, "task_names": config.task_names, "metrics": result.metrics,
        "probe": probe_settings(config), "seconds": round(time.time() - start, 1),
    })
    _finish_wandb(logger, result.metrics)
    source = f"a random backbone (seed {config.seed})" if checkpoint is None else checkpoint
    print(format_metrics_table(f"linear probe of {source} on {config.dataset} ({describe_probe(config)})",
                               result.metrics))
    files = {os.path.basename(output): _json(payload)}
    if config.save_checkpoint:
        files[os.path.splitext(os.path.basename(output))[0] + ".head.pt"] = _tensors(result.head)
    _, moved = write_outputs(files, folder, fallback_folders(config))
    if moved is None:
        print(f"metrics written to {output}")
    _raise_if_moved([moved])
    return payload


# ============================================================================ whole run
def _task_key(split_strategy: str, name: str) -> str:
    return "val_acc1" if split_strategy == "data" else f"val_acc1_{name}"


def _row(metrics: dict[str, float], split_strategy: str, names: Sequence[str]) -> list[float | None]:
    columns = ["all"] if split_strategy == "data" else list(names)
    out = []
    for name in columns:
        value = metrics.get(_task_key(split_strategy, name))
        out.append(float(value) if is_finite_number(value) else None)
    return out


def _safe(fn: Callable[[], Any], notes: list[str], what: str) -> Any:
    try:
        return fn()
    except ValueError as err:
        notes.append(f"{what}: {err}")
        return None


def finished_tasks(run_dir: str) -> tuple[Any, list[int]]:
    """A run folder's manifest and its finished tasks (at least one), or a one-line error.

    Returns:
        ``(cassle.utils.manifest.RunManifest, ascending task indices)``.
    """
    from cassle.utils.manifest import RunManifest

    if not os.path.isdir(run_dir):
        raise CassleError(f"run folder {run_dir} does not exist")
    if not os.path.isfile(os.path.join(run_dir, "manifest.json")):
        raise CassleError(f"{run_dir} is not a run folder of main_pretrain.py with a finished task (no manifest.json)")
    manifest = RunManifest(run_dir)
    finished = manifest.finished_tasks()
    if not finished:
        raise CassleError(f"run folder {run_dir} has no finished task (manifest.json lists none)")
    return manifest, finished


def run_config(config: LinearConfig) -> tuple[LinearConfig, dict[str, Any], Any, list[int]]:
    """The configuration of a run folder's evaluation: the probe's, with the run's split and method.

    Returns:
        ``(config, the run's args.json, its manifest, the finished tasks)``.
    """
    from cassle.utils.files import read_json

    run_dir = config.run_dir
    manifest, finished = finished_tasks(run_dir)
    run_args = read_json(os.path.join(run_dir, "args.json"), "run arguments")
    split = read_json(os.path.join(run_dir, "split.json"), "task split")
    if run_args.get("dataset") not in (None, config.dataset):
        raise CassleError(f"run {run_dir} was trained on --dataset {run_args['dataset']}, the probe is for "
                          f"--dataset {config.dataset} (pass --dataset {run_args['dataset']})")
    _check_same_data(run_dir, run_args, config)
    run_method = run_args.get("method")
    if config.method is not None and run_method not in (None, config.method):
        raise CassleError(f"run {run_dir} was trained with --method {run_method}, not --method {config.method}")
    tasks = split.get("tasks")
    config = dataclasses.replace(
        config, method=config.method or run_method, split_strategy=split["split_strategy"],
        tasks=tuple(tuple(int(c) for c in t) for t in tasks) if tasks else None,
        task_names=tuple(split["task_names"]), num_tasks=len(split["task_names"]),
    )
    return config, run_args, manifest, finished


# Resolved data facts that must agree between a run and its probe, with the flags that set them.
_RUN_DATA_FACTS = {"small_images": "--small_stem", "mean": "--mean", "std": "--std", "eval_resize": "--size",
                   "eval_crop": "--size", "probe_size": "--size"}


def _check_same_data(run_dir: str, run_args: dict[str, Any], config: LinearConfig) -> None:
    """A one-line error when the probe would see the data otherwise than the run did (custom data
    probed without the run's ``--small_stem``, ``--size``, ``--mean`` or ``--std``)."""
    stored = run_args.get("dataset_spec")
    if not isinstance(stored, dict) or config.data_spec is None:
        return  # a run folder written before the data facts were recorded
    probe = config.data_spec.as_dict()
    for key, flag in _RUN_DATA_FACTS.items():
        if key in stored and stored[key] != probe[key]:
            raise CassleError(f"run {run_dir} was pretrained with {key} {stored[key]}, the probe would use "
                              f"{probe[key]}: pass the run's {flag} to main_linear.py")


class RunEvaluation(NamedTuple):
    """A run's evaluation before it is written: ``results.json``'s content, the heads' weights
    (``task<i>``, ``random_init``) and the wandb logger (None without ``--wandb``)."""

    results: dict[str, Any]
    heads: dict[str, dict[str, Any]]
    logger: Any


def collect_run_results(config: LinearConfig) -> RunEvaluation:
    """Probe every finished task of ``config.run_dir`` and the random-init backbone.

    ``acc[i][j]``: class split: ``val_acc1_task<j>`` of the probe after task i; domain split:
    ``val_acc1_<domain of task j>``; data split: one column, ``val_acc1``. Final accuracy = ``val_acc1``
    of the last finished task's probe; forgetting and forward transfer from ``cassle.utils.metrics``
    (not applicable to data-incremental runs; on a run that is not finished yet, over the tasks so far).

    Returns:
        The results, the heads and the logger, for :func:`write_run_results`.
    """
    from cassle.evaluation.data import ProbeData
    from cassle.evaluation.probe import probe_checkpoint
    from cassle.utils.metrics import average_accuracy, forgetting, forward_transfer

    config, run_args, manifest, finished = run_config(config)
    run_dir = config.run_dir
    strategy, names, num_tasks = config.split_strategy, list(config.task_names), config.num_tasks
    logger = make_wandb_logger(config, run_dir)
    data = ProbeData(config)
    linear: dict[int, dict[str, float]] = {}
    heads: dict[str, dict[str, Any]] = {}
    for task in finished:
        checkpoint = manifest.checkpoint(task)
        log(f"linear probe of task {task}: {checkpoint}")
        result = probe_checkpoint(config, checkpoint, data, logger=_sub_logger(logger, f"task{task}"))
        linear[task], heads[f"task{task}"] = result.metrics, result.head
    log(f"linear probe of a random backbone (seed {config.seed})")
    result = probe_checkpoint(config, None, data, logger=_sub_logger(logger, "random_init"))
    random_metrics, heads["random_init"] = result.metrics, result.head

    last = finished[-1]
    columns = 1 if strategy == "data" else num_tasks
    acc = [(_row(linear[i], strategy, names) if i in linear else [None] * columns) for i in range(last + 1)]
    baseline = _row(random_metrics, strategy, names)
    notes: list[str] = []
    complete = finished == list(range(num_tasks))
    if not complete:
        notes.append(f"tasks finished: {finished} of {num_tasks}: forgetting and forward transfer over tasks 0..{last}")
    if strategy == "data":
        forget = transfer = None
    else:
        square = [row[:last + 1] for row in acc]
        forget = _safe(lambda: forgetting(square), notes, "forgetting")
        transfer = _safe(lambda: forward_transfer(square, baseline[:last + 1]), notes, "forward transfer")
    results: dict[str, Any] = {
        "run": run_args.get("name") or os.path.basename(os.path.normpath(run_dir)),
        "run_dir": os.path.abspath(run_dir),
        "method": run_args.get("method"),
        "distiller": run_args.get("distiller"),
        "dataset": run_args.get("dataset", config.dataset),
        "split_strategy": strategy,
        "num_tasks": num_tasks,
        "finished_tasks": finished,
        "complete": complete,
        "task_names": names,
        "columns": ["all"] if strategy == "data" else names,
        "acc_matrix": acc,
        "random_init": baseline,
        "final_acc": linear[last].get("val_acc1"),
        "mean_task_acc": _safe(lambda: average_accuracy([acc[last]]), [], "mean"),
        "forgetting": forget,
        "forward_transfer": transfer,
        "all_acc": [linear[i].get("val_acc1") if i in linear else None for i in range(last + 1)],
        "knn_acc1": [linear[i].get("knn_acc1") if i in linear else None for i in range(last + 1)],
        "random_init_knn_acc1": random_metrics.get("knn_acc1"),
        "random_init_acc": random_metrics.get("val_acc1"),
        "linear": {str(i): m for i, m in linear.items()},
        "random_init_metrics": random_metrics,
        "online": {str(i): (manifest.tasks[str(i)].get("metrics") or {}).get("val_acc1") for i in finished},
        "probe": probe_settings(config),
        "notes": notes,
    }
    for key in ("domain_aware_acc1", "domain_agnostic_acc1"):
        if key in linear[last]:
            results[key] = linear[last][key]
    return RunEvaluation(jsonable(results), heads, logger)


def write_run_results(config: LinearConfig, evaluation: RunEvaluation) -> None:
    """``results.json``, ``results.md``, ``results.png`` (and ``linear_heads/*.pt`` with
    ``--save_checkpoint``) into the run folder, ``--output`` if given; one-line error if any had to
    go elsewhere."""
    results = evaluation.results
    files = {
        "results.json": _json(results),
        "results.md": _text(format_results_md(results) + "\n"),
        "results.png": lambda handle: plot_results(results, handle),
    }
    if config.save_checkpoint:
        files.update({f"linear_heads/{name}.pt": _tensors(state) for name, state in evaluation.heads.items()})
    fallbacks = fallback_folders(config)
    folder, moved = write_outputs(files, config.run_dir, fallbacks)
    notes = [moved]
    if config.output:
        notes.append(write_outputs({os.path.basename(config.output): _json(results)},
                                   os.path.dirname(os.path.abspath(config.output)), fallbacks)[1])
    _finish_wandb(evaluation.logger, {k: results[k] for k in ("final_acc", "forgetting", "forward_transfer")},
                  os.path.join(folder, "results.png"))
    if moved is None:
        log(f"results written to {os.path.join(folder, 'results.md')} (and results.json, results.png)")
    _raise_if_moved(notes)


def evaluate_run(config: LinearConfig) -> dict[str, Any]:
    """Probe every finished task of ``config.run_dir`` and write the results (see
    :func:`collect_run_results` and :func:`write_run_results`).

    Returns:
        The ``results.json`` dict.
    """
    evaluation = collect_run_results(config)
    write_run_results(config, evaluation)
    return evaluation.results


def linear_main(config: LinearConfig) -> dict[str, Any]:
    """``main_linear.py`` after parsing: a run folder, one checkpoint, or a random backbone."""
    if config.run_dir:
        evaluation = collect_run_results(config)
        print(format_results_md(evaluation.results))
        write_run_results(config, evaluation)
        return evaluation.results
    return evaluate_checkpoint(config)
