"""A dataset prepared once into TFDS ArrayRecord shards, and read back from them.

`prepare` reads a dataset's folder with the same reader as training does
(`load_domains`: same domain and class order, same example order, the same
bad files skipped with the same warning) and writes every kept file's raw
bytes, with its label, domain index and path relative to the dataset's folder,
into a TFDS data dir, as ArrayRecord shards (random access). Each record is
the file as it was, never re-encoded, so decoding a prepared example goes
through the same functions as decoding the file and gives the same pixels.
The dataset's `metadata.json` lists every file with its size and label: it is
both the index read at training time (no record is read to know the labels)
and the record of the source, so a folder that changed since is detected.

`load_prepared_domains` returns the domains as `DomainExamples` whose rows
point into the shards: the seeded DomainBed splits (`split_in_out`), the
training stream and the evaluation sets work on them unchanged, and give the
folder path's splits and batches bit for bit.

Example:

>>> import tempfile
>>> tfds_dir = tempfile.mkdtemp()
>>> _ = prepare("vlcs_mini", tfds_dir)
>>> domains = load_prepared_domains("vlcs_mini", tfds_dir)
>>> [(domain.name, len(domain)) for domain in domains]
[('caltech', 55), ('labelme', 77), ('sun', 55)]
"""

import contextlib
import hashlib
import io
import os
import shutil

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_ldrop.data.examples import DomainExamples
from keras_ldrop.data.reader import dataset_root, load_domains
from keras_ldrop.data.registry import IMAGE_FOLDER
from keras_ldrop.data.user_data import dataset_contents, describe_changes, resolve_dataset

SPLIT = "train"
_VERSION = "1.0.0"


class PreparedDatasetError(ValueError):
    """A prepared dataset is missing, or no longer matches its source folder."""


def prepared_name(spec):
    """The TFDS config name of a dataset: its registry name, or a user folder's
    name with a hash of its absolute path (two folders of one name differ).

    >>> from keras_ldrop.data.registry import get_dataset
    >>> prepared_name(get_dataset("vlcs_mini"))
    'vlcs_mini'
    """
    if not spec.is_user_data:
        return spec.name
    digest = hashlib.md5(spec.location.encode("utf-8")).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in spec.short_name.lower())
    return f"{safe}_{digest}"


def prepared_dir(spec, tfds_dir):
    """The folder of a dataset's prepared shards inside `tfds_dir`."""
    return os.path.join(
        os.fspath(tfds_dir), DomainImages.name, prepared_name(spec), _VERSION
    )


def source_files(spec, data_dir=None):
    """What `prepare` records of a source folder: `{domain: [[path, size, label]]}`.

    Paths are relative to the dataset's folder, in the reader's order; the
    files the reader skips are left out, as training leaves them out.
    """
    root = dataset_root(spec, data_dir)
    files = {}
    for domain in load_domains(spec, data_dir):
        files[domain.name] = [
            [os.path.relpath(path, root), os.path.getsize(path), int(label)]
            for path, label in zip(domain.paths, domain.labels)
        ]
    return files


def describe_file_changes(before, now):
    """How a source's file list changed, in words (`""` when it did not)."""
    changes = []
    for domain in sorted(set(before) | set(now)):
        if domain not in now or domain not in before:
            changes.append(f"domain {domain!r} {'removed' if domain in before else 'added'}")
            continue
        old = {path: (size, label) for path, size, label in before[domain]}
        new = {path: (size, label) for path, size, label in now[domain]}
        for word, paths in (
            ("added", sorted(set(new) - set(old))),
            ("removed", sorted(set(old) - set(new))),
            ("changed size or class", sorted(p for p in set(old) & set(new) if old[p] != new[p])),
        ):
            if paths:
                shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
                changes.append(f"{domain}: {len(paths)} file(s) {word} ({shown})")
    return "; ".join(changes)


class DomainImages(tfds.core.GeneratorBasedBuilder):
    """TFDS builder of one DomainBed-layout dataset (a config per dataset).

    One split, `train`, holds every domain's kept files in the reader's order
    (domain after domain); DomainBed's in/out splits are drawn from it by
    `split_in_out`, as from the folder. Features: `image` (the file's bytes),
    `label`, `domain` (class and domain names in the registry's order), `path`
    (relative to the dataset's folder). `files` is what `source_files` listed:
    the records, and the index kept in `metadata.json`.
    """

    VERSION = tfds.core.Version(_VERSION)
    # TFDS looks for a builder's download checksums beside its code, and to
    # find code outside its own package it imports `importlib_resources`,
    # which it does not declare (4.9.10). This builder downloads nothing.
    code_path = None

    def __init__(self, *, spec, files, data_dir_of_source=None, **kwargs):
        self.spec = spec
        self.data_dir_of_source = data_dir_of_source
        self.files = files
        config = tfds.core.BuilderConfig(name=prepared_name(spec))
        super().__init__(config=config, file_format="array_record", **kwargs)

    def _info(self):
        metadata = tfds.core.MetadataDict(
            domains=list(self.spec.domains),
            classes=list(self.spec.classes),
            source=dataset_root(self.spec, self.data_dir_of_source).as_posix(),
            files=self.files,
            contents=dataset_contents(self.spec) if self.spec.is_user_data else None,
        )
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "label": tfds.features.ClassLabel(names=self.spec.classes),
                    "domain": tfds.features.ClassLabel(names=self.spec.domains),
                    "path": tfds.features.Text(),
                }
            ),
            metadata=metadata,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {SPLIT: self._generate_examples()}

    def _generate_examples(self):
        root = dataset_root(self.spec, self.data_dir_of_source)
        key = 0
        for domain_index, domain in enumerate(self.spec.domains):
            for path, _, label in self.files[domain]:
                with open(root / path, "rb") as file:
                    image = file.read()
                yield key, {"image": image, "label": label, "domain": domain_index, "path": path}
                key += 1


