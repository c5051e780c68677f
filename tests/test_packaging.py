"""One list of pins: requirements.txt (what `make install` installs) and cassle.yml pin the same versions,
and those versions satisfy the dependency ranges of pyproject.toml (what `pip install -e .` accepts)."""

from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import ROOT

tomllib = pytest.importorskip("tomllib")
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)")


def pins(path: str) -> dict[str, str]:
    found = {}
    with open(path) as f:
        for line in f:
            match = PIN.match(line)
            if match:
                found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def pyproject() -> dict:
    with open(f"{ROOT}/pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_requirements_and_conda_pin_the_same_versions():
    requirements, conda = pins(f"{ROOT}/requirements.txt"), pins(f"{ROOT}/cassle.yml")
    assert requirements and requirements == conda


def test_pins_satisfy_the_package_ranges():
    project = pyproject()["project"]
    ranges = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    requirements = pins(f"{ROOT}/requirements.txt")
    assert {canonicalize_name(r.name) for r in ranges} == set(requirements)  # nothing pinned but not declared
    for requirement in ranges:
        version = requirements[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def test_the_user_facing_dependencies_are_the_agreed_ones():
    runtime = {canonicalize_name(Requirement(r).name) for r in pyproject()["project"]["dependencies"]}
    # matplotlib draws the results plots (results.png), the one dependency beyond the agreed list
    assert runtime == {"torch", "torchvision", "pytorch-lightning", "wandb", "numpy", "pillow", "scikit-learn",
                       "einops", "matplotlib"}
