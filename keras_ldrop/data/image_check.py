"""A cheap scan-time check that a file is an image the pipeline can decode.

The pipelines decode with TensorFlow's JPEG, PNG, GIF, BMP and WebP decoders.
Every file is checked once when the dataset is scanned, so that a file that
plainly cannot be decoded is skipped and reported rather than sampled: its
leading bytes must name one of those formats, its header must parse (Pillow
reads only the header), its end must be present (JPEG end-of-image marker,
PNG `IEND` chunk, GIF trailer, the sizes written in BMP and WebP headers),
and it must not be a palette BMP, which TensorFlow decodes without its
palette. This reads a few hundred bytes per file; it does not decode the
pixels, so a file whose compressed data is damaged passes it. Such a file
cannot stop a pipeline either: it decodes to a gray image, with a warning
naming it (`safe_decode`).
"""

import concurrent.futures
import os
import struct

from PIL import Image

_HEAD_BYTES = 32
_TAIL_BYTES = 1024


def _image_format(head):
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _missing_end(image_format, head, tail, size):
    """Returns why the file looks cut short, or `None`."""
    if image_format == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if image_format == "PNG" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    if image_format == "GIF" and not tail.rstrip(b"\x00").endswith(b";"):
        return "truncated GIF (no trailer byte)"
    if image_format == "BMP" and struct.unpack("<I", head[2:6])[0] > size:
        return "truncated BMP (shorter than its header says)"
    if image_format == "WEBP" and struct.unpack("<I", head[4:8])[0] + 8 > size:
        return "truncated WebP (shorter than its header says)"
    return None


def check_image_file(path):
    """Returns why `path` cannot be decoded by the pipeline, or `None` if it can.

    Args:
        path: a file path.

    Returns:
        `None` for a readable JPEG, PNG, GIF, BMP or WebP file (any colour
        mode: grayscale, RGB, RGBA, CMYK, palette); otherwise a short reason,
        e.g. `"truncated JPEG (no end-of-image marker)"`.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEAD_BYTES)
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - _TAIL_BYTES))
            tail = stream.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    image_format = _image_format(head)
    if image_format is None:
        return "not an image (its first bytes are not JPEG, PNG, GIF, BMP or WebP)"
    missing_end = _missing_end(image_format, head, tail, size)
    if missing_end:
        return missing_end
    try:
        with Image.open(path) as image:
            mode = image.mode
            width, height = image.size
    except Image.DecompressionBombError as error:
        return f"too large to decode safely ({error})"
    except (OSError, SyntaxError, ValueError) as error:
        return f"corrupt {image_format} header ({error})"
    if width < 1 or height < 1:
        return f"empty {image_format} image ({width}x{height})"
    if image_format == "BMP" and mode == "P":
        return "palette BMP (TensorFlow decodes BMP without its palette); convert it to PNG"
    return None


def check_image_files(paths):
    """`check_image_file` of every path, on a thread pool; reasons in the order of `paths`.

    Each check reads a few hundred bytes, so threads hide the file system's latency.
    """
    workers = min(32, 4 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(check_image_file, paths))
