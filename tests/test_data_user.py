"""A user's own data: a folder of domains or a CSV manifest, as a dataset."""

import csv
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_ldrop.data import (
    DatasetLayoutError,
    get_dataset,
    load_domains,
    resolve_dataset,
    user_dataset,
)
from keras_ldrop.data.user_data import dataset_contents, describe_changes
from tests.conftest import USER_CLASSES, USER_DOMAINS


def test_domains_and_classes_are_inferred_and_sorted(user_tree):
    (user_tree / ".ipynb_checkpoints").mkdir()
    (user_tree / "site_a" / ".DS_Store").write_bytes(b"\0")
    spec = user_dataset(user_tree)
    assert spec.domains == USER_DOMAINS
    assert spec.classes == USER_CLASSES  # the union: site_b has no fox
    assert spec.image_counts == (12, 8, 12)
    assert spec.location == str(user_tree) and spec.short_name == "my_domains"
    assert (spec.steps, spec.image_size, spec.rate, spec.learning_rates) == (
        10000, 224, 0.9, (1e-3, 5e-4)
    )
    assert not spec.is_offline


def test_load_domains_labels_by_class_name_across_domains(user_tree):
    domains = load_domains(str(user_tree))
    assert [domain.name for domain in domains] == list(USER_DOMAINS)
    for domain in domains:
        for path, label in zip(domain.paths, domain.labels):
            assert os.path.basename(os.path.dirname(path)) == USER_CLASSES[label]
    assert sorted(set(domains[1].labels.tolist())) == [0, 1]
    assert list(domains[0].labels) == sorted(domains[0].labels)


def test_a_manifest_gives_the_examples_of_the_same_folder(user_tree, tmp_path):
    folder_domains = load_domains(user_tree)
    manifest = tmp_path / "lists" / "data.csv"
    manifest.parent.mkdir()
    rows = [
        (os.path.relpath(path, manifest.parent), USER_CLASSES[label], domain.name)
        for domain in reversed(folder_domains)
        for path, label in zip(reversed(domain.paths), reversed(domain.labels))
    ]
    with open(manifest, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["domain", "path", "label", "notes"])
        writer.writerows((domain, path, label, "") for path, label, domain in rows)
    spec = user_dataset(manifest)
    assert (spec.domains, spec.classes, spec.kind) == (USER_DOMAINS, USER_CLASSES, "manifest")
    assert spec.short_name == "data"
    manifest_domains = load_domains(spec)
    for ours, theirs in zip(manifest_domains, folder_domains):
        assert ours.paths == theirs.paths
        np.testing.assert_array_equal(ours.labels, theirs.labels)


def test_unreadable_files_are_skipped_with_a_warning(user_tree):
    (user_tree / "site_a" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 junk")
    with pytest.warns(UserWarning, match="broken.jpg"):
        domains = load_domains(user_tree)
    assert len(domains[0]) == 12


def _make_bad_tree(tmp_path, case):
    root = tmp_path / "data"
    from tests.conftest import write_user_tree

    write_user_tree(root)
    if case == "image under root":
        Image.new("RGB", (4, 4)).save(root / "stray.png")
    elif case == "image under domain":
        Image.new("RGB", (4, 4)).save(root / "site_b" / "loose.jpg")
    elif case == "one domain":
        shutil.rmtree(root / "site_b")
        shutil.rmtree(root / "site_c")
    elif case == "empty domain":
        (root / "site_d" / "cat").mkdir(parents=True)
    elif case == "not a dataset":
        root = root / "site_a" / "cat" / "cat_0.jpg"
    return root


@pytest.mark.parametrize(
    "case, message",
    [
        ("image under root", "holds images directly (stray.png); expected"),
        ("image under domain", "site_b holds images outside a class folder (loose.jpg)"),
        ("one domain", "has 1 domain(s) ['site_a']; at least 2 are needed"),
        ("empty domain", "site_d is empty: it has no class folder holding files"),
        ("not a dataset", "is neither a folder of domains nor a .csv manifest"),
    ],
)
def test_bad_layouts_get_one_line_naming_the_problem_and_the_path(tmp_path, case, message):
    root = _make_bad_tree(tmp_path, case)
    with pytest.raises(DatasetLayoutError) as error:
        user_dataset(root)
    assert message in str(error.value)
    assert str(tmp_path) in str(error.value)
    assert "\n" not in str(error.value)


def test_one_domain_is_enough_to_evaluate(tmp_path):
    root = _make_bad_tree(tmp_path, "one domain")
    assert user_dataset(root, min_domains=1).domains == ("site_a",)


def _write_manifest(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    "header, rows, message",
    [
        (["path", "domain"], [], "lacks the column(s) label"),
        (["file", "class"], [], "lacks the column(s) path, label, domain"),
        (["path", "label", "domain"], [["missing.jpg", "cat", "a"]],
         "line 2: file"),
        (["path", "label", "domain"], [["site_a/cat/cat_0.jpg", "", "a"]],
         "line 2: empty label"),
        (["path", "label", "domain"], [], "has no rows"),
    ],
)
def test_bad_manifests_are_named(user_tree, header, rows, message):
    manifest = _write_manifest(user_tree / "list.csv", header, rows)
    with pytest.raises(DatasetLayoutError) as error:
        user_dataset(manifest)
    assert message in str(error.value)
    assert str(manifest) in str(error.value)


def test_resolve_takes_a_name_a_path_or_a_spec(user_tree):
    assert resolve_dataset("pacs") is get_dataset("pacs")
    spec = resolve_dataset(str(user_tree))
    assert resolve_dataset(spec) is spec
    with pytest.raises(ValueError, match="neither a registered name .*vlcs.* nor an existing"):
        resolve_dataset("/no/such/folder")


def test_changes_to_a_folder_are_described(user_tree):
    before = dataset_contents(user_dataset(user_tree))
    os.remove(user_tree / "site_a" / "cat" / "cat_0.jpg")
    (user_tree / "site_b" / "fox").mkdir()
    Image.new("RGB", (4, 4)).save(user_tree / "site_b" / "fox" / "new.png")
    now = dataset_contents(user_dataset(user_tree))
    assert describe_changes(before, now) == (
        "domain 'site_a' had 12 files, now 11; domain 'site_b' had 8 files, now 9"
    )
    assert describe_changes(before, before) == ""
