"""The same training stream done DomainBed's way; prints one JSON line.

DomainBed decodes with Pillow and augments with torchvision transforms in
Python data-loader worker processes. This reference does that work (without
torchvision, which is not installed here): Pillow decode and RGB conversion,
torchvision's RandomResizedCrop(scale 0.7-1, bilinear resize),
RandomHorizontalFlip, ColorJitter(0.3, 0.3, 0.3, 0.3) in random order with
Pillow's enhancers and torchvision's uint8 hue shift, RandomGrayscale(0.1),
in one worker process per core, each building a whole batch of one domain;
the main process keeps two batches per worker in flight (at least one step), concatenates the
domains' batches of a step and converts them to float32 [0, 255], the output
of our pipeline. Same flags and the same JSON line as
`pipeline_throughput.py` (its CPU time counts the main process and the
workers' time on the measured batches):

  python benchmarks/pil_reference_pipeline.py --data_dir=/tmp/bench
"""

import collections
import math
import multiprocessing
import random
import time

import numpy as np
from absl import app, flags
from PIL import Image, ImageEnhance

import pipeline_flags


_SCALE = (0.7, 1.0)
_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_JITTER = 0.3
_GRAYSCALE_PROBABILITY = 0.1


def _crop_box(width, height, rng):
    """torchvision's RandomResizedCrop.get_params, as (left, top, right, bottom)."""
    area = width * height
    log_ratio = (math.log(_RATIO[0]), math.log(_RATIO[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        box_width = int(round(math.sqrt(target_area * aspect)))
        box_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < box_width <= width and 0 < box_height <= height:
            top = rng.randint(0, height - box_height)
            left = rng.randint(0, width - box_width)
            return left, top, left + box_width, top + box_height
    ratio = width / height
    box_width, box_height = width, height
    if ratio < _RATIO[0]:
        box_height = int(round(width / _RATIO[0]))
    elif ratio > _RATIO[1]:
        box_width = int(round(height * _RATIO[1]))
    top, left = (height - box_height) // 2, (width - box_width) // 2
    return left, top, left + box_width, top + box_height


def _shift_hue(image, shift):
    hue, saturation, value = image.convert("HSV").split()
    hue = np.asarray(hue, dtype=np.uint8) + np.uint8(int(shift * 255) % 256)
    merged = Image.merge("HSV", (Image.fromarray(hue, "L"), saturation, value))
    return merged.convert("RGB")


def _augment(path, image_size, rng):
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    box = _crop_box(*image.size, rng)
    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    factors = [rng.uniform(1 - _JITTER, 1 + _JITTER) for _ in range(3)]
    hue = rng.uniform(-_JITTER, _JITTER)
    for adjustment in rng.sample(range(4), 4):
        if adjustment == 0:
            image = ImageEnhance.Brightness(image).enhance(factors[0])
        elif adjustment == 1:
            image = ImageEnhance.Contrast(image).enhance(factors[1])
        elif adjustment == 2:
            image = ImageEnhance.Color(image).enhance(factors[2])
        else:
            image = _shift_hue(image, hue)
    if rng.random() < _GRAYSCALE_PROBABILITY:
        image = image.convert("L").convert("RGB")
    return np.asarray(image)


def _augmented_batch(task):
    """Worker: one domain's batch, uint8 [batch, size, size, 3], and its CPU seconds."""
    paths, image_size, seed = task
    start = time.process_time()
    rng = random.Random(seed)
    batch = np.stack([_augment(path, image_size, rng) for path in paths])
    return batch, time.process_time() - start


def main(argv):
    del argv
    # Imported here so that the spawned workers, which import this module,
    # stay free of TensorFlow.
    from keras_ldrop.data import load_domains, split_in_out

    domains = load_domains(pipeline_flags.DATASET.value, pipeline_flags.DATA_DIR.value)
    train = [
        split_in_out(domain, 0.2, trial_seed=0, domain_index=i)[0]
        for i, domain in enumerate(domains)
        if i != pipeline_flags.TEST_ENV.value
    ]
    rng = np.random.default_rng(0)

    def tasks():
        seed = 0
        while True:
            for domain in train:
                indices = rng.integers(0, len(domain), pipeline_flags.BATCH_SIZE.value)
                seed += 1
                yield [domain.paths[i] for i in indices], pipeline_flags.IMAGE_SIZE.value, seed

    with multiprocessing.get_context("spawn").Pool(pipeline_flags.CORES.value) as pool:
        pending = collections.deque()
        planned = tasks()

        in_flight = max(2 * pipeline_flags.CORES.value, len(train))

        def next_step():
            """Returns the step's float32 batch and the workers' CPU seconds for it."""
            while len(pending) < in_flight:
                pending.append(pool.apply_async(_augmented_batch, (next(planned),)))
            parts, seconds = zip(*(pending.popleft().get() for _ in train))
            return np.concatenate(parts).astype(np.float32), sum(seconds)

        for _ in range(pipeline_flags.WARMUP_STEPS.value):
            next_step()
        images, worker_cpu = 0, 0.0
        start, start_cpu = time.perf_counter(), time.process_time()
        while time.perf_counter() - start < pipeline_flags.SECONDS.value:
            batch, seconds = next_step()
            images += batch.shape[0]
            worker_cpu += seconds
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - start_cpu + worker_cpu
    pipeline_flags.print_measurement("PIL reference (DomainBed way)", len(train), images, elapsed, cpu)


if __name__ == "__main__":
    flags.mark_flag_as_required("data_dir")
    app.run(main)