def prepare(dataset, tfds_dir, data_dir=None, overwrite=False):
    """Prepares a dataset's ArrayRecord shards in `tfds_dir` (once).

    Args:
        dataset: a registry name, a user's folder of domains, or a `DatasetSpec`.
        tfds_dir: the TFDS data dir receiving the shards.
        data_dir: the folder holding the downloaded registered datasets.
        overwrite: replace a prepared copy whose source changed since.

    Returns:
        The prepared dataset's folder. A copy already prepared from the same
        files is kept as it is.

    Raises:
        PreparedDatasetError: a prepared copy exists, the source changed since
            and `overwrite` is false (the message names what changed).
    """
    spec = resolve_dataset(dataset)
    if spec.kind != IMAGE_FOLDER:
        raise PreparedDatasetError(
            f"Only folders of image files can be prepared; {spec.name!r} is "
            f"of kind {spec.kind!r}."
        )
    files = source_files(spec, data_dir)
    folder = prepared_dir(spec, tfds_dir)
    if os.path.isdir(folder):
        changes = describe_file_changes(
            _prepared_builder(spec, tfds_dir).info.metadata["files"], files
        )
        if not changes:
            return folder
        if not overwrite:
            raise PreparedDatasetError(
                f"{folder} was prepared from other files than {spec.name!r} holds "
                f"now: {changes}. Prepare it again with --overwrite."
            )
        shutil.rmtree(folder)
    builder = DomainImages(
        spec=spec, data_dir_of_source=data_dir, files=files, data_dir=os.fspath(tfds_dir)
    )
    # TFDS prints "Downloading and preparing dataset Unknown size ..." and
    # "... downloaded and prepared" to stdout: nothing is downloaded here.
    with contextlib.redirect_stdout(io.StringIO()):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return folder


def _prepared_builder(spec, tfds_dir):
    folder = prepared_dir(spec, tfds_dir)
    if not os.path.isdir(folder):
        target = spec.location or spec.name
        raise PreparedDatasetError(
            f"Dataset {spec.name!r} is not prepared in {tfds_dir} (no {folder}). "
            f"Prepare it with: python apps/prepare.py --dataset={target} "
            f"--tfds_dir={tfds_dir}"
        )
    return tfds.builder_from_directory(folder)


class RecordSource:
    """Random access to a prepared dataset's files: `read(rows)` -> their bytes.

    `read` is a TensorFlow op (a `tf.numpy_function` around the TFDS
    ArrayRecord data source, then `tf.io.parse_example`), for tf.data.

    Args:
        builder: the prepared dataset's builder (`tfds.builder_from_directory`).
    """

    def __init__(self, builder):
        self.folder = builder.data_dir
        self._records = builder.as_data_source(
            split=SPLIT, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
        )

    def __len__(self):
        return len(self._records)

    def _serialized(self, rows):
        return np.array(self._records.__getitems__(rows.tolist()), dtype=object)

    def read(self, rows):
        """The files' bytes at `rows` (an int64 vector tensor), a string vector."""
        serialized = tf.numpy_function(self._serialized, [rows], tf.string, stateful=False)
        serialized.set_shape(rows.shape)
        parsed = tf.io.parse_example(
            serialized, {"image": tf.io.FixedLenFeature([], tf.string)}
        )
        return parsed["image"]


def load_prepared_domains(dataset, tfds_dir):
    """Returns every domain of a prepared dataset as `DomainExamples` on its shards.

    The examples, their order and labels are those `load_domains` gave when
    the dataset was prepared; their `paths` are the files' paths relative to
    the dataset's folder (what a warning about an undecodable file names).

    Raises:
        PreparedDatasetError: the dataset is not prepared in `tfds_dir` (the
            message gives the command that prepares it), its domains or
            classes are not those it was prepared with, or a user's folder
            changed since (domains, classes, files per domain).
    """
    spec = resolve_dataset(dataset)
    builder = _prepared_builder(spec, tfds_dir)
    metadata = builder.info.metadata
    prepared_order = (metadata["domains"], metadata["classes"])
    if prepared_order != (list(spec.domains), list(spec.classes)):
        raise PreparedDatasetError(
            f"{spec.name!r} was prepared in {tfds_dir} with domains {prepared_order[0]} "
            f"and classes {prepared_order[1]}; it now has domains {list(spec.domains)} "
            f"and classes {list(spec.classes)}. Prepare it again with --overwrite."
        )
    if spec.is_user_data:
        changes = describe_changes(metadata["contents"], dataset_contents(spec))
        if changes:
            raise PreparedDatasetError(
                f"{spec.location} changed since it was prepared in {tfds_dir}: "
                f"{changes}. Prepare it again: python apps/prepare.py "
                f"--dataset={spec.location} --tfds_dir={tfds_dir} --overwrite"
            )
    source = RecordSource(builder)
    domains, start = [], 0
    for domain in spec.domains:
        files = metadata["files"][domain]
        domains.append(
            DomainExamples(
                domain,
                labels=[label for _, _, label in files],
                paths=[path for path, _, _ in files],
                records=source,
                rows=np.arange(start, start + len(files)),
            )
        )
        start += len(files)
    if start != len(source):
        raise PreparedDatasetError(
            f"{source.folder} holds {len(source)} records but its metadata lists "
            f"{start} files: prepare it again with --overwrite."
        )
    return domains
