"""apps/finetune.py as a user runs it: flags, errors, a real kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from keras_ldrop.training import FinetuneConfig, train_and_evaluate
from tests.app_runner import load_app
from tests.test_training import read_records, tiny_config, without_timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "finetune.py")


@pytest.fixture(scope="module")
def app():
    module = load_app("finetune")
    yield module
    module.FLAGS.unparse_flags()


def run_main(app, *argv):
    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune", *argv])
    with pytest.raises(SystemExit) as exit_info:
        app.main(["finetune"])
    return str(exit_info.value.code)


def app_command(output_dir, data_dir, preset, steps):
    return [
        sys.executable, APP, "--dataset=vlcs", f"--data_dir={data_dir}",
        f"--backbone={preset}", "--test_env=0", "--image_size=32",
        "--batch_size=4", f"--steps={steps}", "--checkpoint_freq=3", "--lr=0.01",
        "--average_start=3", f"--output_dir={output_dir}",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset=imagenet"], "Unknown dataset 'imagenet'"),
        (["--test_env=7"], "--test_env=7 is out of range: vlcs_mini has 3 domains"),
        (["--rate=1.5"], "received rate=1.5"),
        (["--steps=0"], "--steps must be a positive integer; received 0"),
        (["--dataset=pacs", "--data_dir=/nonexistent"], "apps/download.py --dataset=pacs"),
        (["--backbone=resnet_50_imagenett"], "Did you mean 'resnet_50_imagenet'"),
        (["--backbone=/nonexistent/preset"], "is not a directory"),
    ],
)
def test_user_mistakes_exit_with_one_readable_line(app, tmp_path, argv, message):
    text = run_main(app, f"--output_dir={tmp_path}", *argv)
    assert text.startswith("finetune: error: ")
    assert message in text
    assert "\n" not in text


def test_the_binary_exits_nonzero_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, APP, "--rate=-0.5", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("finetune: error: --rate")


def test_no_flags_mean_the_offline_default(app):
    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune"])
    config = app.config_from_flags()
    assert config == FinetuneConfig().resolve()
    assert (config.dataset, config.backbone) == (
        "vlcs_mini", "efficientnet_lite0_imagenet_offline"
    )
    assert app.default_output_dir(config).startswith(os.path.join("runs", "vlcs_mini-"))


def test_sigkill_then_same_command_ends_with_the_records_of_a_straight_run(
    tmp_path, tiny_vlcs_tree, tiny_preset_folder
):
    straight = tmp_path / "straight"
    train_and_evaluate(
        tiny_config(tiny_vlcs_tree, tiny_preset_folder, steps=12), straight,
        log=lambda _: None,
    )
    killed = tmp_path / "killed"
    command = app_command(killed, tiny_vlcs_tree, tiny_preset_folder, steps=12)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    results = killed / "results.jsonl"
    while time.time() < deadline and process.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "done").exists()
    assert 1 <= len(read_records(killed)) < 4
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed from step" in resumed.stdout
    assert "Compiling the training step" in resumed.stdout
    assert (killed / "done").exists()
    assert without_timing(read_records(killed)) == without_timing(read_records(straight))
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["best"] == json.loads((straight / "summary.json").read_text())["best"]


def test_a_users_folder_is_a_dataset_and_its_mistakes_are_one_line(app, tmp_path, user_tree):
    from PIL import Image

    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune", f"--dataset={user_tree}", "--test_env=1"])
    config = app.config_from_flags()
    assert config.dataset == str(user_tree) and config.spec().classes == ("cat", "dog", "fox")
    assert app.default_output_dir(config).startswith(os.path.join("runs", "my_domains-"))
    text = run_main(app, f"--output_dir={tmp_path}", f"--dataset={user_tree}",
                    "--data_dir=/data")
    assert text.startswith("finetune: error: --data_dir is for the registered datasets")
    Image.new("RGB", (4, 4)).save(user_tree / "site_a" / "loose.jpg")
    text = run_main(app, f"--output_dir={tmp_path}", f"--dataset={user_tree}")
    assert text.startswith("finetune: error: Domain folder ")
    assert "site_a holds images outside a class folder (loose.jpg)" in text
    assert "\n" not in text


def test_test_env_none_trains_on_every_domain(app, tmp_path, user_tree):
    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune", f"--dataset={user_tree}", "--test_env=none"])
    assert app.config_from_flags().test_envs == ()
    for values in (["none", "1"], ["first"]):
        text = run_main(app, f"--output_dir={tmp_path}", *[f"--test_env={v}" for v in values])
        assert text.startswith("finetune: error: --test_env takes domain indices")


def test_a_failed_start_does_not_claim_the_folder(
    app, tmp_path, tiny_preset_folder
):
    output = tmp_path / "run"
    no_data = tmp_path / "no_data"
    no_data.mkdir()
    text = run_main(app, f"--output_dir={output}", "--dataset=pacs", f"--data_dir={no_data}")
    assert "apps/download.py --dataset=pacs" in text
    assert not output.exists()
    tiny = [
        f"--backbone={tiny_preset_folder}", "--image_size=32", "--batch_size=4",
        "--steps=3", "--checkpoint_freq=3", "--average_start=3",
    ]
    app.FLAGS.unparse_flags()
    app.FLAGS(["finetune", f"--output_dir={output}", "--dataset=vlcs_mini", *tiny])
    app.main(["finetune"])
    assert (output / "done").exists()
    config = (output / "config.json").read_text()
    text = run_main(app, f"--output_dir={output}", "--dataset=vlcs_mini", *tiny, "--steps=-5")
    assert text == "finetune: error: --steps must be a positive integer; received -5."
    assert (output / "config.json").read_text() == config
