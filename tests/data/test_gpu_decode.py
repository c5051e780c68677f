"""The fast path for file datasets (cassle.data.gpu_decode), on the CPU with tiny class-folder images."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cassle.data import gpu_decode
from cassle.data.datasets import FileListDataset, load_imagenet100
from cassle.data.gpu_augment import BatchViewAugment, TwoViewBatchAugment, sample_crop_params
from cassle.data.gpu_decode import (
    DeviceFileEvalLoader,
    DeviceFileTaskLoader,
    EncodedFiles,
    collate_encoded,
    crop_resize,
    decode_images,
    is_jpeg,
    sample_crop_boxes,
    split_encoded,
)
from cassle.data.info import DATASET_INFO
from cassle.errors import DataNotFoundError

MEAN, STD = DATASET_INFO["imagenet100"]["mean"], DATASET_INFO["imagenet100"]["std"]
SIZE = 16

# (class, file name, height, width, kind); kinds: rgb JPEG, grayscale JPEG, CMYK JPEG, PNG
FILES = [
    ("n01", "a.JPEG", 20, 30, "rgb"),
    ("n01", "b.JPEG", 33, 17, "rgb"),
    ("n01", "c.JPEG", 24, 24, "gray"),
    ("n02", "d.JPEG", 40, 26, "rgb"),
    ("n02", "e.png", 18, 22, "png"),
    ("n02", "f.JPEG", 27, 35, "cmyk"),
    ("n03", "g.JPEG", 16, 48, "rgb"),
    ("n03", "h.JPEG", 30, 30, "rgb"),
    ("n03", "i.JPEG", 21, 19, "rgb"),
]


def smooth_image(rng, height, width):
    """Random but smooth RGB content (JPEG-friendly)."""
    small = rng.randint(0, 256, size=(max(2, height // 4), max(2, width // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR)


def write_tree(root):
    rng = np.random.RandomState(0)
    for cls, name, height, width, kind in FILES:
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        img = smooth_image(rng, height, width)
        if kind == "png":
            img.save(folder / name, "PNG")
        else:
            img = {"rgb": img, "gray": img.convert("L"), "cmyk": img.convert("CMYK")}[kind]
            img.save(folder / name, "JPEG", quality=92)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("in100")
    write_tree(root / "train")
    write_tree(root / "val")
    return root


@pytest.fixture(scope="module")
def dataset(tree):
    train, _ = load_imagenet100(str(tree / "train"), str(tree / "val"))
    return train


def cfg(**over):
    base = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, gaussian_prob=0.5,
                solarization_prob=0.2, min_scale=0.08, size=SIZE)
    return {**base, **over}


IDENTITY = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, gaussian_prob=0.0,
                solarization_prob=0.0, gray_scale_prob=0.0, horizontal_flip_prob=0.0)


def pil_rgb(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def encoded(dataset):
    files = EncodedFiles.from_dataset(dataset)
    return [files[i][1] for i in range(len(files))]


# ------------------------------------------------------------------------------------------ decode
def test_decode_matches_pil(dataset):
    data = encoded(dataset)
    assert [is_jpeg(d) for d in data] == [kind != "png" for *_, kind in FILES]
    images = decode_images(data, "cpu")
    for img, (path, _), (*_, height, width, kind) in zip(images, dataset.samples, FILES):
        assert img.dtype == torch.uint8 and img.shape == (3, height, width), kind
        ref = pil_rgb(path).astype(np.float64)
        diff = np.abs(img.permute(1, 2, 0).numpy().astype(np.float64) - ref)
        assert diff.mean() < 2.0, (kind, diff.mean())  # JPEG decoders agree to within 2/255


def test_decode_fallbacks(dataset, monkeypatch):
    data = encoded(dataset)
    reference = decode_images(data, "cpu")

    def broken_batch(input, *args, **kwargs):  # the batched call fails; single files still decode
        if isinstance(input, list):
            raise RuntimeError("batched decode unavailable")
        return real(input, *args, **kwargs)

    real = gpu_decode.decode_jpeg
    monkeypatch.setattr(gpu_decode, "decode_jpeg", broken_batch)
    assert all(torch.equal(a, b) for a, b in zip(decode_images(data, "cpu"), reference))

    def one_channel(input, *args, **kwargs):  # a decoder that ignores mode=RGB: CPU fallback
        out = real(input, *args, **kwargs)
        return [o[:1] for o in out] if isinstance(out, list) else out[:1]

    monkeypatch.setattr(gpu_decode, "decode_jpeg", one_channel)
    assert all(torch.equal(a, b) for a, b in zip(decode_images(data, "cpu"), reference))
    monkeypatch.undo()

    with pytest.raises(RuntimeError):
        decode_images([torch.tensor([0xFF, 0xD8, 0xFF, 0, 1, 2], dtype=torch.uint8)], "cpu")


def test_jpeg_frame_info_routes_cmyk_to_the_cpu_on_accelerators(dataset):
    data = encoded(dataset)
    components = {"rgb": 3, "gray": 1, "cmyk": 4}
    for d, (*_, kind) in zip(data, FILES):
        info = gpu_decode.jpeg_frame_info(d)
        assert info == (None if kind == "png" else (8, components[kind])), kind
        assert gpu_decode._batchable(d, torch.device("cpu")) == (kind != "png")
        assert gpu_decode._batchable(d, torch.device("cuda")) == (kind in ("rgb", "gray"))
    # a JPEG with a big APP segment before its frame header, and a progressive one
    for kw in ({"exif": b"Exif\x00\x00" + bytes(3000)}, {"progressive": True}):
        buf = io.BytesIO()
        smooth_image(np.random.RandomState(0), 9, 7).save(buf, "JPEG", **kw)
        d = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
        assert gpu_decode.jpeg_frame_info(d) == (8, 3)
    assert gpu_decode.jpeg_frame_info(torch.tensor([0xFF, 0xD8, 0xFF], dtype=torch.uint8)) is None


def test_collate_round_trip(dataset):
    files = EncodedFiles.from_dataset(dataset)
    items = [files[i] for i in (4, 0, 7)]
    indexes, flat, lengths, targets = collate_encoded(items)
    assert indexes.tolist() == [4, 0, 7] and targets.tolist() == [dataset.targets[i] for i in (4, 0, 7)]
    assert flat.dtype == torch.uint8 and flat.dim() == 1
    assert all(torch.equal(a, it[1]) for a, it in zip(split_encoded(flat, lengths), items))


def test_missing_file_is_one_line_error(tmp_path):
    files = EncodedFiles([str(tmp_path / "nope.jpg")], [0])
    with pytest.raises(DataNotFoundError, match="nope.jpg"):
        files[0]


# ------------------------------------------------------------------------------------------ crop
def test_crop_boxes_equal_gpu_augment_sampler_for_equal_sizes():
    a = sample_crop_boxes([30] * 64, [50] * 64, (0.08, 1.0), generator=torch.Generator().manual_seed(3))
    b = sample_crop_params(64, 30, 50, (0.08, 1.0), generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_crop_boxes_per_image_sizes():
    rng = np.random.RandomState(1)
    heights = torch.tensor(rng.randint(8, 200, size=500))
    widths = torch.tensor(rng.randint(8, 200, size=500))
    in_range = ((widths / heights) >= 0.75) & ((widths / heights) <= 4 / 3)  # no clamped fallback crops
    for min_scale in (0.08, 0.5):
        top, left, h, w = sample_crop_boxes(heights, widths, (min_scale, 1.0),
                                            generator=torch.Generator().manual_seed(0))
        assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
        assert (top + h <= heights).all() and (left + w <= widths).all()
        # h and w are the rounded sides of a box of area U(min_scale, 1) * H * W and ratio in [3/4, 4/3]
        hf, wf, area = h.double(), w.double(), (heights * widths).double()
        ok_area = ((hf + 0.5) * (wf + 0.5) >= min_scale * area) & ((hf - 0.5) * (wf - 0.5) <= area)
        ok_ratio = ((wf + 0.5) / (hf - 0.5).clamp(min=1e-9) >= 0.75) & ((wf - 0.5) / (hf + 0.5) <= 4 / 3)
        assert (ok_area & ok_ratio)[in_range].all()
    # an extreme aspect ratio never fits: the central crop, clamped to ratio 4/3
    top, left, h, w = sample_crop_boxes([10], [200], (0.9, 1.0), generator=torch.Generator().manual_seed(0))
    assert (h.item(), w.item(), top.item(), left.item()) == (10, 13, 0, (200 - 13) // 2)


def test_crop_resize_matches_pil_bicubic():
    rng = np.random.RandomState(2)
    pil = smooth_image(rng, 40, 50)
    img = torch.from_numpy(np.array(pil)).permute(2, 0, 1).contiguous()
    boxes = [(5, 7, 30, 36), (0, 0, 40, 50), (10, 12, 9, 11), (3, 4, SIZE, SIZE)]
    t, l, h, w = (torch.tensor(v) for v in zip(*boxes))
    out = crop_resize([img] * 4, t, l, h, w, SIZE)
    assert out.shape == (4, 3, SIZE, SIZE) and out.dtype == torch.float32
    for k, (tt, ll, hh, ww) in enumerate(boxes):
        ref = np.asarray(pil.resize((SIZE, SIZE), Image.BICUBIC, box=(ll, tt, ll + ww, tt + hh))) / 255.0
        diff = np.abs(out[k].permute(1, 2, 0).numpy() - ref)
        # PIL rounds to uint8 and clips between its two passes: close on average, a few levels at worst
        assert diff.mean() < 1.0 / 255 and diff.max() < 10.0 / 255


# ------------------------------------------------------------------------------------------ loaders
def test_task_loader_batches(dataset):
    indices = [0, 2, 3, 4, 5, 6, 8]
    augment = TwoViewBatchAugment([cfg(), cfg(gaussian_prob=1.0, size=12)], MEAN, STD)
    loader = DeviceFileTaskLoader(dataset, indices, 3, augment, "cpu", num_workers=0, seed=7)
    assert len(loader) == 2  # floor(7 / 3)
    seen = []
    for idx, views, targets in loader:
        assert isinstance(views, list) and len(views) == 2
        assert views[0].shape == (3, 3, SIZE, SIZE) and views[1].shape == (3, 3, 12, 12)
        for x in views:
            assert x.dtype == torch.float32 and torch.isfinite(x).all()
            x01 = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
            assert x01.min() >= -1e-5 and x01.max() <= 1 + 1e-5
        assert idx.dtype == torch.long and targets.dtype == torch.long
        assert targets.tolist() == [dataset.targets[i] for i in idx.tolist()]
        seen += idx.tolist()
    assert len(seen) == 6 and len(set(seen)) == 6 and set(seen) <= set(indices)


def test_identity_pipeline_is_decode_and_normalise(dataset):
    """No jitter/blur/flip and a full, square crop: the output is the decoded image, normalised."""
    # h.JPEG is 30x30; with scale (1, 1) and ratio (1, 1) the crop is the whole image.
    k = [name for _, name, *_ in FILES].index("h.JPEG")
    view = BatchViewAugment(cfg(min_scale=1.0, size=30, ratio=(1.0, 1.0), **IDENTITY), MEAN, STD)
    loader = DeviceFileEvalLoader(dataset, 1, view, "cpu", num_workers=0, indices=[k], seed=0)
    (idx, x, y), = list(loader)
    assert idx.tolist() == [k] and y.tolist() == [dataset.targets[k]] and x.shape == (1, 3, 30, 30)
    ref = torch.from_numpy(pil_rgb(dataset.samples[k][0]).copy()).permute(2, 0, 1).float() / 255
    ref = (ref - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert (x[0] - ref).abs().max() < 1e-4


def test_crop_areas_within_scale(dataset, monkeypatch):
    drawn = []
    real = gpu_decode.crop_resize

    def spy(images, top, left, h, w, size):
        drawn.append(([tuple(i.shape[1:]) for i in images], h.clone(), w.clone()))
        return real(images, top, left, h, w, size)

    monkeypatch.setattr(gpu_decode, "crop_resize", spy)
    augment = TwoViewBatchAugment(cfg(min_scale=0.3), MEAN, STD)
    loader = DeviceFileTaskLoader(dataset, None, 4, augment, "cpu", num_workers=0, seed=1)
    for _ in range(3):
        list(loader)
    assert len(drawn) == 3 * 2 * 2
    for shapes, h, w in drawn:
        for (height, width), hh, ww in zip(shapes, h.tolist(), w.tolist()):
            assert hh <= height and ww <= width
            if 0.75 <= width / height <= 4 / 3:  # otherwise a crop may be torchvision's clamped fallback
                assert (hh + 0.5) * (ww + 0.5) >= 0.3 * height * width  # area fraction >= min_scale,
                assert hh * ww <= height * width  # up to the rounding of the sides


def test_shuffle_reproducible_per_epoch(dataset):
    def make():
        augment = TwoViewBatchAugment(cfg(), MEAN, STD)
        return DeviceFileTaskLoader(dataset, None, 4, augment, "cpu", num_workers=0, seed=11)

    a, b = make(), make()
    ea0, ea1 = list(a), list(a)
    eb0 = list(b)
    orders = [torch.cat([i for i, _, _ in e]).tolist() for e in (ea0, ea1, eb0)]
    assert orders[0] == orders[2] and orders[0] != orders[1]
    for (i1, v1, y1), (i2, v2, y2) in zip(ea0, eb0):
        assert torch.equal(i1, i2) and torch.equal(y1, y2)
        assert all(torch.equal(p, q) for p, q in zip(v1, v2))
    b.set_epoch(1)
    assert torch.cat([i for i, _, _ in b]).tolist() == orders[1]


def test_worker_processes_give_the_same_batches(dataset):
    def run(workers):
        augment = TwoViewBatchAugment(cfg(), MEAN, STD)
        loader = DeviceFileTaskLoader(dataset, None, 4, augment, "cpu", num_workers=workers, seed=3)
        return list(loader), list(loader)

    for e0, e1 in zip(run(0), run(1)):
        for (i0, v0, y0), (i1, v1, y1) in zip(e0, e1):
            assert torch.equal(i0, i1) and torch.equal(y0, y1)
            assert all(torch.equal(p, q) for p, q in zip(v0, v1))


def test_eval_loader_needs_one_view(dataset):
    with pytest.raises(TypeError):
        DeviceFileEvalLoader(dataset, 2, TwoViewBatchAugment(cfg(), MEAN, STD), "cpu", num_workers=0)
    loader = DeviceFileEvalLoader(dataset, 4, BatchViewAugment(cfg(), MEAN, STD), "cpu", num_workers=0)
    assert len(loader) == len(dataset) // 4
    idx, x, y = next(iter(loader))
    assert x.shape == (4, 3, SIZE, SIZE) and y.tolist() == [dataset.targets[i] for i in idx.tolist()]


def test_undecodable_file_names_the_path(tmp_path):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    smooth_image(np.random.RandomState(0), 12, 12).save(good, "JPEG")
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 20)
    ds = FileListDataset([(str(good), 0), (str(bad), 1)])
    loader = DeviceFileTaskLoader(ds, None, 2, TwoViewBatchAugment(cfg(size=8), MEAN, STD), "cpu",
                                  num_workers=0)
    with pytest.raises(DataNotFoundError, match="bad.jpg"):
        list(loader)


# ------------------------------------------------------------------------------------------ driver
def test_task_data_fast_data_on_file_dataset(tree):
    from cassle.args.pretrain import parse_args
    from cassle.train import TaskData

    args = parse_args([
        "--method", "simclr", "--dataset", "imagenet100", "--fast_data",
        "--train_dir", str(tree / "train"), "--val_dir", str(tree / "val"),
        "--split_strategy", "data", "--num_tasks", "2", "--batch_size", "2", "--size", str(SIZE),
        "--num_workers", "0", "--accelerator", "cpu", "--online_eval",
    ])
    datasets = load_imagenet100(str(tree / "train"), str(tree / "val"))
    data = TaskData(args, datasets)
    loaders = data.train_loaders(1, torch.device("cpu"))
    assert set(loaders) == {"task1", "online_eval"}
    task = loaders["task1"]
    assert isinstance(task, DeviceFileTaskLoader) and isinstance(loaders["online_eval"], DeviceFileEvalLoader)
    wanted = set(data.task_indices(1))
    assert len(task) == len(wanted) // 2
    idx, (x1, x2), y = next(iter(task))
    assert x1.shape == x2.shape == (2, 3, SIZE, SIZE) and x1.dtype == torch.float32
    assert set(idx.tolist()) <= wanted and y.tolist() == [datasets[0].targets[i] for i in idx.tolist()]
    idx, x, y = next(iter(loaders["online_eval"]))
    assert x.shape == (2, 3, SIZE, SIZE) and len(loaders["online_eval"]) == len(FILES) // 2
