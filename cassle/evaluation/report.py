"""What the evaluation writes and prints (torch-free): the probe's settings, ``results.md``, the
plot, the metrics table of one probe, and the summary table over runs with published numbers."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from cassle.errors import CassleError
from cassle.evaluation.config import LinearConfig
from cassle.evaluation.published import SOURCES, find_published, regulariser_family
from cassle.utils.files import read_json
from cassle.utils.report import fmt, is_finite_number, markdown_table

SPLIT_WORDS = {"class": "class-incremental", "data": "data-incremental", "domain": "domain-incremental"}
NO_REGULARISER = "none (fine-tuning)"


def jsonable(obj: Any) -> Any:
    """NaN and infinities become None (strict JSON); tuples become lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ============================================================================ the probe's settings
def probe_settings(config: LinearConfig) -> dict[str, Any]:
    """The ``probe`` entry of ``results.json`` and of the metrics JSON of one checkpoint."""
    keys = ("lr", "momentum", "weight_decay", "scheduler", "lr_decay_steps", "lr_decay_gamma", "batch_size",
            "cache_features", "label_fraction", "semi_supervised", "knn_k", "seed", "encoder", "precision",
            "domain", "domain_aware")
    out = {k: getattr(config, k) for k in keys}
    out["epochs"] = config.max_epochs
    out["labels"] = config.labels_used()
    return jsonable(out)


def describe_probe(config: LinearConfig) -> str:
    """The probe's protocol in one line (title of the printed metrics table)."""
    parts = [f"{config.max_epochs} epochs", f"SGD lr {config.lr:g} momentum {config.momentum:g}"]
    if config.scheduler == "step":
        parts.append(f"x{config.lr_decay_gamma:g} at epochs {', '.join(str(s) for s in config.lr_decay_steps)}")
    else:
        parts.append(f"{config.scheduler} schedule")
    parts.append(f"batch {config.batch_size}")
    parts.append("cached features (no augmentation)" if config.cache_features else "random-resized crop")
    parts.append(config.labels_used())
    return ", ".join(parts)


def format_metrics_table(title: str, metrics: dict[str, float]) -> str:
    """A two-column markdown table of one probe's metrics, the headline ones first."""
    order = ["val_acc1", "val_acc5", "val_loss", "knn_acc1", "knn_acc5", "domain_agnostic_acc1", "domain_aware_acc1"]
    keys = [k for k in order if k in metrics] + sorted(k for k in metrics if k not in order)
    rows = [[k, fmt(metrics[k], 4 if k.endswith("loss") else 2)] for k in keys]
    return "\n".join([title] + markdown_table(["metric", "value"], rows))


