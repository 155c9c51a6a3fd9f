"""What evaluating every split at a checkpoint costs: split by split, or one pass built once.

A run evaluates every domain's in and out split at every checkpoint, twice
once the weight average starts (the model, then its average). Split by split
(`predict(evaluation_dataset(split))` for each split, a pipeline built at every
call) was how the training loop did it; `SplitPredictor` builds one pipeline
for the run, reads it with one `predict` per call and, when the decoded images
fit in memory, decodes them only at the first call. Both are timed on the same
model and splits, `--calls` times each (a run of 2,000 steps with checkpoints
every 300 makes 14 calls); one JSON line per way, then a summary line.

  python benchmarks/evaluation_cost.py --dataset=vlcs_mini --calls=4
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from keras_ldrop.data import evaluation_dataset, load_domains  # noqa: E402
from keras_ldrop.models import build_classifier  # noqa: E402
from keras_ldrop.training import FinetuneConfig, evaluation  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "vlcs_mini", "Registry name or a folder of domains.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the registered datasets.")
_BACKBONE = flags.DEFINE_string("backbone", None, "Any backbone finetune takes; default the dataset's.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Image side; default the dataset's.", lower_bound=1)
_TEST_ENV = flags.DEFINE_integer("test_env", 0, "Held-out domain (evaluated clean).", lower_bound=0)
_CALLS = flags.DEFINE_integer("calls", 4, "Evaluations of every split, each way.", lower_bound=2)


def split_by_split(model, splits, image_size, augment_seeds):
    """Every split's logits, a pipeline and a `predict` per split (the loop's former way)."""
    return {
        name: np.asarray(
            model.predict(
                evaluation_dataset(
                    examples, image_size, augment_seed=augment_seeds.get(name)
                ),
                verbose=0,
            ),
            np.float32,
        )
        for name, examples in splits.items()
    }


def one_pass_built_once(model, splits, image_size, augment_seeds):
    """Builds the run's `SplitPredictor`; returns a call that evaluates `model` with it."""
    predictor = evaluation.SplitPredictor(splits, image_size, augment_seeds=augment_seeds)
    return lambda: predictor(model)


def timed_calls(make, calls):
    """`(seconds to build, [seconds of each call], last logits)`: `make()` builds, its result is called."""
    started = time.perf_counter()
    call = make()
    built = time.perf_counter() - started
    seconds, logits = [], None
    for _ in range(calls):
        started = time.perf_counter()
        logits = call()
        seconds.append(time.perf_counter() - started)
    return built, seconds, logits


def main(argv):
    del argv
    config = FinetuneConfig(
        dataset=_DATASET.value, data_dir=_DATA_DIR.value, backbone=_BACKBONE.value,
        image_size=_IMAGE_SIZE.value, test_envs=(_TEST_ENV.value,),
    ).resolve()
    spec = config.spec()
    domains = load_domains(spec, config.data_dir)
    splits = evaluation.domain_splits(domains, config.holdout_fraction, config.trial_seed)
    train_envs = [i for i in range(len(domains)) if i not in config.test_envs]
    seeds = evaluation.augmented_split_seeds(train_envs, config.seed)
    model = build_classifier(
        config.backbone, spec.num_classes, rate=config.rate, image_size=config.image_size
    )
    size = config.image_size
    ways = {
        "split_by_split": lambda: lambda: split_by_split(model, splits, size, seeds),
        "one_pass_built_once": lambda: one_pass_built_once(model, splits, size, seeds),
    }
    results = {}
    for way, make in ways.items():
        built, seconds, logits = timed_calls(make, _CALLS.value)
        results[way] = logits
        print(json.dumps({
            "way": way, "dataset": config.dataset, "backbone": config.backbone,
            "image_size": size, "images": sum(len(s) for s in splits.values()),
            "splits": len(splits), "build_s": round(built, 2),
            "first_call_s": round(seconds[0], 2),
            "later_call_s": round(float(np.median(seconds[1:])), 2),
        }), flush=True)
    largest = max(
        float(np.max(np.abs(results["split_by_split"][name] - results["one_pass_built_once"][name])))
        for name in splits
        if len(splits[name])
    )
    print(f"largest logit difference between the two ways: {largest:.2e}")


if __name__ == "__main__":
    app.run(main)
