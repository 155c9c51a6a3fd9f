"""tf.data pipelines: the endless multi-domain training stream and evaluation sets.

Both pipelines output images as float32 RGB, channels last, with values in
[0, 255], NOT normalised (the model applies its backbone's own scaling), and
int32 labels. They feed `model.fit` / `model.evaluate` on every Keras backend.

Training step `k` takes `batch_size` examples from EACH training domain,
drawn uniformly with replacement, and concatenates them domain after domain:
rows `[i * batch_size, (i + 1) * batch_size)` come from `domains[i]`. Every
random choice of step `k` (which examples, every augmentation draw) is a
stateless function of `(seed, k)`, so the stream is the same on every run and
starting at `start_step=k` yields exactly the batches an uninterrupted stream
yields from step `k`, at no cost.

JPEG files are decoded only inside the sampled crop (with the accurate
integer IDCT, as Pillow decodes them), and at a reduced DCT scale (1/2, 1/4,
1/8) when the crop stays at least twice `image_size` at that scale; other
formats are decoded whole. Images are shrunk by area averaging (within about
1/255 of Pillow's antialiased bilinear resize, and several times faster in
TensorFlow) and enlarged by bilinear interpolation. The colour steps run as
one XLA-compiled function per image. Examples are decoded and augmented in
parallel on a private thread pool, and batches are prefetched.

A file that fails to decode (e.g. a JPEG whose compressed data is damaged,
which the scan-time check cannot see) stops neither pipeline: each of its
rows becomes a uniform gray image with its label, and an
`UndecodableImageWarning` names the file once (see `safe_decode`). Every
other row is what it would be without that file.

Example:

>>> from keras_ldrop.data import load_domains, training_dataset
>>> domains = load_domains("pacs_mini")[:3]
>>> images, labels = next(iter(training_dataset(domains, 4, 64, seed=0)))
>>> images.shape, images.dtype.name, labels.dtype.name
(TensorShape([12, 64, 64, 3]), 'float32', 'int32')
"""

import os

import numpy as np
import tensorflow as tf

from keras_ldrop.data.augment import (
    augment_colors,
    random_resized_crop_box,
    sample_color_parameters,
    sub_key,
)
from keras_ldrop.data.safe_decode import gray_images, load_batches

_DCT_SCALES = (1, 2, 4, 8)
# A DCT-scaled decode must stay this many times larger than the output.
_MARGIN_OVER_TARGET = 2
_IDCT = "INTEGER_ACCURATE"


def _dct_scale_index(height, width, target):
    """Index in `_DCT_SCALES` of the coarsest scale that keeps the margin over target."""
    index = tf.constant(0)
    for i, scale in enumerate(_DCT_SCALES[1:], start=1):
        smallest = scale * _MARGIN_OVER_TARGET * target
        index = tf.where((height >= smallest) & (width >= smallest), i, index)
    return index


def _decode_jpeg_window(contents, top, left, height, width, target):
    """Decodes a window of a JPEG, at a DCT scale chosen by `_dct_scale_index`."""
    index = _dct_scale_index(height, width, target)

    def decode_at(scale):
        window = tf.stack([top, left, height, width]) // scale
        return tf.io.decode_and_crop_jpeg(
            contents, window, channels=3, ratio=scale, dct_method=_IDCT
        )

    return tf.switch_case(
        index, [lambda scale=scale: decode_at(scale) for scale in _DCT_SCALES]
    )


def _decode_whole_jpeg(contents, target):
    shape = tf.io.extract_jpeg_shape(contents)
    index = _dct_scale_index(shape[0], shape[1], target)
    return tf.switch_case(
        index,
        [
            lambda scale=scale: tf.io.decode_jpeg(
                contents, channels=3, ratio=scale, dct_method=_IDCT
            )
            for scale in _DCT_SCALES
        ],
    )


def _decode_any(contents):
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resize(image, image_size):
    """Resizes to a square as Pillow's bilinear resize does, by the fastest equivalent.

    Shrinking both sides uses area averaging (within about 1/255 of
    Pillow's); enlarging both sides, plain bilinear interpolation (which
    antialiasing does not change); anything else, antialiased bilinear.
    """
    shape = tf.shape(image)
    size = [image_size, image_size]
    return tf.case(
        [
            (
                (shape[0] >= image_size) & (shape[1] >= image_size),
                lambda: tf.image.resize(image, size, method="area"),
            ),
            (
                (shape[0] <= image_size) & (shape[1] <= image_size),
                lambda: tf.image.resize(image, size),
            ),
        ],
        default=lambda: tf.image.resize(image, size, antialias=True),
    )