# ============================================================================ results.md and results.png
def format_results_md(results: dict[str, Any]) -> str:
    """The ``results.md`` text of a run: the accuracy matrix and the continual metrics, defined."""
    strategy = results["split_strategy"]
    columns = results["columns"]
    probe = results.get("probe", {})
    regulariser = results.get("distiller") or NO_REGULARISER
    online = results.get("online") or {}
    show_online = any(is_finite_number(v) for v in online.values())
    header = ["after task"] + list(columns) + ([] if strategy == "data" else ["all"]) + ["kNN"]
    header += ["online"] if show_online else []
    rows = []
    for i, row in enumerate(results["acc_matrix"]):
        cells = [str(i)] + [fmt(v) for v in row]
        if strategy != "data":
            cells.append(fmt(results["all_acc"][i]))
        cells.append(fmt(results["knn_acc1"][i]))
        if show_online:
            cells.append(fmt(online.get(str(i))))
        rows.append(cells)
    random_row = ["random init"] + [fmt(v) for v in results["random_init"]]
    if strategy != "data":
        random_row.append(fmt(results.get("random_init_acc")))
    random_row.append(fmt(results.get("random_init_knn_acc1")))
    rows.append(random_row + (["-"] if show_online else []))
    cache = "cached features, no augmentation" if probe.get("cache_features") else "random-resized crop + flip"
    labels = f", {probe['labels']}" if probe.get("labels") else ""
    lines = [
        f"# Linear evaluation of {results['run']}",
        "",
        f"{results.get('method')} with regulariser {regulariser} on {results.get('dataset')}, "
        f"{SPLIT_WORDS.get(strategy, strategy)}, {results['num_tasks']} tasks. Probe: linear layer on the frozen "
        f"backbone (eval mode), {probe.get('epochs')} epochs, SGD lr {probe.get('lr')} "
        f"momentum {probe.get('momentum')}, "
        f"batch {probe.get('batch_size')}, {cache}, seed {probe.get('seed')}{labels}.",
        "",
        "Top-1 accuracy (%) of the linear probe of the checkpoint after each task (rows) on the test images of "
        + ("the whole test set (tasks share the classes)" if strategy == "data" else
           "each task's " + ("domain" if strategy == "domain" else "classes") + " (columns); \"all\" = whole test set")
        + "; kNN = weighted kNN (top-1) on the frozen features"
        + ("; online = the classifier trained during pretraining (whole test set)" if show_online else "") + ".",
        "",
    ]
    lines += markdown_table(header, rows)
    na = "n/a (data-incremental: the tasks share the classes)" if strategy == "data" else "n/a"
    forget = results.get("forgetting")
    transfer = results.get("forward_transfer")
    lines += [
        "",
        f"- **Final accuracy A_T: {fmt(results.get('final_acc'), 2)}** (top-1 of the probe of the last checkpoint "
        "on the whole test set).",
        f"- **Forgetting: {fmt(forget, 2) if is_finite_number(forget) else na}** (mean over tasks j < T-1 of the best "
        "accuracy on task j after tasks j..T-2 minus the accuracy on task j after the last task).",
        f"- **Forward transfer: {fmt(transfer, 2) if is_finite_number(transfer) else na}** "
        "(mean over tasks j >= 1 of the "
        "accuracy on task j after task j-1 minus that of a probe on a randomly initialised backbone).",
    ]
    if is_finite_number(results.get("domain_aware_acc1")):
        lines.append(f"- **Domain-aware accuracy: {fmt(results['domain_aware_acc1'], 2)}** (unweighted mean over "
                     "domains of a probe trained and tested on that domain alone); domain-agnostic: "
                     f"{fmt(results.get('domain_agnostic_acc1'), 2)} (one probe on all domains).")
    for note in results.get("notes") or []:
        lines.append(f"- note: {note}")
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: Any) -> None:
    """``results.png`` (a path or a binary handle): left the accuracy matrix as a heat map with its
    numbers, right each task's accuracy over the training tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    acc = np.array([[np.nan if v is None else v for v in row] for row in results["acc_matrix"]], dtype=float)
    columns = results["columns"]
    rows = acc.shape[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(5 + 1.1 * len(columns), 4.2 + 0.2 * rows))
    image = left.imshow(np.ma.masked_invalid(acc), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(rows):
        for j in range(acc.shape[1]):
            if np.isfinite(acc[i, j]):
                left.text(j, i, f"{acc[i, j]:.1f}", ha="center", va="center",
                          color="white" if acc[i, j] < 60 else "black", fontsize=9)
    left.set_xticks(range(len(columns)), columns, rotation=30 if len(columns) > 5 else 0)
    left.set_yticks(range(rows), [str(i) for i in range(rows)])
    left.set_xlabel("evaluated on")
    left.set_ylabel("after training task")
    left.set_title("linear probe top-1 (%)")
    fig.colorbar(image, ax=left, fraction=0.046, pad=0.04)
    steps = np.arange(rows)
    for j, name in enumerate(columns):
        right.plot(steps, acc[:, j], marker="o", label=name)
    if results["split_strategy"] != "data":
        all_acc = np.array([np.nan if v is None else v for v in results["all_acc"]], dtype=float)
        right.plot(steps, all_acc, color="black", linestyle="--", marker="s", label="all")
    right.set_xticks(steps)
    right.set_xlabel("after training task")
    right.set_ylabel("top-1 (%)")
    right.set_title("accuracy per task over training")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="best")
    fig.suptitle(f"{results['run']}: final {fmt(results.get('final_acc'))}, forgetting "
                 f"{fmt(results.get('forgetting'))}, forward transfer {fmt(results.get('forward_transfer'))}")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


# ============================================================================ summary over runs
def read_run_summary(run_dir: str) -> dict[str, Any]:
    """A run folder's ``results.json``; for a run that is not evaluated yet, its ``args.json`` with
    ``"evaluated": False``.

    Raises:
        CassleError: the folder is missing, is not a run folder, or its JSON is corrupt (one line).
    """
    if not os.path.isdir(run_dir):
        raise CassleError(f"run folder {run_dir} does not exist" if not os.path.exists(run_dir)
                          else f"{run_dir} is not a folder (give run folders of main_pretrain.py)")
    path = os.path.join(run_dir, "results.json")
    if os.path.exists(path):
        results = read_json(path, "results file")
        missing = [k for k in ("final_acc", "split_strategy") if k not in results]
        if missing:
            raise CassleError(f"results file {path} is corrupt (no {', '.join(missing)}): "
                              "re-run the evaluation (main_linear.py --run_dir)")
        return {**results, "evaluated": True}
    args_path = os.path.join(run_dir, "args.json")
    if not os.path.exists(args_path):
        raise CassleError(f"{run_dir} has no results.json and is not a run folder of main_pretrain.py (no args.json)")
    return {**read_json(args_path, "run arguments"), "evaluated": False}


def summarize_runs(run_dirs: Sequence[str]) -> str:
    """One markdown table over runs (``"not evaluated"`` for a run without ``results.json`` yet), then
    the published numbers of each run's setting beside its final accuracy, and their sources."""
    header = ["run", "method", "regulariser", "final acc", "forgetting", "forward transfer", "kNN"]
    runs = [(os.path.basename(os.path.normpath(d)), read_run_summary(d)) for d in run_dirs]
    rows = []
    for name, res in runs:
        if not res["evaluated"]:
            rows.append([name, res.get("method") or "-", res.get("distiller") or NO_REGULARISER,
                         "not evaluated", "", "", ""])
            continue
        na = "n/a" if res.get("split_strategy") == "data" else "-"
        knn = [v for v in res.get("knn_acc1") or [] if is_finite_number(v)]
        rows.append([
            res.get("run", name), res.get("method") or "-", res.get("distiller") or NO_REGULARISER,
            fmt(res.get("final_acc"), 2),
            fmt(res.get("forgetting"), 2) if is_finite_number(res.get("forgetting")) else na,
            fmt(res.get("forward_transfer"), 2) if is_finite_number(res.get("forward_transfer")) else na,
            fmt((res.get("knn_acc1") or [None])[-1], 2) if knn else "-",
        ])
    return "\n".join(markdown_table(header, rows) + [""] + published_table(runs))


