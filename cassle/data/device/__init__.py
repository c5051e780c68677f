"""The device data path (``--fast_data``): augmentation of whole batches on the training device.

* :mod:`~cassle.data.device.ops`: deterministic tensor operations (colour, blur, solarisation, resized crops);
* :mod:`~cassle.data.device.sampling`: their random parameters, drawn per image for a whole batch;
* :mod:`~cassle.data.device.pipelines`: :class:`BatchViewAugment` (one view) and :class:`TwoViewBatchAugment`;
* :mod:`~cassle.data.device.decode`: encoded image files read by CPU workers, decoded on the device;
* :mod:`~cassle.data.device.loaders`: :class:`DeviceArrayLoader` (in-memory datasets held on the device)
  and :class:`DeviceFileLoader` (image files), sharded over ranks by :class:`cassle.data.epochs.EpochSampler`.
"""

from cassle.data.device.decode import EncodedFiles, decode_images
from cassle.data.device.loaders import DeviceArrayLoader, DeviceDataset, DeviceFileLoader
from cassle.data.device.pipelines import BatchViewAugment, TwoViewBatchAugment

__all__ = [
    "BatchViewAugment",
    "DeviceArrayLoader",
    "DeviceDataset",
    "DeviceFileLoader",
    "EncodedFiles",
    "TwoViewBatchAugment",
    "decode_images",
]
