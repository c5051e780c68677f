"""Encoded files read by workers and decoded on the device, against PIL; fallbacks and error messages."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cassle.data.datasets import FileListDataset
from cassle.data.device import decode
from cassle.data.device.decode import (
    EncodedFiles,
    collate_encoded,
    decode_batch,
    decode_images,
    is_jpeg,
    split_encoded,
)
from cassle.errors import DataNotFoundError
from tests.data.device.helpers import FILES, smooth_image


def pil_rgb(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def encoded(dataset):
    files = EncodedFiles.from_dataset(dataset)
    return [files[i][1] for i in range(len(files))]


def test_decode_matches_pil(file_dataset):
    data = encoded(file_dataset)
    assert [is_jpeg(d) for d in data] == [kind != "png" for *_, kind in FILES]
    images = decode_images(data, "cpu")
    for img, (path, _), (*_, height, width, kind) in zip(images, file_dataset.samples, FILES):
        assert img.dtype == torch.uint8 and img.shape == (3, height, width), kind
        ref = pil_rgb(path).astype(np.float64)
        diff = np.abs(img.permute(1, 2, 0).numpy().astype(np.float64) - ref)
        assert diff.mean() < 2.0, (kind, diff.mean())  # JPEG decoders agree to within 2/255


def test_decode_fallbacks(file_dataset, monkeypatch):
    data = encoded(file_dataset)
    reference = decode_images(data, "cpu")

    def broken_batch(input, *args, **kwargs):  # the batched call fails; single files still decode
        if isinstance(input, list):
            raise RuntimeError("batched decode unavailable")
        return real(input, *args, **kwargs)

    real = decode.decode_jpeg
    monkeypatch.setattr(decode, "decode_jpeg", broken_batch)
    assert all(torch.equal(a, b) for a, b in zip(decode_images(data, "cpu"), reference))

    def one_channel(input, *args, **kwargs):  # a decoder that ignores mode=RGB: CPU fallback
        out = real(input, *args, **kwargs)
        return [o[:1] for o in out] if isinstance(out, list) else out[:1]

    monkeypatch.setattr(decode, "decode_jpeg", one_channel)
    assert all(torch.equal(a, b) for a, b in zip(decode_images(data, "cpu"), reference))
    monkeypatch.undo()

    with pytest.raises(RuntimeError):
        decode_images([torch.tensor([0xFF, 0xD8, 0xFF, 0, 1, 2], dtype=torch.uint8)], "cpu")


def test_jpeg_frame_info_routes_cmyk_to_the_cpu_on_accelerators(file_dataset):
    data = encoded(file_dataset)
    components = {"rgb": 3, "gray": 1, "cmyk": 4}
    for d, (*_, kind) in zip(data, FILES):
        info = decode.jpeg_frame_info(d)
        assert info == (None if kind == "png" else (8, components[kind])), kind
        assert decode._batchable(d, torch.device("cpu")) == (kind != "png")
        assert decode._batchable(d, torch.device("cuda")) == (kind in ("rgb", "gray"))
    # a JPEG with a big APP segment before its frame header, and a progressive one
    for kw in ({"exif": b"Exif\x00\x00" + bytes(3000)}, {"progressive": True}):
        buf = io.BytesIO()
        smooth_image(np.random.RandomState(0), 9, 7).save(buf, "JPEG", **kw)
        d = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
        assert decode.jpeg_frame_info(d) == (8, 3)
    assert decode.jpeg_frame_info(torch.tensor([0xFF, 0xD8, 0xFF], dtype=torch.uint8)) is None


def test_collate_round_trip(file_dataset):
    files = EncodedFiles.from_dataset(file_dataset)
    items = [files[i] for i in (4, 0, 7)]
    indexes, flat, lengths, targets = collate_encoded(items)
    assert indexes.tolist() == [4, 0, 7] and targets.tolist() == [file_dataset.targets[i] for i in (4, 0, 7)]
    assert flat.dtype == torch.uint8 and flat.dim() == 1
    assert all(torch.equal(a, it[1]) for a, it in zip(split_encoded(flat, lengths), items))


def test_missing_file_is_one_line_error(tmp_path):
    files = EncodedFiles([str(tmp_path / "nope.jpg")], [0])
    with pytest.raises(DataNotFoundError, match="nope.jpg"):
        files[0]


def test_keys_with_an_epoch_read_the_same_file(file_dataset):
    files = EncodedFiles.from_dataset(file_dataset)
    i, data, y = files[(7, 3)]
    assert i == 3 and y == file_dataset.targets[3] and torch.equal(data, files[3][1])


def test_undecodable_file_names_the_path(tmp_path):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    smooth_image(np.random.RandomState(0), 12, 12).save(good, "JPEG")
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 20)
    files = EncodedFiles.from_dataset(FileListDataset([(str(good), 0), (str(bad), 1)]))
    indexes, flat, lengths, _ = collate_encoded([files[0], files[1]])
    with pytest.raises(DataNotFoundError, match="bad.jpg") as exc:
        decode_batch(files, indexes, flat, lengths, "cpu")
    assert "\n" not in str(exc.value)
    assert decode_batch(files, indexes[:1], flat[: lengths[0]], lengths[:1], "cpu")[0].shape == (3, 12, 12)