def published_table(runs: Sequence[Any]) -> list[str]:
    """Lines: each run's final accuracy beside the published numbers of its setting, then the sources."""
    rows, cited = [], []
    for name, res in runs:
        family = regulariser_family(res.get("distiller"))
        num_tasks = res.get("num_tasks")
        found = find_published(res.get("dataset"), res.get("split_strategy"), num_tasks, res.get("method"), family)
        for p in found:
            if p.source not in cited:
                cited.append(p.source)
        setting = (f"{res.get('dataset')} {SPLIT_WORDS.get(res.get('split_strategy'), res.get('split_strategy'))} "
                   f"{num_tasks} tasks, {res.get('method')}, {family}")
        final = fmt(res.get("final_acc"), 2) if res["evaluated"] else "not evaluated"
        rows.append([res.get("run", name) if res["evaluated"] else name, setting, final,
                     "; ".join(f"{p.value:.2f}" for p in found) or "-",
                     "; ".join(p.source for p in found) or "-"])
    lines = ["Published final linear accuracy (%) of the same setting (dataset, split, tasks, method, "
             "regulariser family); \"-\": none known.", ""]
    lines += markdown_table(["run", "setting", "final acc", "published", "source"], rows)
    lines.append("")
    if not cited:
        lines.append("Sources: no published number is known for these settings.")
    else:
        lines.append("Sources:")
        for key in cited:
            source = SOURCES[key]
            lines.append(f"- [{key}] {source.description}; {source.url} ({source.confidence}).")
    return lines
