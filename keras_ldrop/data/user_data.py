"""A user's own data as a dataset: a folder of domains, or a CSV manifest.

A folder is laid out as DomainBed's datasets are, `PATH/<domain>/<class>/<image>`
(images may sit deeper inside a class folder). Domains and classes are the
folder names, sorted as DomainBed and torchvision's `ImageFolder` sort them;
the class list is the union over the domains (a class may be missing from
some domain). Names starting with a dot (`.DS_Store`, `.ipynb_checkpoints`)
are ignored. A manifest is a CSV file with a header holding the columns
`path`, `label` and `domain` (others are ignored); paths are relative to the
CSV's folder, or absolute.

Either becomes a `DatasetSpec` with the paper's training defaults (224 px,
10,000 steps, ...), usable wherever a registered name is: `FinetuneConfig`,
`load_domains`, the sweep. Only the layout is scanned here; the files are
checked, and unreadable ones skipped with a warning, when `load_domains`
reads them, as for the registered datasets.

Example:

>>> import tempfile, pathlib
>>> from PIL import Image
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for domain in ("site_a", "site_b"):
...     for name in ("cat", "dog"):
...         (root / domain / name).mkdir(parents=True)
...         Image.new("RGB", (8, 8)).save(root / domain / name / "0.png")
>>> spec = user_dataset(str(root))
>>> spec.domains, spec.classes, spec.image_counts
(('site_a', 'site_b'), ('cat', 'dog'), (2, 2))
"""

import csv
import os

from keras_ldrop.data.registry import DATASETS, IMAGE_FOLDER, MANIFEST, DatasetSpec

MANIFEST_COLUMNS = ("path", "label", "domain")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


class DatasetLayoutError(ValueError):
    """A user's folder or manifest is not laid out as a dataset."""


def _visible(entries):
    return sorted(
        (entry for entry in entries if not entry.name.startswith(".")),
        key=lambda entry: entry.name,
    )


def _image_names(entries):
    return [
        entry.name
        for entry in entries
        if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
    ]


def _count_files(folder):
    return sum(len(names) for _, _, names in os.walk(folder, followlinks=True))


def _layout_hint(root):
    return f"expected {root}/<domain>/<class>/<image>"


def _scan_folder(root):
    """Returns `(domains, classes, image_counts)` of a folder of domains."""
    entries = _visible(os.scandir(root))
    stray = _image_names(entries)
    if stray:
        raise DatasetLayoutError(
            f"{root} holds images directly ({', '.join(stray[:3])}"
            f"{', ...' if len(stray) > 3 else ''}); {_layout_hint(root)}."
        )
    domains, classes, counts = [], set(), []
    for domain in (entry for entry in entries if entry.is_dir()):
        domain_entries = _visible(os.scandir(domain.path))
        stray = _image_names(domain_entries)
        if stray:
            raise DatasetLayoutError(
                f"Domain folder {domain.path} holds images outside a class folder "
                f"({', '.join(stray[:3])}{', ...' if len(stray) > 3 else ''}); "
                f"{_layout_hint(root)}."
            )
        class_folders = [entry for entry in domain_entries if entry.is_dir()]
        count = sum(_count_files(entry.path) for entry in class_folders)
        if count == 0:
            raise DatasetLayoutError(
                f"Domain folder {domain.path} is empty: it has no class folder "
                f"holding files; {_layout_hint(root)}."
            )
        domains.append(domain.name)
        classes.update(entry.name for entry in class_folders)
        counts.append(count)
    return tuple(domains), tuple(sorted(classes)), tuple(counts)


def read_manifest(path):
    """Returns `{domain: [(absolute image path, class name)]}` from a CSV manifest.

    Raises:
        DatasetLayoutError: the file is not a CSV with the `path`, `label`
            and `domain` columns, a row has an empty value, or a row's file
            does not exist.
    """
    folder = os.path.dirname(path)
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        missing = [column for column in MANIFEST_COLUMNS if column not in columns]
        if missing:
            raise DatasetLayoutError(
                f"Manifest {path} lacks the column(s) {', '.join(missing)}: its "
                f"header must name {', '.join(MANIFEST_COLUMNS)}; found "
                f"{', '.join(columns) if columns else 'no header'}."
            )
        rows = {}
        for line, row in enumerate(reader, start=2):
            values = [(row[column] or "").strip() for column in MANIFEST_COLUMNS]
            empty = [name for name, value in zip(MANIFEST_COLUMNS, values) if not value]
            if empty:
                raise DatasetLayoutError(
                    f"Manifest {path}, line {line}: empty {', '.join(empty)}."
                )
            image, label, domain = values
            image = os.path.normpath(os.path.join(folder, image))
            if not os.path.isfile(image):
                raise DatasetLayoutError(
                    f"Manifest {path}, line {line}: file {image} does not exist."
                )
            rows.setdefault(domain, []).append((image, label))
    if not rows:
        raise DatasetLayoutError(f"Manifest {path} has no rows.")
    return rows


