"""Linear evaluation (docs/official.md §6): the probe of one backbone, and of every task of a run.

Modules, in the order of their dependencies (each imports only modules above it; torch is imported
only from ``backbone`` down, Lightning only by ``lightning_probe``):

* ``config``: :class:`~cassle.evaluation.config.LinearConfig`, the frozen configuration, and
  :func:`~cassle.evaluation.config.linear_config_for_run` (torch-free);
* ``published``: reported accuracies with their sources (torch-free);
* ``report``: the probe's settings, ``results.md``, the plot, the summary table (torch-free);
* ``backbone``: a checkpoint's online encoder, frozen; ``data``: datasets, labelled subsets, loaders;
* ``probe``: one probe, on cached features or through ``lightning_probe`` (the official path);
* ``run``: ``main_linear.py`` after parsing: one checkpoint, or the whole run (accuracy matrix,
  forgetting, forward transfer, ``results.json``/``.md``/``.png``);
* ``__main__``: ``python -m cassle.evaluation summary RUN_DIR ...`` and ``latest-checkpoint RUN_DIR``.
"""
