"""The uninterrupted run that the long fault tests compare their interrupted runs with."""

from __future__ import annotations

import pytest

from tests.faults.helpers import run, three_task_argv


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> str:
    """The run folder of :func:`three_task_argv`, trained without interruption (~30 s)."""
    folder = tmp_path_factory.mktemp("reference")
    result = run(three_task_argv(str(folder)))
    assert result.returncode == 0, result.stderr[-3000:]
    return str(folder / "run")
