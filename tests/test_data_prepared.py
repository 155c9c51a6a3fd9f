"""A dataset prepared into TFDS ArrayRecord shards gives the folder path's data bit for bit."""

import os
import warnings

import numpy as np
import pytest

from keras_ldrop.data import (
    DomainExamples,
    SkippedFilesWarning,
    evaluation_pass,
    load_domains,
    split_in_out,
    training_dataset,
)
from keras_ldrop.data.prepared import (
    PreparedDatasetError,
    load_prepared_domains,
    prepare,
    prepared_dir,
)
from keras_ldrop.data.registry import get_dataset
from keras_ldrop.data.user_data import user_dataset
from tests.app_runner import load_app, run_app

VLCS = get_dataset("vlcs")


@pytest.fixture(scope="module")
def prepared_vlcs(tiny_vlcs_tree, tmp_path_factory):
    """`(folder domains, prepared domains)` of the tiny VLCS tree (which holds bad files)."""
    tfds_dir = tmp_path_factory.mktemp("tfds")
    with pytest.warns(SkippedFilesWarning, match="corrupt.jpg"):
        prepare("vlcs", tfds_dir, data_dir=tiny_vlcs_tree)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        folder = load_domains("vlcs", tiny_vlcs_tree)
    return folder, load_prepared_domains("vlcs", tfds_dir), tfds_dir


def _batches(dataset, count):
    return [(images.numpy(), labels.numpy()) for images, labels in dataset.take(count)]


def test_records_hold_the_files_bytes_labels_and_paths_in_reader_order(
    prepared_vlcs, tiny_vlcs_tree
):
    import tensorflow_datasets as tfds

    folder, prepared, tfds_dir = prepared_vlcs
    root = tiny_vlcs_tree / "VLCS"
    assert [d.name for d in prepared] == list(VLCS.domains)
    records = tfds.builder_from_directory(prepared_dir(VLCS, tfds_dir)).as_data_source("train")
    for domain_index, (files, records_of_domain) in enumerate(zip(folder, prepared)):
        np.testing.assert_array_equal(records_of_domain.labels, files.labels)
        assert records_of_domain.paths == tuple(os.path.relpath(p, root) for p in files.paths)
        for path, label, row in zip(files.paths, files.labels, records_of_domain.rows):
            record = records[int(row)]
            with open(path, "rb") as file:
                assert record["image"] == file.read()
            assert (record["label"], record["domain"]) == (label, domain_index)
            assert record["path"].decode() == os.path.relpath(path, root)
    assert "corrupt.jpg" not in str(prepared[0].paths)


def test_splits_training_batches_and_evaluation_equal_the_folder_paths(prepared_vlcs):
    folder, prepared, _ = prepared_vlcs
    splits = {}
    for source, domains in (("folder", folder), ("tfds", prepared)):
        splits[source] = [split_in_out(d, 0.2, trial_seed=1, domain_index=i)
                          for i, d in enumerate(domains)]
    for (folder_in, folder_out), (tfds_in, tfds_out) in zip(splits["folder"], splits["tfds"]):
        assert [os.path.basename(p) for p in folder_in.paths] == [
            os.path.basename(p) for p in tfds_in.paths]
        np.testing.assert_array_equal(folder_out.labels, tfds_out.labels)
    train = {source: [s[0] for s in splits[source][1:]] for source in splits}
    expected = _batches(training_dataset(train["folder"], 3, 16, seed=5, start_step=7), 1)
    actual = _batches(training_dataset(train["tfds"], 3, 16, seed=5, start_step=7), 1)
    for (images, labels), (want_images, want_labels) in zip(actual, expected):
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(labels, want_labels)
    outs = {source: [s[1] for s in splits[source]] for source in splits}
    want = _batches(evaluation_pass(outs["folder"], 16, 5), 99)
    got = _batches(evaluation_pass(outs["tfds"], 16, 5), 99)
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]),
                                  np.concatenate([w[0] for w in want]))


def _in_memory_domains():
    rng = np.random.default_rng(0)
    return [
        DomainExamples(f"d{i}", labels=rng.integers(0, 3, 7),
                       images=rng.integers(0, 256, (7, 12, 12, 3), dtype=np.uint8))
        for i in range(2)
    ]


@pytest.mark.parametrize("source", ["tfds", "in_memory"])
def test_two_processes_rows_make_the_one_process_global_batch(prepared_vlcs, source):
    folder, prepared, _ = prepared_vlcs
    domains = {"tfds": prepared[:3], "in_memory": _in_memory_domains()}[source]
    whole = _batches(training_dataset(domains, 4, 16, seed=3, start_step=9), 1)
    parts = [
        _batches(training_dataset(domains, 4, 16, seed=3, start_step=9,
                                  process_index=p, process_count=2), 1)
        for p in range(2)
    ]
    for step, (images, labels) in enumerate(whole):
        assert parts[0][step][0].shape[0] == len(images) // 2
        np.testing.assert_array_equal(
            np.concatenate([parts[0][step][0], parts[1][step][0]]), images)
        np.testing.assert_array_equal(
            np.concatenate([parts[0][step][1], parts[1][step][1]]), labels)
    if source == "tfds":
        folder_whole = _batches(training_dataset(folder[:3], 4, 16, seed=3, start_step=9), 1)
        np.testing.assert_array_equal(folder_whole[0][0], whole[0][0])


