"""Datasets as tensors: ``digits`` (embedded default), ``imagefolder``, ``cifar10``, ``synthetic``."""

from __future__ import annotations

from lepton_tune.data._dataset import PREPROCESSING_VERSION, Dataset, load_dataset, load_image_files
from lepton_tune.data._images import (
    CHUNK_FILES,
    IMAGE_EXTENSIONS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    EncodedImage,
    PixelArray,
    expand_image_paths,
    iter_preprocessed,
    preprocess_files,
)

__all__ = [
    "CHUNK_FILES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "PREPROCESSING_VERSION",
    "Dataset",
    "EncodedImage",
    "PixelArray",
    "expand_image_paths",
    "iter_preprocessed",
    "load_dataset",
    "load_image_files",
    "preprocess_files",
]
