"""keras_ldrop.inference.export and apps/export.py: artefacts checked on real images.

The formats each backend can write are measured facts (see the module's
docstring): SavedModel under TensorFlow and JAX, ONNX under TensorFlow and
torch. The others must fail with one line naming a backend that can.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ldrop
from keras_ldrop.data import DomainExamples, evaluation_dataset, load_domains
from keras_ldrop.inference import export as export_module
from keras_ldrop.inference.classify import load_classifier
from keras_ldrop.inference.export import (
    CARD_FILE,
    ExportError,
    export_classifier,
    read_export_card,
    run_artefact,
)
from keras_ldrop.model_card import MissingModelCardError
from keras_ldrop.training import cpu_convolution
from tests.app_runner import load_app, run_app
from tests.conftest import _tiny_keras_hub_resnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "export.py")
BACKEND = keras.backend.backend()
WORKS = {"saved_model": BACKEND in ("tensorflow", "jax"), "onnx": BACKEND in ("tensorflow", "torch")}
WORKING_FORMAT = "saved_model" if WORKS["saved_model"] else "onnx"
# How each failure shows itself: jax2onnx writes a file onnxruntime rejects; torch.export raises.
FAILURES = {"onnx": "(the artefact cannot be run: ", "saved_model": "(the export raised "}
CLASS_NAMES = ["bird", "car", "chair", "dog", "person"]
IMAGE_SIZE = 32


@pytest.fixture(scope="module", autouse=True)
def keras_own_functions():
    """As apps/export.py runs, whatever earlier tests left on (under JAX, `use_where_faster()`'s
    max pooling as strided windows is one that jax2onnx converts into a file that runs)."""
    cpu_convolution.use_keras_own()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = keras_ldrop.build_classifier(
        _tiny_keras_hub_resnet(), len(CLASS_NAMES), 0.9, image_size=IMAGE_SIZE,
        class_names=CLASS_NAMES, card={"dataset": "vlcs_mini", "test_envs": [0]},
    )
    path = tmp_path_factory.mktemp("run") / "best.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def model(model_file):
    return load_classifier(model_file)[0]


@pytest.fixture(scope="module")
def images():
    """Three real photos from each VLCS mini domain, as the model sees them."""
    batches = []
    for domain in load_domains("vlcs_mini"):
        few = DomainExamples(domain.name, domain.labels[:3], paths=domain.paths[:3])
        batches += [batch.numpy() for batch, _ in evaluation_dataset(few, IMAGE_SIZE)]
    return np.concatenate(batches)


@pytest.fixture(scope="module")
def logits(model, images):
    return model.predict(images, verbose=0)


@pytest.fixture(scope="module")
def app():
    module = load_app("export")
    yield module
    module.FLAGS.unparse_flags()


def run_main(app, *argv):
    return run_app(app, "export", *argv)


def expected_outputs(logits, outputs):
    if outputs == "logits":
        return logits
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def check_outputs(got, logits, outputs):
    assert got.shape == (len(logits), len(CLASS_NAMES))
    np.testing.assert_allclose(got, expected_outputs(logits, outputs), rtol=0, atol=1e-4)
    if outputs == "probabilities":
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(not WORKS["saved_model"], reason=f"no SavedModel under {BACKEND}")
@pytest.mark.parametrize("outputs", ["probabilities", "logits"])
def test_saved_model_matches_keras_on_real_images(model, images, logits, tmp_path, outputs):
    import tensorflow as tf

    path = str(tmp_path / "classifier")
    exported = export_classifier(model, path, "saved_model", outputs, verify_images=images)
    assert exported.max_difference <= 1e-4
    assert exported.checked_images == len(images) == 9

    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    assert set(serve.structured_input_signature[1]) == {"pixels"}
    assert serve.structured_input_signature[1]["pixels"].shape.as_list() == [None, 32, 32, 3]
    assert set(serve.structured_outputs) == {outputs}
    check_outputs(serve(pixels=tf.constant(images))[outputs].numpy(), logits, outputs)

    with open(os.path.join(path, CARD_FILE)) as file:
        stored = json.load(file)
    assert stored["class_names"] == CLASS_NAMES
    assert stored["model_card"]["dataset"] == "vlcs_mini"
    assert stored["outputs"] == outputs
    assert read_export_card(path) == stored


@pytest.mark.skipif(not WORKS["onnx"], reason=f"no ONNX under {BACKEND}")
@pytest.mark.parametrize("outputs", ["probabilities", "logits"])
def test_onnx_matches_keras_on_real_images(model, images, logits, tmp_path, outputs):
    import onnx
    import onnxruntime

    path = str(tmp_path / "classifier.onnx")
    exported = export_classifier(model, path, "onnx", outputs, verify_images=images)
    assert exported.max_difference <= 1e-4

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inputs,) = session.get_inputs()
    assert (inputs.name, inputs.shape[1:], inputs.type) == ("pixels", [32, 32, 3], "tensor(float)")
    assert [output.name for output in session.get_outputs()] == [outputs]
    check_outputs(session.run(None, {"pixels": images})[0], logits, outputs)
    check_outputs(session.run(None, {"pixels": images[:1]})[0], logits[:1], outputs)

    metadata = {entry.key: entry.value for entry in onnx.load(path).metadata_props}
    assert json.loads(metadata["class_names"]) == CLASS_NAMES
    assert json.loads(metadata["model_card"])["test_envs"] == [0]
    assert metadata["outputs"] == outputs
    assert read_export_card(path)["class_names"] == CLASS_NAMES


@pytest.mark.parametrize("format", ["saved_model", "onnx"])
def test_a_backend_that_cannot_export_names_one_that_can(model, tmp_path, format):
    if WORKS[format]:
        pytest.skip(f"{format} works under {BACKEND}")
    with pytest.raises(ExportError) as error:
        export_classifier(model, tmp_path / "classifier", format)
    message = str(error.value)
    assert message.startswith(f"{'ONNX' if format == 'onnx' else 'SavedModel'} export under the {BACKEND} backend failed {FAILURES[format]}")
    assert "run it with KERAS_BACKEND=tensorflow" in message
    assert "\n" not in message
    assert os.listdir(tmp_path) == []


def test_an_artefact_that_differs_from_the_model_is_refused(model, tmp_path, monkeypatch):
    real_runner = export_module._runner

    def shifted_runner(path):
        run = real_runner(path)
        return lambda images: run(images) + 0.01

    monkeypatch.setattr(export_module, "_runner", shifted_runner)
    with pytest.raises(ExportError, match=r"probabilities differ from the Keras model's by 0\.01"):
        export_classifier(model, tmp_path / "classifier", WORKING_FORMAT)
    assert os.listdir(tmp_path) == []


def test_wrong_requests_fail_before_anything_is_written(model, tmp_path):
    with pytest.raises(ValueError, match=r"format must be one of \['saved_model', 'onnx'\]; received 'tflite'"):
        export_classifier(model, tmp_path / "a", "tflite")
    with pytest.raises(ValueError, match="outputs must be one of .*; received 'scores'"):
        export_classifier(model, tmp_path / "a", outputs="scores")
    with pytest.raises(ValueError, match=r"shape \(N, 32, 32, 3\) with N >= 1; received shape \(2, 64, 64, 3\)"):
        export_classifier(model, tmp_path / "a", verify_images=np.zeros((2, 64, 64, 3)))
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken exists"):
        export_classifier(model, tmp_path / "taken")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(MissingModelCardError):
        export_classifier(plain, tmp_path / "b")
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    with pytest.raises(ExportError, match="cannot be run"):
        run_artefact(str(tmp_path / "taken"), np.zeros((1, 32, 32, 3)))


def test_the_app_exports_checks_and_overwrites(app, model_file, tmp_path, capsys):
    output = str(tmp_path / ("classifier" if WORKING_FORMAT == "saved_model" else "classifier.onnx"))
    argv = [f"--model={model_file}", f"--format={WORKING_FORMAT}", f"--output={output}"]
    assert run_main(app, *argv) is None
    printed = capsys.readouterr().out
    assert f"Wrote {WORKING_FORMAT}: {output}" in printed
    assert "input:  pixels float32 (batch, 32, 32, 3), RGB in [0, 255]" in printed
    assert "output: probabilities float32 (batch, 5)" in printed
    assert "class names: 5" in printed
    assert "checked on 4 images: max |artefact - Keras| = " in printed
    assert run_main(app, *argv).startswith("export: error: ")
    assert run_main(app, *argv, "--outputs=logits", "--overwrite") is None
    assert read_export_card(output)["outputs"] == "logits"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model=/nonexistent/best.keras"], "Model file /nonexistent/best.keras does not exist."),
        (["--format=tflite"], "--format must be one of saved_model, onnx; received 'tflite'."),
        (["--outputs=scores"], "--outputs must be one of probabilities, logits; received 'scores'."),
        (["--output={tmp}/existing"], "existing exists; pass --overwrite to replace it."),
        (["--model={tmp}/plain.keras"], "does not carry its class names"),
        (["--output="], "give --model, a .keras classifier, and --output"),
    ],
)
def test_user_mistakes_exit_with_one_readable_line(app, model_file, tmp_path, argv, message):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    (tmp_path / "existing").mkdir()
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    text = run_main(app, f"--model={model_file}", f"--output={tmp_path / 'out'}", *argv)
    assert text.startswith("export: error: ")
    assert message in text
    assert "\n" not in text
    assert not os.path.exists(tmp_path / "out")


def test_the_app_names_a_backend_for_a_format_this_one_cannot_write(app, model_file, tmp_path):
    if all(WORKS.values()):
        pytest.skip(f"every format works under {BACKEND}")
    format = "onnx" if WORKS["saved_model"] else "saved_model"
    text = run_main(app, f"--model={model_file}", f"--format={format}", f"--output={tmp_path / 'out'}")
    assert text.startswith(f"export: error: {'ONNX' if format == 'onnx' else 'SavedModel'} export under the {BACKEND} backend failed")
    assert "KERAS_BACKEND=tensorflow" in text
    assert "\n" not in text


def test_the_binary_exits_nonzero_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, APP, f"--model={tmp_path / 'missing.keras'}", f"--output={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("export: error: Model file ")


def test_onnx_works_on_every_backend_for_a_model_without_max_pooling(tiny_conv_backbone, images, tmp_path):
    # The jax failure above is jax2onnx's max pooling, detected by running the file, not a refusal.
    model = keras_ldrop.build_classifier(tiny_conv_backbone, 5, 0.9, image_size=IMAGE_SIZE, class_names=CLASS_NAMES)
    exported = export_classifier(model, tmp_path / "conv.onnx", "onnx", "logits", verify_images=images)
    check_outputs(run_artefact(exported.path, images), model.predict(images, verbose=0), "logits")
