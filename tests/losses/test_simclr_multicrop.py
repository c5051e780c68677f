"""SimCLR over several crops, and supervised SimCLR, against the explicit reference."""

import math

import pytest
import torch

from cassle.losses import simclr_loss_func, simclr_multicrop_loss_func

from . import reference
from .checks import assert_autocast_close, basis, has_gradient, leaves, randn

TEMPERATURES = [0.07, 0.2, 0.5]


def _crops(num_crops, batch_size, dim, first_seed=1):
    return [randn(batch_size, dim, seed=first_seed + k) for k in range(num_crops)]


@pytest.mark.parametrize("num_crops", [2, 3, 5])
@pytest.mark.parametrize("batch_size", [2, 3, 6])
@pytest.mark.parametrize("dim", [4, 16])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_unsupervised_matches_explicit_reference(num_crops, batch_size, dim, temperature):
    crops = _crops(num_crops, batch_size, dim)
    got = simclr_multicrop_loss_func(crops, temperature)
    assert got.dtype == torch.float64
    expected = reference.simclr_multicrop(crops, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("num_crops", [2, 4])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("labels", [[0, 1, 0, 2, 1, 0], [3, 3, 3, 3, 3, 3], [5, 4, 5, 4, 9, 9]])
def test_supervised_matches_explicit_reference(num_crops, temperature, labels):
    crops = _crops(num_crops, len(labels), 8, first_seed=20)
    y = torch.tensor(labels)
    got = simclr_multicrop_loss_func(crops, temperature, labels=y)
    expected = reference.simclr_multicrop(crops, temperature, labels=labels)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("batch_size", [2, 3, 8])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_two_crops_equal_the_two_view_loss(batch_size, temperature):
    z1, z2 = randn(batch_size, 16, seed=30), randn(batch_size, 16, seed=31)
    expected = simclr_loss_func(z1, z2, temperature)
    torch.testing.assert_close(simclr_multicrop_loss_func([z1, z2], temperature), expected,
                               rtol=1e-12, atol=0)
    assert expected.item() == pytest.approx(reference.simclr(z1, z2, temperature), rel=1e-10)


@pytest.mark.parametrize("num_crops", [2, 3])
def test_all_distinct_labels_equal_the_unsupervised_loss(num_crops):
    crops = _crops(num_crops, 5, 8, first_seed=40)
    labels = torch.tensor([7, 0, 3, 9, 4])
    torch.testing.assert_close(simclr_multicrop_loss_func(crops, 0.2, labels=labels),
                               simclr_multicrop_loss_func(crops, 0.2), rtol=1e-12, atol=0)


def test_repeated_labels_change_the_loss():
    crops = _crops(2, 4, 8, first_seed=50)
    distinct = simclr_multicrop_loss_func(crops, 0.2, labels=torch.tensor([0, 1, 2, 3]))
    shared = simclr_multicrop_loss_func(crops, 0.2, labels=torch.tensor([0, 1, 0, 3]))
    assert abs((shared - distinct).item()) > 1e-3


def test_stacked_input_equals_the_list():
    crops = _crops(3, 4, 8, first_seed=60)
    labels = torch.tensor([1, 0, 1, 2])
    for y in (None, labels):
        torch.testing.assert_close(
            simclr_multicrop_loss_func(torch.cat(crops), 0.2, labels=y, num_crops=3),
            simclr_multicrop_loss_func(crops, 0.2, labels=y),
        )


def test_crop_order_matters_only_through_the_image_index():
    """Row k*B + i is image i in every crop: shuffling the images of one crop alone breaks pairs."""
    crops = _crops(3, 4, 8, first_seed=70)
    permuted = [crops[0], crops[1][[1, 0, 2, 3]], crops[2]]
    assert abs((simclr_multicrop_loss_func(permuted, 0.2)
                - simclr_multicrop_loss_func(crops, 0.2)).item()) > 1e-3
    # permuting the images consistently in every crop (and the labels with them) changes nothing
    order = [2, 0, 3, 1]
    labels = torch.tensor([1, 0, 1, 2])
    torch.testing.assert_close(
        simclr_multicrop_loss_func([c[order] for c in crops], 0.2, labels=labels[order]),
        simclr_multicrop_loss_func(crops, 0.2, labels=labels),
    )


@pytest.mark.parametrize("num_crops", [2, 3, 6])
@pytest.mark.parametrize("batch_size", [2, 4])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_aligned_crops_orthogonal_images(num_crops, batch_size, temperature):
    # every crop of image i is e_i: C - 1 positives at e^{1/T}, C (B - 1) negatives at e^0, so
    # l = -log( e^{1/T} / ((C - 1) e^{1/T} + C (B - 1)) ) = log(C - 1 + C (B - 1) e^{-1/T}).
    z = basis(8, *range(batch_size))
    expected = math.log(num_crops - 1 + num_crops * (batch_size - 1) * math.exp(-1 / temperature))
    got = simclr_multicrop_loss_func([z.clone() for _ in range(num_crops)], temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("num_crops", [2, 3])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_supervised_aligned_classes(num_crops, temperature):
    # images of class k are all e_k; class sizes 3 and 1 (B = 4). An anchor of a class of n images
    # has C n - 1 positives at e^{1/T} and C (B - n) negatives at e^0:
    # l = log(C n - 1 + C (B - n) e^{-1/T}); mean over the C*3 + C*1 anchors.
    labels = torch.tensor([0, 0, 1, 0])
    z = basis(4, 0, 0, 1, 0)
    c, b = num_crops, 4

    def anchor_loss(n):
        return math.log(c * n - 1 + c * (b - n) * math.exp(-1 / temperature))

    expected = (3 * anchor_loss(3) + 1 * anchor_loss(1)) / 4
    got = simclr_multicrop_loss_func([z.clone() for _ in range(c)], temperature, labels=labels)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_gradient_reaches_every_crop():
    crops = leaves(*_crops(3, 4, 8, first_seed=80))
    simclr_multicrop_loss_func(crops, 0.2, labels=torch.tensor([0, 1, 0, 2])).backward()
    assert all(has_gradient(c) for c in crops)


def test_autocast_bfloat16():
    crops = _crops(3, 8, 16, first_seed=90)
    assert_autocast_close(simclr_multicrop_loss_func, [crops, 0.2])


def test_bad_inputs():
    crops = _crops(2, 4, 8)
    with pytest.raises(ValueError, match="num_crops"):
        simclr_multicrop_loss_func(torch.cat(crops), 0.2)
    with pytest.raises(ValueError, match="labels"):
        simclr_multicrop_loss_func(crops, 0.2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="at least 2 crops"):
        simclr_multicrop_loss_func(crops[:1], 0.2)
    with pytest.raises(ValueError, match="shapes"):
        simclr_multicrop_loss_func([crops[0], crops[1][:3]], 0.2)
