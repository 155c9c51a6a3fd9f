"""The training domains evaluated with their training augmentation, as DomainBed does."""

import dataclasses
import json

import numpy as np
import pytest

from keras_ldrop.data import DomainExamples, evaluation_dataset, evaluation_pass, load_domains
from keras_ldrop.experiments import collect, domainbed_records
from keras_ldrop.experiments.sweep import finetune_flags
from keras_ldrop.training import ConfigError, evaluation, train_and_evaluate
from keras_ldrop.training.records import RunFiles
from tests.app_runner import load_app
from tests.test_domainbed_records import authors_records, domainbed_record
from tests.test_training import read_records, tiny_config


def one_pass(dataset):
    """`(images, labels, rows per batch)` of a finite dataset."""
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    return (
        np.concatenate([images for images, _ in batches]),
        np.concatenate([labels for _, labels in batches]),
        [len(labels) for _, labels in batches],
    )


def photos(count=7):
    domain = load_domains("pacs_mini")[1]
    return DomainExamples(domain.name, domain.labels[:count], paths=domain.paths[:count])


def test_an_augmented_pass_keeps_every_example_in_order_and_is_fixed_by_its_seed():
    examples = photos()
    clean, clean_labels, clean_rows = one_pass(evaluation_dataset(examples, 32, 3))
    augmented, labels, rows = one_pass(evaluation_dataset(examples, 32, 3, augment_seed=5))
    again, _, _ = one_pass(evaluation_dataset(examples, 32, 3, augment_seed=5))
    other, _, _ = one_pass(evaluation_dataset(examples, 32, 3, augment_seed=6))
    assert rows == clean_rows == [3, 3, 1]
    assert labels.tolist() == clean_labels.tolist() == examples.labels.tolist()
    np.testing.assert_array_equal(augmented, again)
    assert augmented.min() >= 0 and augmented.max() <= 255
    for image in range(len(examples)):
        assert np.abs(augmented[image] - clean[image]).mean() > 1.0, image
        assert np.abs(augmented[image] - other[image]).mean() > 1.0, image


def test_in_memory_images_are_not_augmented_at_evaluation_as_in_training():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)
    examples = DomainExamples("digits", labels=np.arange(5), images=images)
    clean, _, _ = one_pass(evaluation_dataset(examples, 32, 2))
    augmented, _, _ = one_pass(evaluation_dataset(examples, 32, 2, augment_seed=5))
    np.testing.assert_array_equal(augmented, clean)


def test_a_run_augments_its_training_domains_only_and_trains_the_same(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, monkeypatch
):
    seeds_asked = {}

    def remembering(example_sets, image_size, batch_size, augment_seeds=None, **share):
        for index, examples in enumerate(example_sets):
            seed = None if augment_seeds is None else augment_seeds[index]
            seeds_asked.setdefault(examples.name, set()).add(seed)
        return evaluation_pass(
            example_sets, image_size, batch_size, augment_seeds=augment_seeds, **share
        )

    monkeypatch.setattr(evaluation, "evaluation_pass", remembering)
    augmented = tiny_config(
        tiny_vlcs_tree, tiny_preset_folder, steps=2, checkpoint_freq=2, average_start=2
    )
    train_and_evaluate(augmented, tmp_path / "augmented", log=lambda _: None)
    assert seeds_asked.pop("Caltech101") == {None}  # the test domain, in and out
    assert all(None not in seeds and len(seeds) == 2 for seeds in seeds_asked.values())
    assert len(seeds_asked) == 3

    clean = dataclasses.replace(augmented, augment_evaluation=False)
    train_and_evaluate(clean, tmp_path / "clean", log=lambda _: None)
    for with_augmentation, without in zip(
        read_records(tmp_path / "augmented"), read_records(tmp_path / "clean"), strict=True
    ):
        assert with_augmentation["hparams"]["augment_evaluation"] is True
        assert without["hparams"]["augment_evaluation"] is False
        assert with_augmentation["loss"] == without["loss"]
        for prefix in ("", "average_", "ensemble_"):
            for part in ("in", "out"):
                key = f"{prefix}env0_{part}_acc"
                assert with_augmentation[key] == without[key], key


def test_a_run_folder_from_before_the_setting_resumes_only_as_it_was_evaluated(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder).resolve()
    written_before = json.loads(config.to_json())
    del written_before["augment_evaluation"]
    (tmp_path / "config.json").write_text(json.dumps(written_before))
    with pytest.raises(ConfigError, match="augment_evaluation: False there, True now"):
        RunFiles(str(tmp_path)).check(config)
    RunFiles(str(tmp_path)).check(dataclasses.replace(config, augment_evaluation=False))


def test_the_flag_reaches_the_config_and_renames_only_the_runs_that_use_it():
    app = load_app("finetune")
    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune", "--noaugment_evaluation"])
    clean = app.config_from_flags()
    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune"])
    default = app.config_from_flags()
    assert (clean.augment_evaluation, default.augment_evaluation) == (False, True)
    assert "--noaugment_evaluation" in finetune_flags(clean)
    assert not any("augment_evaluation" in flag for flag in finetune_flags(default))


@pytest.mark.parametrize(
    "records, augmented",
    [
        ([domainbed_record(599, 0.6)], True),
        ([domainbed_record(599, 0.6, data_augmentation=False)], False),
        (authors_records(seed=0, lr=1e-3, level=0.6), True),
        ([{**record, "args": {**record["args"], "outsplit_noaug": 1}}
          for record in authors_records(seed=0, lr=1e-3, level=0.6)], False),
    ],
    ids=["domainbed", "domainbed_without_augmentation", "authors", "authors_outsplit_noaug"],
)
def test_pytorch_records_say_how_their_training_domains_were_evaluated(records, augmented):
    ours = domainbed_records.as_our_records(records)
    assert {record["hparams"]["augment_evaluation"] for record in ours} == {augmented}


def test_tables_keep_augmented_and_clean_evaluation_apart():
    setting = collect.Setting("vlcs", "resnet50", 224, 5000, augment_evaluation=True)
    assert setting.label.endswith("5000 steps, training domains evaluated with augmentation")
    clean = dataclasses.replace(setting, augment_evaluation=False)
    assert clean.label.endswith("training domains evaluated clean") and clean != setting