def user_dataset(path, min_domains=2):
    """Returns the `DatasetSpec` of a folder of domains or of a CSV manifest.

    Args:
        path: a folder `PATH/<domain>/<class>/<image>`, or a `.csv` manifest.
        min_domains: the fewest domains accepted (2 to train: leave one
            domain out; 1 to evaluate a model on one new domain).

    Raises:
        DatasetLayoutError: the layout is wrong (images outside class folders,
            an empty domain, too few domains, a bad manifest); the message
            names the problem and the path.
    """
    location = os.path.abspath(os.fspath(path))
    if os.path.isdir(location):
        kind = IMAGE_FOLDER
        domains, classes, counts = _scan_folder(location)
    elif os.path.isfile(location) and location.lower().endswith(".csv"):
        kind = MANIFEST
        rows = read_manifest(location)
        domains = tuple(sorted(rows))
        classes = tuple(sorted({label for items in rows.values() for _, label in items}))
        counts = tuple(len(rows[domain]) for domain in domains)
    else:
        raise DatasetLayoutError(
            f"{location} is neither a folder of domains nor a .csv manifest."
        )
    if len(domains) < min_domains:
        raise DatasetLayoutError(
            f"{location} has {len(domains)} domain(s) {list(domains)}; at least "
            f"{min_domains} are needed"
            + (" (leave-one-domain-out trains on the others)" if min_domains > 1 else "")
            + f"; {_layout_hint(location)}."
        )
    return DatasetSpec(
        name=location,
        folder=location,
        domains=domains,
        classes=classes,
        kind=kind,
        location=location,
        image_counts=counts,
    )


def dataset_contents(spec):
    """What was read of a user's dataset, as JSON-ready data (for `config.json`)."""
    return {
        "path": spec.location,
        "format": "manifest" if spec.kind == MANIFEST else "folder",
        "domains": list(spec.domains),
        "classes": list(spec.classes),
        "images": dict(zip(spec.domains, spec.image_counts)),
    }


def spec_from_contents(contents):
    """The `DatasetSpec` that `dataset_contents` describes, without a scan."""
    return DatasetSpec(
        name=contents["path"],
        folder=contents["path"],
        domains=tuple(contents["domains"]),
        classes=tuple(contents["classes"]),
        kind=MANIFEST if contents["format"] == "manifest" else IMAGE_FOLDER,
        location=contents["path"],
        image_counts=tuple(contents["images"][domain] for domain in contents["domains"]),
    )


def describe_changes(before, now):
    """How a dataset's contents changed, in words (`""` when they did not)."""
    changes = []
    for name in ("path", "format"):
        if before[name] != now[name]:
            changes.append(f"{name} {before[name]!r} then, {now[name]!r} now")
    for name in ("domains", "classes"):
        added = sorted(set(now[name]) - set(before[name]))
        removed = sorted(set(before[name]) - set(now[name]))
        if added:
            changes.append(f"{name} added {added}")
        if removed:
            changes.append(f"{name} removed {removed}")
    for domain, count in now["images"].items():
        previous = before["images"].get(domain)
        if previous is not None and previous != count:
            changes.append(f"domain {domain!r} had {previous} files, now {count}")
    return "; ".join(changes)


def resolve_dataset(dataset, min_domains=2):
    """A `DatasetSpec` from a registry name, a folder or manifest path, or a spec.

    Raises:
        ValueError: `dataset` is neither registered nor an existing path (the
            message lists the registered names).
        DatasetLayoutError: the path's layout is wrong.
    """
    if isinstance(dataset, DatasetSpec):
        return dataset
    if dataset in DATASETS:
        return DATASETS[dataset]
    if os.path.exists(os.fspath(dataset)):
        return user_dataset(dataset, min_domains)
    raise ValueError(
        f"Unknown dataset {dataset!r}: neither a registered name "
        f"({', '.join(DATASETS)}) nor an existing folder of domains or CSV manifest."
    )