def decode_resized(contents, image_size):
    """The evaluation transform of a file's bytes: decode, resize to a square.

    What `evaluation_dataset` applies to every file, for pipelines of
    their own (e.g. `keras_ldrop.inference`): float32 RGB in [0, 255].

    Args:
        contents: a scalar string tensor, the file's bytes.
        image_size: the side of the square output.
    """
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: _decode_whole_jpeg(contents, image_size),
        lambda: _decode_any(contents),
    )
    return _resize(image, image_size)


def _crop(image, box):
    top, left, height, width = box
    return image[top : top + height, left : left + width]


def _decode_random_crop(contents, key, image_size):
    """RandomResizedCrop of a file, decoding only the crop when it is a JPEG."""

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents, output_type=tf.int32)
        box = random_resized_crop_box(shape[0], shape[1], key)
        return _decode_jpeg_window(contents, *box, image_size)

    def other():
        image = _decode_any(contents)
        shape = tf.shape(image)
        return _crop(image, random_resized_crop_box(shape[0], shape[1], key))

    return _resize(tf.cond(tf.io.is_jpeg(contents), jpeg, other), image_size)


# XLA fuses the colour steps' elementwise work: about twice as fast per image.
_augment_colors_compiled = tf.function(augment_colors, jit_compile=True)


