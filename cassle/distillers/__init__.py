"""Regularisers (``--distiller``): a mixin each, and one concrete class per (regulariser, method) pair
that the registry (``cassle/registry.py``) names. No distiller = fine-tuning (the lower bound)."""

from cassle.distillers.base import OPTIONAL_AT_TASK_START, TEACHER_PREFIXES, RegularizerMixin

__all__ = ["OPTIONAL_AT_TASK_START", "TEACHER_PREFIXES", "RegularizerMixin"]
