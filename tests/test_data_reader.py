import io

import numpy as np
import pytest
from PIL import Image

from keras_ldrop.data import (
    DatasetNotFoundError,
    SkippedFilesWarning,
    evaluation_dataset,
    get_dataset,
    load_domains,
    training_dataset,
)
from keras_ldrop.data.image_check import check_image_file

PACS = get_dataset("pacs")


def _picture(mode="RGB", size=(24, 24), seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[:, : size[0] // 2] = (200, 40, 90)
    return Image.fromarray(pixels).convert(mode)


def _jpeg_bytes(mode="RGB"):
    stream = io.BytesIO()
    _picture(mode).save(stream, "JPEG", quality=95)
    return stream.getvalue()


def _write_pacs_tree(data_dir, per_class=2):
    for d, domain in enumerate(PACS.domains):
        for c, name in enumerate(PACS.classes[:3]):
            folder = data_dir / "PACS" / domain / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                _picture(seed=100 * d + 10 * c + i).save(folder / f"{i}.jpg")
    return data_dir / "PACS"


@pytest.fixture
def messy_tree(tmp_path):
    """A PACS tree whose photo/dog folder holds every kind of good and bad file."""
    root = _write_pacs_tree(tmp_path)
    dog = root / "photo" / "dog"
    _picture("L").save(dog / "gray.png")
    _picture("RGBA").save(dog / "rgba.png")
    _picture("CMYK").save(dog / "cmyk.jpg", quality=95)
    _picture("P").save(dog / "palette.gif")
    good = _jpeg_bytes()
    (dog / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (dog / "corrupt.jpg").write_bytes(np.random.default_rng(1).bytes(500))
    (dog / "broken_header.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 300 + b"\xff\xd9")
    (dog / "notes.txt").write_text("not an image")
    (root / "photo" / "README").write_text("stray file")
    return tmp_path


def test_bad_files_are_skipped_with_one_warning_naming_each(messy_tree):
    with pytest.warns(SkippedFilesWarning) as caught:
        domains = load_domains("pacs", messy_tree)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "Skipped 5 files" in message
    for name in ("truncated.jpg", "corrupt.jpg", "broken_header.jpg", "notes.txt", "README"):
        assert name in message
    assert "truncated JPEG" in message
    photo = domains[PACS.domains.index("photo")]
    kept = {path.rsplit("/", 1)[-1] for path in photo.paths}
    assert {"gray.png", "rgba.png", "cmyk.jpg", "palette.gif", "0.jpg"} <= kept
    assert not kept & {"truncated.jpg", "corrupt.jpg", "notes.txt"}


def test_every_kept_format_decodes_to_rgb(messy_tree):
    with pytest.warns(SkippedFilesWarning):
        photo = load_domains("pacs", messy_tree)[PACS.domains.index("photo")]
    images = np.concatenate([batch for batch, _ in evaluation_dataset(photo, 24, 4)])
    assert images.shape == (len(photo), 24, 24, 3)
    assert images.dtype == np.float32
    by_name = dict(zip((path.rsplit("/", 1)[-1] for path in photo.paths), images))
    gray = by_name["gray.png"]
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-3)
    reference = np.asarray(_picture("CMYK").convert("RGB"), np.float32)
    assert np.abs(by_name["cmyk.jpg"] - reference).mean() < 8
    rgba_reference = np.asarray(_picture("RGBA").convert("RGB"), np.float32)
    np.testing.assert_allclose(by_name["rgba.png"], rgba_reference, atol=1e-3)


def test_training_stream_decodes_every_kept_format(messy_tree):
    with pytest.warns(SkippedFilesWarning):
        photo = load_domains("pacs", messy_tree)[PACS.domains.index("photo")]
    odd_names = {"gray.png", "rgba.png", "cmyk.jpg", "palette.gif"}
    odd = photo.subset(
        [i for i, path in enumerate(photo.paths) if path.rsplit("/", 1)[-1] in odd_names]
    )
    assert len(odd) == 4
    images, _ = next(iter(training_dataset([odd], 32, 16, seed=0)))
    assert images.shape == (32, 16, 16, 3)
    assert np.isfinite(images.numpy()).all()


def test_examples_are_in_class_then_path_order(tmp_path):
    _write_pacs_tree(tmp_path, per_class=3)
    art = load_domains("pacs", tmp_path)[0]
    assert list(art.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [path.rsplit("/", 2)[-2:] for path in art.paths[:3]] == [
        ["dog", "0.jpg"],
        ["dog", "1.jpg"],
        ["dog", "2.jpg"],
    ]


def test_unknown_class_folder_is_reported(tmp_path):
    root = _write_pacs_tree(tmp_path)
    (root / "sketch" / "unicorn").mkdir()
    _picture().save(root / "sketch" / "unicorn" / "x.jpg")
    with pytest.warns(SkippedFilesWarning, match="'unicorn' is not a class of 'pacs'"):
        load_domains("pacs", tmp_path)


def test_missing_dataset_says_where_it_looked_and_how_to_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_domains("pacs", tmp_path)
    message = str(raised.value)
    assert str(tmp_path / "PACS") in message
    assert f"python apps/download.py --dataset=pacs --data_dir={tmp_path}" in message


def test_missing_domain_says_where_it_looked(tmp_path):
    root = _write_pacs_tree(tmp_path)
    for path in sorted((root / "sketch").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (root / "sketch").rmdir()
    with pytest.raises(DatasetNotFoundError, match="'sketch'.*PACS/sketch.*download.py"):
        load_domains("pacs", tmp_path)


def test_downloaded_dataset_without_data_dir_is_an_error():
    with pytest.raises(DatasetNotFoundError, match="--dataset=vlcs"):
        load_domains("vlcs")


def test_pacs_mini_loads_offline():
    domains = load_domains("pacs_mini")
    assert [domain.name for domain in domains] == list(PACS.domains)
    assert sum(len(domain) for domain in domains) == 40
    assert all(0 <= label < 7 for domain in domains for label in domain.labels)


def test_vlcs_mini_maps_its_renamed_class_folders():
    domains = {domain.name: domain for domain in load_domains("vlcs_mini")}
    assert sum(len(domain) for domain in domains.values()) == 187
    classes = get_dataset("vlcs_mini").classes
    counts = {
        name: dict(zip(classes, np.bincount(domain.labels, minlength=5)))
        for name, domain in domains.items()
    }
    assert counts["caltech"]["car"] == 20  # folder "auto"
    assert counts["labelme"]["bird"] == 50
    assert counts["labelme"]["person"] == 0  # labelme has no person folder
    assert counts["sun"]["person"] == 15  # folder "sapiens"


def test_check_image_file_accepts_bmp_and_rejects_palette_bmp(tmp_path):
    _picture().save(tmp_path / "rgb.bmp")
    _picture("P").save(tmp_path / "palette.bmp")
    assert check_image_file(tmp_path / "rgb.bmp") is None
    assert "palette BMP" in check_image_file(tmp_path / "palette.bmp")
