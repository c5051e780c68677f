"""A tiny ImageNet-like tree of class folders (JPEG, grayscale, CMYK and PNG files) for the file path."""

import pytest

from cassle.data.datasets import load_imagenet100
from tests.data.device.helpers import write_tree


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("in100")
    write_tree(root / "train")
    write_tree(root / "val")
    return root


@pytest.fixture(scope="session")
def file_dataset(tree):
    train, _ = load_imagenet100(str(tree / "train"), str(tree / "val"))
    return train