class _ExampleTable:
    """All examples of some domains in one table, addressed by a global index.

    The examples are in-memory images, files read by path, or files read
    from a prepared dataset's shards (`prepared.RecordSource`).
    """

    def __init__(self, domains):
        kinds = {_kind(domain) for domain in domains}
        if len(kinds) != 1:
            raise ValueError(
                "Domains must all hold file paths, all prepared records or all "
                f"in-memory images, received {[domain.name for domain in domains]} "
                f"mixing {sorted(kinds)}."
            )
        empty = [domain.name for domain in domains if len(domain) == 0]
        if empty:
            raise ValueError(f"Domains {empty} hold no examples.")
        (self.kind,) = kinds
        self.in_memory = self.kind == "images"
        self.sizes = [len(domain) for domain in domains]
        self.offsets = np.cumsum([0] + self.sizes[:-1]).tolist()
        self.labels = tf.constant(np.concatenate([domain.labels for domain in domains]))
        if self.in_memory:
            shapes = {domain.images.shape[1:] for domain in domains}
            if len(shapes) != 1:
                raise ValueError(f"In-memory domains have different image shapes {shapes}.")
            self.images = tf.constant(np.concatenate([domain.images for domain in domains]))
        else:
            self.paths = tf.constant([path for domain in domains for path in domain.paths])
        if self.kind == "records":
            sources = {id(domain.records): domain.records for domain in domains}
            if len(sources) != 1:
                raise ValueError(
                    "Domains read from prepared records must come from one prepared "
                    f"dataset, received {len(sources)}."
                )
            (self.records,) = sources.values()
            self.rows = tf.constant(np.concatenate([domain.rows for domain in domains]))

    def load(self, index, key, image_size, augment, contents=None):
        """Returns the float32 image and int32 label of example `index`.

        `contents`: the file's bytes when already read (prepared records).
        """
        if self.in_memory:
            image = tf.gather(self.images, index)
            if augment:
                box = random_resized_crop_box(image.shape[0], image.shape[1], sub_key(key, 0))
                image = _crop(image, box)
            image = _resize(image, image_size)
        else:
            if contents is None:
                contents = tf.io.read_file(tf.gather(self.paths, index))
            if augment:
                image = _decode_random_crop(contents, sub_key(key, 0), image_size)
            else:
                image = decode_resized(contents, image_size)
        if augment:
            image = _augment_colors_compiled(image, sample_color_parameters(sub_key(key, 1)))
        return image, tf.gather(self.labels, index)

    def load_steps(self, plans, rows_per_step, image_size, augment, drop_remainder=True):
        """Maps each step's `(indices, keys)` to its batch `(images, labels)`, in order.

        A file that fails to decode becomes a gray image (see `safe_decode`).
        In memory, a last batch short of `rows_per_step` rows is dropped
        when `drop_remainder`. Prepared records are read a batch at a time.
        """

        def load(index, key, *contents):
            return self.load(index, key, image_size, augment, *contents)

        if self.in_memory:
            return (
                plans.unbatch()
                .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(rows_per_step, drop_remainder=drop_remainder)
            )

        def replace(indices, *keys_and_contents):
            del keys_and_contents
            images = gray_images(tf.gather(self.paths, indices), image_size)
            return images, tf.gather(self.labels, indices)

        if self.kind == "records":
            plans = plans.map(
                lambda indices, keys: (
                    indices, keys, self.records.read(tf.gather(self.rows, indices))
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        return load_batches(plans, load, replace)


def _kind(domain):
    if domain.paths is None:
        return "images"
    return "files" if domain.records is None else "records"


def process_rows(rows, process_index, process_count):
    """The slice of a batch's `rows` rows that process `process_index` of
    `process_count` takes: the part Keras' data parallelism gives it
    (`rebatch(rows // process_count).shard(process_count, process_index)`).

    >>> process_rows(96, 1, 2)
    slice(48, 96, None)
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must be in [0, process_count), received "
            f"process_index={process_index}, process_count={process_count}."
        )
    if rows % process_count:
        raise ValueError(
            f"A batch of {rows} rows does not split evenly across "
            f"{process_count} processes."
        )
    share = rows // process_count
    return slice(process_index * share, (process_index + 1) * share)


def _available_cores():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _with_options(dataset, num_threads):
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = num_threads or _available_cores()
    return dataset.with_options(options)


def training_dataset(
    domains,
    batch_size=32,
    image_size=224,
    seed=0,
    start_step=0,
    augment=None,
    num_threads=None,
    process_index=0,
    process_count=1,
):
    """The endless training stream over several domains.

    Args:
        domains: the training domains, a list of `DomainExamples` (e.g. the in
            splits of all domains but the test domain).
        batch_size: examples drawn from EACH domain per step.
        image_size: the side of the square output images.
        seed: the stream's seed; the same seed gives the same stream.
        start_step: the first step to yield; resuming at step `k` yields the
            same batches as an uninterrupted stream from step `k`.
        augment: apply DomainBed's augmentation (RandomResizedCrop scale
            0.7-1, horizontal flip, ColorJitter 0.3, RandomGrayscale 0.1);
            by default, as DomainBed: yes for image files, no for the
            in-memory MNIST family (which is only resized).
        num_threads: threads of the pipeline's private pool (default: all
            cores).
        process_index: this process's index in a multi-process run.
        process_count: the run's processes. Each process reads and decodes
            only its part of every global batch (`process_rows`: the rows
            Keras' data parallelism would give it), and the parts of all
            processes, concatenated in process order, are the global batch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: images float32
        `[batch_size * len(domains) / process_count, image_size, image_size, 3]`
        RGB with values in [0, 255] (not normalised), labels int32; in the
        global batch, block `i` of `batch_size` rows comes from `domains[i]`.
        A file that fails to decode gives a gray image (see the module
        docstring).
    """
    table = _ExampleTable(domains)
    if augment is None:
        augment = not table.in_memory
    share = process_rows(batch_size * len(domains), process_index, process_count)
    base_key = tf.constant([seed, 0], tf.int64)

    def step_plan(step):
        step_key = sub_key(base_key, step)
        indices, keys = [], []
        for i, (offset, size) in enumerate(zip(table.offsets, table.sizes)):
            domain_key = sub_key(step_key, i)
            local = tf.random.stateless_uniform(
                [batch_size], sub_key(domain_key, 0), 0, size, tf.int64, alg="philox"
            )
            indices.append(local + offset)
            keys.append(
                tf.random.stateless_uniform(
                    [batch_size, 2], sub_key(domain_key, 1), None, None, tf.int64, alg="philox"
                )
            )
        return tf.concat(indices, 0)[share], tf.concat(keys, 0)[share]

    plans = tf.data.Dataset.counter(start=start_step).map(step_plan)
    dataset = table.load_steps(
        plans, share.stop - share.start, image_size, augment
    ).prefetch(tf.data.AUTOTUNE)
    return _with_options(dataset, num_threads)


def evaluation_dataset(
    examples, image_size=224, batch_size=64, num_threads=None, augment_seed=None
):
    """One pass over a domain's examples with the evaluation transform.

    The transform is DomainBed's: resize to `image_size` x `image_size`
    (bilinear, antialiased, aspect ratio not kept), no augmentation and no
    normalisation. With `augment_seed`, image files get the training
    augmentation instead, as DomainBed evaluates its training domains: one
    draw per example, fixed by the seed and the example's position.

    Args:
        examples: a `DomainExamples` (e.g. one domain's in or out split).
        image_size: the side of the square output images.
        batch_size: examples per batch (the last batch may be smaller).
        num_threads: threads of the pipeline's private pool (default: all
            cores).
        augment_seed: `None` for the evaluation transform, or an int seed for
            the training augmentation (in-memory images, which training does
            not augment, stay resized only).

    Returns:
        A finite `tf.data.Dataset` of `(images, labels)` in the order of
        `examples`: images float32 `[batch, image_size, image_size, 3]` RGB
        with values in [0, 255], labels int32. A file that fails to decode
        gives a gray image (see the module docstring).
    """
    return evaluation_pass(
        [examples], image_size, batch_size, num_threads,
        augment_seeds=None if augment_seed is None else [augment_seed],
    )


def evaluation_pass(
    example_sets,
    image_size=224,
    batch_size=64,
    num_threads=None,
    augment_seeds=None,
    process_index=0,
    process_count=1,
):
    """`evaluation_dataset` of several sets at once: one pipeline, one pass.

    The sets' examples come one set after the other, in order, and a batch
    may hold the end of one set and the start of the next. Each example is
    what `evaluation_dataset` of its set gives, so one pass over many small
    sets costs one pipeline, not one per set.

    Args:
        example_sets: `DomainExamples`, none empty, all of files or all in
            memory.
        image_size: the side of the square output images.
        batch_size: examples per batch (the last batch may be smaller).
        num_threads: threads of the pipeline's private pool (default: all
            cores).
        augment_seeds: `None`, or one int seed per set: the training
            augmentation, as `evaluation_dataset`'s `augment_seed`.
        process_index: this process's index in a multi-process run.
        process_count: the run's processes. With several, the last batch
            is padded to `batch_size` rows by repeating its last example, and
            each process reads and decodes only its rows of every batch
            (`process_rows`); the processes' parts, concatenated in process
            order, are the padded batch.
    """
    table = _ExampleTable(example_sets)
    total = sum(table.sizes)
    if augment_seeds is None:
        keys = tf.zeros([total, 2], tf.int64)
    else:
        keys = tf.concat(
            [
                tf.random.stateless_uniform(
                    [size, 2], tf.constant([seed, 1], tf.int64), None, None, tf.int64,
                    alg="philox",
                )
                for size, seed in zip(table.sizes, augment_seeds, strict=True)
            ],
            axis=0,
        )
    plans = tf.data.Dataset.from_tensor_slices(
        (tf.range(total, dtype=tf.int64), keys)
    ).batch(batch_size)
    rows_per_batch = batch_size
    if process_count > 1:
        share = process_rows(batch_size, process_index, process_count)
        rows_per_batch = share.stop - share.start

        def padded_share(indices, keys):
            missing = batch_size - tf.shape(indices)[0]
            return tuple(
                tf.concat([rows, tf.repeat(rows[-1:], missing, axis=0)], 0)[share]
                for rows in (indices, keys)
            )

        plans = plans.map(padded_share)
    augment = augment_seeds is not None and not table.in_memory
    dataset = table.load_steps(
        plans, rows_per_batch, image_size, augment, drop_remainder=False
    )
    return _with_options(dataset.prefetch(tf.data.AUTOTUNE), num_threads)


def padded_pass_rows(examples, batch_size, process_count):
    """Rows of an `evaluation_pass` of `examples` examples over its processes'
    parts: the examples, then the last batch's padding (none for one process).

    >>> padded_pass_rows(10, 4, 2), padded_pass_rows(10, 4, 1)
    (12, 10)
    """
    if process_count == 1:
        return examples
    return -(-examples // batch_size) * batch_size
