"""Copies domains of a registered dataset into a user's folder layout.

`PATH/<domain>/<class>/<image>`, each class folder named by its class (the
VLCS mini's `hund`, `husky` and `dog` folders all become `dog`). This turns the
real images that ship offline into "your own data", e.g. training domains in
one folder and a new domain in another.

Example:

>>> import tempfile
>>> from keras_ldrop.data.copy_domains import copy_domains
>>> root = copy_domains("vlcs_mini", tempfile.mkdtemp(), domains=["sun"])
>>> sorted(path.name for path in (root / "sun").iterdir())
['bird', 'car', 'chair', 'dog', 'person']
"""

import os
import pathlib
import shutil

from keras_ldrop.data.reader import load_domains
from keras_ldrop.data.registry import IMAGE_FOLDER, get_dataset


def copy_domains(dataset, output_dir, domains=None, data_dir=None):
    """Copies the images of some domains of `dataset` into `output_dir`.

    Only readable images are copied (the reader's checks). Files keep their
    names; a name met twice in one class folder gets a numbered suffix.

    Args:
        dataset: a registry name of an image-folder dataset (e.g. `vlcs_mini`).
        output_dir: the folder that receives `<domain>/<class>/<image>`; it
            must not hold those domains yet.
        domains: domain names to copy; default all.
        data_dir: where a downloaded dataset lives (not for the minis).

    Returns:
        `output_dir` as a `pathlib.Path`.

    Raises:
        ValueError: an unknown dataset or domain, or a dataset that is not
            made of image files (the MNIST family), or a domain folder that
            already exists in `output_dir`.
    """
    spec = get_dataset(dataset)
    if spec.kind != IMAGE_FOLDER:
        raise ValueError(f"{spec.name} is not made of image files; nothing to copy.")
    chosen = list(spec.domains if domains is None else domains)
    unknown = [domain for domain in chosen if domain not in spec.domains]
    if unknown:
        raise ValueError(
            f"Unknown domain(s) {unknown} of {spec.name}; its domains are "
            f"{', '.join(spec.domains)}."
        )
    root = pathlib.Path(output_dir)
    existing = [domain for domain in chosen if (root / domain).exists()]
    if existing:
        raise ValueError(
            f"{root} already holds the domain folder(s) {existing}; choose another "
            "output folder or remove them."
        )
    for domain in load_domains(dataset, data_dir):
        if domain.name not in chosen:
            continue
        for path, label in zip(domain.paths, domain.labels):
            folder = root / domain.name / spec.classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, _free_name(folder, os.path.basename(path)))
    return root


def _free_name(folder, name):
    stem, extension = os.path.splitext(name)
    candidate, number = folder / name, 1
    while candidate.exists():
        candidate = folder / f"{stem}_{number}{extension}"
        number += 1
    return candidate
