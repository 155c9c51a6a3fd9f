"""The fine-tuning protocol on a tiny DomainBed tree and a tiny preset folder."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from keras_ldrop.data import training_dataset
from keras_ldrop.training import ConfigError, FinetuneConfig, loop, train_and_evaluate

TIMING_KEYS = {"images_per_second"}


def tiny_config(data_dir, preset, **overrides):
    settings = dict(
        dataset="vlcs",
        data_dir=str(data_dir),
        backbone=preset,
        test_envs=(0,),
        image_size=32,
        batch_size=4,
        steps=6,
        checkpoint_freq=3,
        lr=0.01,
        average_start=3,
    )
    settings.update(overrides)
    return FinetuneConfig(**settings)


def without_timing(records):
    """Records less their timings and output folder, which differ between runs."""
    kept = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in TIMING_KEYS}
        record["args"] = {k: v for k, v in record["args"].items() if k != "output_dir"}
        kept.append(record)
    return kept


def read_records(folder):
    with open(os.path.join(folder, "results.jsonl")) as file:
        return [json.loads(line) for line in file]


def test_run_writes_domainbed_records_models_and_summary(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    output = tmp_path / "run"
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        summary = train_and_evaluate(
            tiny_config(tiny_vlcs_tree, tiny_preset_folder), output, log=lambda _: None
        )
    records = read_records(output)
    assert [r["step"] for r in records] == [3, 6]
    for record in records:
        for prefix in ("", "average_", "ensemble_"):
            for env in range(4):
                for part in ("in", "out"):
                    assert 0.0 <= record[f"{prefix}env{env}_{part}_acc"] <= 1.0
        assert record["args"]["dataset"] == "VLCS"  # DomainBed's class name
        assert record["args"]["keras_ldrop_dataset"] == "vlcs"
        assert record["args"]["test_envs"] == [0]
        assert record["args"]["algorithm"] == "LargeDropout(0.9)"
        assert record["args"]["hparams_seed"] == records[0]["args"]["hparams_seed"]
        assert record["hparams"]["rate"] == 0.9
        assert record["hparams"]["lr_drop_steps"] == [3]
        assert np.isfinite(record["loss"]) and record["epoch"] > 0
    assert [r["ensemble_members"] for r in records] == [1, 2]
    for name in ("config.json", "best.keras", "final.keras", "done", "summary.json"):
        assert (output / name).exists(), name
    final = keras.saving.load_model(output / "final.keras")
    assert final.get_layer("large_dropout").rate == 0.9
    assert summary["best"]["step"] in (3, 6)
    assert set(summary) >= {"best", "final", "weight_average", "trajectory_ensemble"}
    again = train_and_evaluate(
        tiny_config(tiny_vlcs_tree, tiny_preset_folder), output, log=lambda _: None
    )
    assert again == json.loads((output / "summary.json").read_text())


def test_weight_average_and_ensemble_differ_from_the_final_model(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    config = tiny_config(
        tiny_vlcs_tree, tiny_preset_folder, steps=4, checkpoint_freq=2,
        average_start=1, lr=0.05, rate=0.5,
    )
    train_and_evaluate(config, tmp_path, log=lambda _: None)
    final = keras.saving.load_model(tmp_path / "final.keras")
    checkpoint = np.load(tmp_path / "checkpoint.npz")
    paths = list(checkpoint["optimizer/paths"])
    kernel = final.get_layer("predictions").kernel
    average = checkpoint[f"optimizer/{paths.index('sgd/predictions_kernel_average')}"]
    assert not np.allclose(average, keras.ops.convert_to_numpy(kernel))


def stream_starts(monkeypatch):
    """The `start_step` of every training stream the loop builds, in order."""
    starts = []

    def recording(*args, start_step, **kwargs):
        starts.append(start_step)
        return training_dataset(*args, start_step=start_step, **kwargs)

    monkeypatch.setattr(loop, "training_dataset", recording)
    return starts


def test_one_stream_serves_the_whole_intervals_and_a_shorter_last_one_its_own(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, monkeypatch
):
    starts = stream_starts(monkeypatch)
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=5, checkpoint_freq=2)
    train_and_evaluate(config, tmp_path, log=lambda _: None)
    assert starts == [0, 4]
    records = read_records(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 5]
    assert all(r["images_per_second"] > 0 for r in records)


class Interrupted(Exception):
    pass


def test_resume_after_a_crash_gives_the_records_of_a_straight_run(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    config = tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=9)
    straight = tmp_path / "straight"
    train_and_evaluate(config, straight, log=lambda _: None)

    def crash_after_first_checkpoint(line):
        if line.startswith("step 3/"):
            raise Interrupted

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        train_and_evaluate(config, interrupted, log=crash_after_first_checkpoint)
    assert [r["step"] for r in read_records(interrupted)] == [3]
    lines = []
    train_and_evaluate(config, interrupted, log=lines.append)
    assert lines[0].startswith("Resumed from step 3")
    assert [r["step"] for r in read_records(straight)] == [3, 6, 9]
    assert without_timing(read_records(interrupted)) == without_timing(
        read_records(straight)
    )


def test_a_folder_with_other_settings_is_refused(tmp_path, tiny_vlcs_tree, tiny_preset_folder):
    (tmp_path / "config.json").write_text(
        tiny_config(tiny_vlcs_tree, tiny_preset_folder).resolve().to_json()
    )
    with pytest.raises(ConfigError, match="rate: 0.9 there, 0.5 now"):
        train_and_evaluate(
            tiny_config(tiny_vlcs_tree, tiny_preset_folder, rate=0.5), tmp_path
        )


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_start_leaves_nothing_and_the_corrected_run_starts(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder, existed
):
    from keras_ldrop.backbones import BackboneError
    from keras_ldrop.data import DatasetNotFoundError

    output = tmp_path / "run"
    if existed:
        output.mkdir()
    no_data = tmp_path / "no_data"
    no_data.mkdir()
    for config, error in (
        (tiny_config(no_data, tiny_preset_folder, dataset="pacs"), DatasetNotFoundError),
        (tiny_config(tiny_vlcs_tree, "/nonexistent/preset"), BackboneError),
    ):
        with pytest.raises(error):
            train_and_evaluate(config, output, log=lambda _: None)
        assert output.exists() == existed
        assert not existed or os.listdir(output) == []
    train_and_evaluate(
        tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=3), output,
        log=lambda _: None,
    )
    assert (output / "done").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rate": 1.0}, "--rate"),
        ({"steps": 0}, "--steps must be a positive integer; received 0"),
        ({"test_envs": (4,)}, "--test_env=4 is out of range: vlcs has 4 domains"),
        ({"test_envs": (0, 1, 2, 3)}, "leaves no training domain"),
        ({"precision": "float8"}, "received 'float8'"),
        ({"lr": -1.0}, "--lr must be a non-negative number; received -1.0"),
    ],
)
def test_invalid_settings_name_the_flag(overrides, message):
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig(dataset="vlcs", **overrides).resolve()


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="vlcs"):
        FinetuneConfig(dataset="imagenet").resolve()


def test_paper_defaults_per_dataset():
    vlcs = FinetuneConfig(dataset="vlcs").resolve()
    assert (vlcs.steps, vlcs.checkpoint_freq, vlcs.rate) == (10000, 300, 0.9)
    assert vlcs.lr_drop_steps() == (5000,)
    assert vlcs.backbone == "hf://timm/resnet50.tv2_in1k"
    assert vlcs.average_start == 300
    assert (vlcs.lr, vlcs.head_lr_multiplier) == (1e-3, 1.0)
    domain_net = FinetuneConfig(dataset="domain_net").resolve()
    assert domain_net.rate == 0.5 and domain_net.lr_drop_steps() == (15000, 25000)
    assert domain_net.average_start == 300
    short = FinetuneConfig(dataset="vlcs", steps=1000).resolve()
    assert short.lr_drop_steps() == (500,)
    offline = FinetuneConfig(dataset="vlcs_mini").resolve()
    assert offline.backbone == "efficientnet_lite0_imagenet_offline"
    assert (offline.lr, offline.head_lr_multiplier, offline.image_size) == (1e-4, 30.0, 96)


def user_config(user_tree, preset, **overrides):
    settings = dict(dataset=str(user_tree), test_envs=(2,), steps=3)
    settings.update(overrides)
    return dataclasses.replace(tiny_config(None, preset, **settings), data_dir=None)


def test_a_users_folder_trains_and_its_models_know_their_classes(
    tmp_path, user_tree, tiny_preset_folder
):
    import keras_ldrop
    from tests.conftest import USER_CLASSES

    output = tmp_path / "run"
    train_and_evaluate(user_config(user_tree, tiny_preset_folder), output, log=lambda _: None)
    written = json.loads((output / "config.json").read_text())
    assert written["dataset"] == str(user_tree)
    assert written["dataset_contents"] == {
        "path": str(user_tree), "format": "folder",
        "domains": ["site_a", "site_b", "site_c"], "classes": list(USER_CLASSES),
        "images": {"site_a": 12, "site_b": 8, "site_c": 12},
    }
    (record,) = read_records(output)
    assert record["args"]["dataset"] == str(user_tree)
    assert set(record) >= {f"env{i}_{part}_acc" for i in range(3) for part in ("in", "out")}
    for name in ("best", "final"):
        card = keras_ldrop.read_model_card(keras.saving.load_model(output / f"{name}.keras"))
        assert card["class_names"] == list(USER_CLASSES)
        assert card["domains"] == ["site_a", "site_b", "site_c"]
        assert (card["training_domains"], card["test_domains"]) == (
            ["site_a", "site_b"], ["site_c"]
        )
        assert card["image_size"] == 32
        assert card["settings"]["rate"] == 0.9 and card["settings"]["test_envs"] == [2]
        assert card["keras_ldrop_version"] == keras_ldrop.__version__


def test_resuming_on_a_changed_folder_is_refused_with_the_difference(
    tmp_path, user_tree, tiny_preset_folder
):
    (tmp_path / "config.json").write_text(
        user_config(user_tree, tiny_preset_folder).resolve().to_json()
    )
    os.remove(user_tree / "site_c" / "dog" / "dog_0.jpg")
    with pytest.raises(
        ConfigError, match="the dataset changed since the run started "
        r"\(domain 'site_c' had 12 files, now 11\)"
    ):
        train_and_evaluate(user_config(user_tree, tiny_preset_folder), tmp_path)


def test_a_users_data_takes_the_papers_defaults_and_no_data_dir(user_tree):
    config = FinetuneConfig(dataset=str(user_tree), test_envs=(1,)).resolve()
    assert (config.steps, config.image_size, config.lr, config.rate) == (10000, 224, 1e-3, 0.9)
    assert config.backbone == "hf://timm/resnet50.tv2_in1k"
    assert config.spec().classes == ("cat", "dog", "fox")
    assert FinetuneConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="--data_dir is for the registered datasets"):
        FinetuneConfig(dataset=str(user_tree), data_dir="/data").resolve()
    with pytest.raises(ConfigError, match="--test_env=3 is out of range: .* has 3 domains"):
        FinetuneConfig(dataset=str(user_tree), test_envs=(3,)).resolve()


def test_no_held_out_domain_trains_on_every_domain(tmp_path, user_tree, tiny_preset_folder):
    from keras_ldrop.training.records import progress_line

    config = user_config(user_tree, tiny_preset_folder, test_envs=())
    lines = []
    summary = train_and_evaluate(config, tmp_path, log=lines.append)
    (record,) = read_records(tmp_path)
    assert record["args"]["test_envs"] == []
    assert summary["best"]["test_acc"] is None
    assert summary["best"]["validation_acc"] == pytest.approx(
        np.mean([record[f"env{i}_out_acc"] for i in range(3)])
    )
    assert "test acc" not in lines[-1] and "train-domain val acc" in lines[-1]
    assert progress_line(record, config.resolve()) == lines[-1]
    card = keras_ldrop_card(tmp_path / "final.keras")
    assert card["training_domains"] == ["site_a", "site_b", "site_c"]
    assert card["test_domains"] == []


def keras_ldrop_card(path):
    import keras_ldrop

    return keras_ldrop.read_model_card(keras.saving.load_model(path))