def test_an_uneven_process_share_is_refused(prepared_vlcs):
    _, prepared, _ = prepared_vlcs
    with pytest.raises(ValueError, match="12 rows does not split evenly across 5"):
        training_dataset(prepared[:3], 4, 16, process_index=0, process_count=5)


def test_a_changed_folder_is_named_and_refused_until_prepared_again(user_tree, tmp_path):
    tfds_dir = tmp_path / "tfds"
    prepare(user_tree, tfds_dir)
    assert prepare(user_tree, tfds_dir) == prepared_dir(user_dataset(user_tree), tfds_dir)
    (user_tree / "site_a" / "cat" / "cat_0.jpg").unlink()
    with pytest.raises(PreparedDatasetError, match=r"site_a: 1 file\(s\) removed \(site_a/cat/cat_0.jpg\)"):
        prepare(user_tree, tfds_dir)
    with pytest.raises(PreparedDatasetError, match="domain 'site_a' had 12 files, now 11"):
        load_prepared_domains(user_tree, tfds_dir)
    (user_tree / "site_d" / "cat").mkdir(parents=True)
    (user_tree / "site_a" / "dog" / "dog_0.jpg").rename(user_tree / "site_d" / "cat" / "0.jpg")
    with pytest.raises(PreparedDatasetError, match=r"now has domains \['site_a', 'site_b', 'site_c', 'site_d'\]"):
        load_prepared_domains(user_tree, tfds_dir)
    (user_tree / "site_d" / "cat" / "0.jpg").rename(user_tree / "site_a" / "dog" / "dog_0.jpg")
    (user_tree / "site_d" / "cat").rmdir()
    (user_tree / "site_d").rmdir()
    prepare(user_tree, tfds_dir, overwrite=True)
    assert [len(d) for d in load_prepared_domains(user_tree, tfds_dir)] == [11, 8, 12]


def test_prepare_app_answers_bad_input_with_one_line(tmp_path, tiny_vlcs_tree):
    app = load_app("prepare")
    tfds_dir = str(tmp_path)
    assert run_app(app, "prepare", "--dataset=nope", f"--tfds_dir={tfds_dir}").startswith(
        "prepare: error: Unknown dataset 'nope'")
    assert run_app(app, "prepare", "--dataset=vlcs_mini").startswith(
        "prepare: error: --tfds_dir is required")
    assert "looked for the folder /no/such/PACS" in run_app(
        app, "prepare", "--dataset=pacs", "--data_dir=/no/such", f"--tfds_dir={tfds_dir}")
    with pytest.raises(PreparedDatasetError, match=(
        "not prepared in .* Prepare it with: python apps/prepare.py --dataset=pacs_mini"
    )):
        load_prepared_domains("pacs_mini", tfds_dir)


class _MeanColour:
    """A stand-in model: each image's mean colour."""

    def predict(self, dataset, verbose=0):
        return np.concatenate(
            [images.mean(axis=(1, 2)) for images, _ in dataset.as_numpy_iterator()]
        )


class _TwoProcesses:
    """A stand-in for the JAX predictor of process 0 of 2: each batch is both
    processes' rows (`other` is process 1's dataset), every output returned."""

    def __init__(self, other):
        self.other = other

    def predict(self, dataset, verbose=0):
        return np.concatenate([
            np.concatenate([mine[0], theirs[0]]).mean(axis=(1, 2))
            for mine, theirs in zip(dataset.as_numpy_iterator(), self.other.as_numpy_iterator())
        ])


def test_two_processes_evaluation_shares_give_the_one_process_logits(prepared_vlcs):
    from keras_ldrop.training.evaluation import SplitPredictor

    _, prepared, _ = prepared_vlcs
    splits = {"env0_in": prepared[0], "env1_out": prepared[1].subset(range(5))}
    seeds = {"env1_out": 7}

    def predictor(**share):
        return SplitPredictor(splits, 16, batch_size=4, augment_seeds=seeds, **share)

    expected = predictor()(_MeanColour())
    first, second = (predictor(process_index=p, process_count=2) for p in range(2))
    actual = first(_TwoProcesses(second.dataset))
    assert [len(actual[name]) for name in splits] == [len(prepared[0]), 5]
    for name in splits:
        np.testing.assert_array_equal(actual[name], expected[name])


def test_finetune_on_an_unprepared_dataset_names_the_command_and_writes_nothing(tmp_path):
    app = load_app("finetune")
    output_dir = tmp_path / "run"
    message = run_app(app, "finetune", "--dataset=vlcs_mini", "--data_source=tfds",
                      f"--tfds_dir={tmp_path}", f"--output_dir={output_dir}")
    assert message.startswith("finetune: error: Dataset 'vlcs_mini' is not prepared in")
    assert f"python apps/prepare.py --dataset=vlcs_mini --tfds_dir={tmp_path}" in message
    assert not output_dir.exists()
    assert "--tfds_dir names the prepared shards" in run_app(
        app, "finetune", "--dataset=vlcs_mini", "--data_source=tfds")
