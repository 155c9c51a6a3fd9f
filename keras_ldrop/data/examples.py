"""The examples of one domain: image files (in a folder or in prepared shards) or in-memory images, with labels.

Example:

>>> import numpy as np
>>> from keras_ldrop.data.examples import DomainExamples
>>> domain = DomainExamples("photo", labels=[0, 1], paths=["a.jpg", "b.png"])
>>> len(domain), domain.subset([1]).paths
(2, ('b.png',))
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class DomainExamples:
    """One domain's examples, in a fixed order.

    Exactly one of `paths` and `images` is given. With `records`, the files
    are read from a prepared dataset's shards (`keras_ldrop.data.prepared`)
    at `rows`, and `paths` only names them.

    Attributes:
        name: the domain's name.
        labels: int32 class indices, one per example.
        paths: image file paths (the photo datasets), or `None`.
        images: uint8 RGB images `[N, H, W, 3]` (the MNIST family), or `None`.
        records: the `RecordSource` holding the files' bytes, or `None` (the
            files are read from `paths`).
        rows: with `records`, each example's int64 row in it.
    """

    name: str
    labels: np.ndarray
    paths: tuple[str, ...] | None = None
    images: np.ndarray | None = None
    records: object | None = None
    rows: np.ndarray | None = None

    def __post_init__(self):
        labels = np.asarray(self.labels, dtype=np.int32)
        if labels.ndim != 1:
            raise ValueError(
                f"Domain {self.name!r}: labels must be one-dimensional, "
                f"received shape {labels.shape}."
            )
        object.__setattr__(self, "labels", labels)
        if (self.paths is None) == (self.images is None):
            raise ValueError(
                f"Domain {self.name!r}: give exactly one of `paths` and `images`."
            )
        if self.paths is not None:
            object.__setattr__(self, "paths", tuple(str(path) for path in self.paths))
            count = len(self.paths)
        else:
            images = np.asarray(self.images)
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
                raise ValueError(
                    f"Domain {self.name!r}: images must be uint8 [N, H, W, 3], "
                    f"received {images.dtype} {images.shape}."
                )
            object.__setattr__(self, "images", images)
            count = len(images)
        if count != len(labels):
            raise ValueError(
                f"Domain {self.name!r}: {count} examples but {len(labels)} labels."
            )
        if (self.records is None) != (self.rows is None) or (
            self.records is not None and self.paths is None
        ):
            raise ValueError(
                f"Domain {self.name!r}: `records` and `rows` go together, with `paths`."
            )
        if self.rows is not None:
            rows = np.asarray(self.rows, dtype=np.int64)
            if rows.shape != labels.shape:
                raise ValueError(
                    f"Domain {self.name!r}: {len(labels)} labels but rows of shape {rows.shape}."
                )
            object.__setattr__(self, "rows", rows)

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        """Returns the examples at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.paths is not None:
            return DomainExamples(
                self.name,
                self.labels[indices],
                paths=[self.paths[i] for i in indices],
                records=self.records,
                rows=None if self.rows is None else self.rows[indices],
            )
        return DomainExamples(self.name, self.labels[indices], images=self.images[indices])
