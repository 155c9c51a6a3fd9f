"""apps/copy_domains.py: real offline images laid out as a user's own data."""

import os
import subprocess
import sys

import pytest

from keras_ldrop.data import load_domains, user_dataset
from keras_ldrop.data.copy_domains import copy_domains

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "apps", "copy_domains.py")


def test_copies_named_class_folders_that_read_back_as_the_same_examples(tmp_path):
    root = copy_domains("vlcs_mini", tmp_path / "mine", domains=["caltech", "labelme"])
    spec = user_dataset(root)
    assert spec.domains == ("caltech", "labelme")
    assert spec.classes == ("bird", "car", "chair", "dog", "person")
    original = {d.name: d for d in load_domains("vlcs_mini")}
    for copied in load_domains(spec):
        source = original[copied.name]
        assert sorted(copied.labels.tolist()) == sorted(source.labels.tolist())
        assert sorted(map(os.path.basename, copied.paths)) == sorted(
            map(os.path.basename, source.paths)
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": "vlcs_mini", "domains": ["moon"]}, "Unknown domain(s) ['moon']"),
        ({"dataset": "rotated_mnist"}, "not made of image files"),
        ({"dataset": "imagenet"}, "Unknown dataset 'imagenet'"),
    ],
)
def test_bad_requests_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as error:
        copy_domains(output_dir=tmp_path, **kwargs)
    assert message in str(error.value)


def test_the_app_writes_a_domain_once_and_refuses_to_overwrite_it(tmp_path):
    command = [sys.executable, APP, "--domains=sun", f"--output_dir={tmp_path}"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"{tmp_path}/sun: 55 images bird 8, car 9, chair 4, dog 19, person 15" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1
    last = again.stderr.strip().splitlines()[-1]
    assert last == (
        f"copy_domains: error: {tmp_path} already holds the domain folder(s) ['sun']; "
        "choose another output folder or remove them."
    )
    assert "Traceback" not in again.stderr
