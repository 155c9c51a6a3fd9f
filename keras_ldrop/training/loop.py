"""The paper's fine-tuning protocol: `train_and_evaluate(config, output_dir)`.

Training runs `model.fit` on the endless multi-domain stream, one epoch per
checkpoint interval, restarted at the exact step after a resume. After each
interval every domain's in and out splits are evaluated for the model, its
uniform weight average and the trajectory ensemble; a DomainBed-shaped record
is appended to `results.jsonl`, and the whole state is checkpointed atomically.
On SIGTERM or SIGUSR1 (a scheduler's preemption notice) the run checkpoints
after the step in progress and raises `Preempted`
(`keras_ldrop.training.preemption`); rerunning resumes it to the records of an
uninterrupted run. A folder that stops accepting writes (disk full, read-only)
ends the run with `OutputFolderError`, the last checkpoint intact.

With `distribution="data_parallel"` the model is built, trained and
evaluated inside a `RunDistribution` (`keras_ldrop.training.distribution`):
each batch is split across the devices, and in a multi-process JAX run only
process 0 writes the run's files.

Outputs in `output_dir`: `config.json` (the resolved settings),
`results.jsonl`, `checkpoint.npz`, `best.keras` (best training-domain
validation), `final.keras`, `summary.json` and the empty `done` marker.

Example (a real run on the offline VLCS mini with the offline EfficientNet-Lite0):

```python
from keras_ldrop.training import FinetuneConfig, train_and_evaluate
summary = train_and_evaluate(FinetuneConfig(dataset="vlcs_mini", steps=100), "/tmp/run")
print(summary["best"]["test_acc"])
```
"""

import json
import sys
import time

import keras

import keras_ldrop
from keras_ldrop.data import load_domains, seed_hash, training_dataset
from keras_ldrop.data.devices import share_accelerators_with_keras
from keras_ldrop.data.prepared import load_prepared_domains
from keras_ldrop.models import build_classifier
from keras_ldrop.optimizers import SGD, step_decay
from keras_ldrop.training import cpu_convolution, evaluation
from keras_ldrop.training.checkpoint import load_checkpoint, save_checkpoint
from keras_ldrop.training.distribution import RunDistribution
from keras_ldrop.training.preemption import (
    CarryIntervalLoss,
    Preempted,
    PreemptionWatch,
    StopAtNextStep,
    loss_mean_state,
)
from keras_ldrop.training.progress import TrainingProgress
from keras_ldrop.training.records import RunFiles, progress_line, writes_to

EVALUATION_BATCH_SIZE = 64


def _print_now(line):
    print(line, flush=True)


def train_and_evaluate(config, output_dir, log=_print_now, callbacks=()):
    """Fine-tunes, evaluates and checkpoints one run; resumes if interrupted.

    Under JAX on a CPU it computes convolution gradients as matrix products
    and depthwise convolutions as shifted products (XLA's values up to float
    rounding; a ResNet-50 step ran 1.9x faster); under torch it drops the
    layout copies around Keras' convolution and max pooling and stores the
    kernels channels-last (Keras' values, to float rounding below a max pool);
    see `cpu_convolution.use_where_faster()`.

    Args:
        config: a `FinetuneConfig` (resolved here).
        output_dir: the run's folder; created if missing, once the settings,
            the data and the model have been checked (a run that fails to
            start writes nothing). A folder holding a run with other settings
            is refused; a finished one is not rerun.
        log: where progress lines go (default: stdout, flushed; between
            checkpoints a line every 30 s, or one line redrawn on stderr
            when it is a terminal: `keras_ldrop.training.progress`).
        callbacks: Keras callbacks added to every `model.fit` of the run; each
            epoch is one checkpoint interval, and their `on_epoch_end` runs
            before that checkpoint's evaluation.

    Returns:
        The run's summary (also written to `summary.json`).

    Raises:
        ConfigError: invalid settings, an output folder of another run, or a
            `data_parallel` run that the backend or the devices cannot do.
        Preempted: SIGTERM or SIGUSR1 arrived; the run saved its checkpoint
            after the step in progress (in the main thread only: elsewhere
            Python cannot catch signals).
        OutputFolderError: a file of the run could not be written; the last
            checkpoint is intact.
    """
    config = config.resolve()
    share_accelerators_with_keras()
    training_domains = len(config.spec().domains) - len(
        set(config.test_envs)
    )
    distribution = RunDistribution(
        config.distribution, config.batch_size * training_domains
    )
    files = (RunFiles if distribution.is_main_process else _ReadOnlyRunFiles)(
        output_dir
    )
    files.check(config)
    if files.is_done():
        summary = files.read_summary()
        log(f"Run already finished: {summary['paths']['results']}")
        return summary
    keras.config.set_dtype_policy(config.precision)
    keras.utils.set_random_seed(config.seed)
    cpu_convolution.use_where_faster()
    if distribution.describe():
        log(distribution.describe())
    with distribution.scope():
        with PreemptionWatch() as watch:
            run = _Run(config, files, log, distribution)
            run.train(
                watch, callbacks, live_progress=log is _print_now and sys.stderr.isatty()
            )
        return run.finish()


class _ReadOnlyRunFiles(RunFiles):
    """The run folder as processes 1, 2, ... of a multi-process run use it:
    they check and read it, and leave every write to process 0."""

    def claim(self, config):
        self.check(config)

    def write_records(self, records):
        pass

    def save_model(self, model, name):
        pass

    def finish(self, summary):
        pass


class _Run:
    """The state of one run between checkpoints.

    It reads the data and builds the model before it claims the run folder,
    then restores the folder's checkpoint if there is one.
    """

    def __init__(self, config, files, log, distribution):
        self.config = config
        self.files = files
        self.log = log
        self.distribution = distribution
        self.spec = config.spec()
        if config.data_source == "tfds":
            domains = load_prepared_domains(self.spec, config.tfds_dir)
        else:
            domains = load_domains(self.spec, config.data_dir)
        self.splits = evaluation.domain_splits(
            domains, config.holdout_fraction, config.trial_seed
        )
        self.train_envs = [
            i for i in range(len(domains)) if i not in config.test_envs
        ]
        self.augment_seeds = (
            evaluation.augmented_split_seeds(self.train_envs, config.seed)
            if config.augment_evaluation
            else {}
        )
        self.split_logits = evaluation.SplitPredictor(
            self.splits,
            config.image_size,
            batch_size=distribution.evaluation_batch_size(EVALUATION_BATCH_SIZE),
            augment_seeds=self.augment_seeds,
            process_index=distribution.process_index,
            process_count=distribution.process_count,
        )
        self.model = self._build_model()
        self.optimizer = self.model.optimizer
        self.step = 0
        self.records = []
        self.best = None
        self.ensemble_sums = {}
        self.ensemble_members = 0
        self.interval_loss = None
        self.saved_step = 0
        with writes_to(files.root, self.saved_step):
            files.claim(config)
        if files.has_checkpoint():
            self._restore()

    def _build_model(self):
        config = self.config
        model = build_classifier(
            config.backbone,
            self.spec.num_classes,
            rate=config.rate,
            image_size=config.image_size,
            freeze_batchnorm=config.freeze_batchnorm,
            seed=config.seed,
            class_names=self.spec.classes,
            card=self._model_card(),
        )
        drops = config.lr_drop_steps()
        learning_rate = step_decay(config.lr, drops) if drops else config.lr
        multipliers = (
            {"predictions": config.head_lr_multiplier}
            if config.head_lr_multiplier != 1.0
            else None
        )
        model.compile(
            optimizer=SGD(
                learning_rate,
                momentum=config.momentum,
                weight_decay=config.weight_decay,
                lr_multipliers=multipliers,
                average_start=config.average_start,
                name="sgd",
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.optimizer.build(model.trainable_variables)
        return model

    def _model_card(self):
        """What the saved models say about themselves (`keras_ldrop.read_model_card`)."""
        config = self.config
        domains = list(self.spec.domains)
        return {
            "dataset": config.dataset,
            "domains": domains,
            "training_domains": [domains[i] for i in self.train_envs],
            "test_domains": [domains[i] for i in config.test_envs],
            "image_size": config.image_size,
            "settings": json.loads(config.to_json(with_dataset_contents=False)),
            "keras_ldrop_version": keras_ldrop.__version__,
        }

    @property
    def _sgd(self):
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)

    def _restore(self):
        arrays, meta = load_checkpoint(
            self.files.checkpoint, self.model.variables, self.optimizer.variables
        )
        self.step = meta["step"]
        self.records = meta["records"]
        self.best = meta["best"]
        self.ensemble_members = meta["ensemble_members"]
        self.interval_loss = meta.get("interval_loss")
        self.saved_step = self.step
        self.ensemble_sums = {
            name[len("ensemble/"):]: value
            for name, value in arrays.items()
            if name.startswith("ensemble/")
        }
        with writes_to(self.files.root, self.saved_step):
            self.files.write_records(self.records)
        self.log(f"Resumed from step {self.step} ({self.files.checkpoint}).")

    def train(self, watch, callbacks, live_progress=False):
        """Trains to the last step, evaluating and checkpointing every interval.

        One `fit` on one training stream covers all the whole checkpoint
        intervals it can, one epoch per interval, and evaluates and
        checkpoints at each epoch's end (`_IntervalEnd`), so the stream and
        `fit` are set up once, not once per interval. An interval resumed in
        its middle, and a last one shorter than the others, get a `fit` of
        their own. Between checkpoints, progress goes to the run's `log`, or
        is redrawn on stderr when `live_progress` (`TrainingProgress`).

        Raises:
            Preempted: `watch` saw a preemption signal; the state after the
                step in progress is checkpointed.
        """
        config = self.config
        train_splits = [self.splits[f"env{i}_in"] for i in self.train_envs]
        images_per_step = config.batch_size * len(train_splits)
        progress = TrainingProgress(
            self.log, config.steps, config.checkpoint_freq, images_per_step, live=live_progress
        )
        stopper = StopAtNextStep(watch)
        while self.step < config.steps:
            if watch.requested:
                self._stop(watch.signal_name)
            interval, intervals = self._next_intervals()
            stream = training_dataset(
                train_splits,
                batch_size=config.batch_size,
                image_size=config.image_size,
                seed=config.seed,
                start_step=self.step,
                process_index=self.distribution.process_index,
                process_count=self.distribution.process_count,
            )
            progress.at_step(self.step)
            self.model.fit(
                stream,
                epochs=intervals,
                steps_per_epoch=interval,
                shuffle=False,
                verbose=0,
                callbacks=[
                    *callbacks,
                    CarryIntervalLoss(self.interval_loss),
                    progress,
                    _IntervalEnd(self, interval, images_per_step, progress),
                    stopper,
                ],
            )

    def _next_intervals(self):
        """`(steps, count)`: the next `fit`'s checkpoint intervals, all `steps` long."""
        freq, left = self.config.checkpoint_freq, self.config.steps - self.step
        if self.step % freq:
            return min(freq - self.step % freq, left), 1
        if left >= freq:
            return freq, left // freq
        return left, 1

    def end_interval(self, steps, loss, images_per_second):
        """Counts a whole interval's `steps`, then evaluates and checkpoints the run."""
        self.step += steps
        self.interval_loss = None
        record = self._evaluate(loss)
        record["images_per_second"] = images_per_second
        self._checkpoint(record)
        self.log(progress_line(record, self.config))

    def end_partial_interval(self, steps, loss_state):
        """Counts the `steps` of an interval that a preemption signal cut short
        and keeps its loss mean (`loss_mean_state`) for the checkpoint."""
        self.step += steps
        self.interval_loss = loss_state

    def _stop(self, signal_name):
        if self.step > self.saved_step:
            self._save_state()
        where = (
            f"checkpoint at step {self.step}/{self.config.steps} in {self.files.root}"
            if self.step
            else f"no step taken yet, nothing to resume in {self.files.root}"
        )
        raise Preempted(
            f"Stopped on {signal_name} ({where}); rerun the same command to resume."
        )

    def _evaluate(self, loss):
        config = self.config
        predictor = self.distribution.predictor(self.model, process_local=True)
        logits = self.split_logits(predictor)
        record = {"step": self.step, "epoch": self._epoch(), "loss": float(loss)}
        record.update(evaluation.accuracies(logits, self.splits))
        if self.step >= config.average_start:
            with evaluation.averaged_weights(self._sgd):
                average_logits = self.split_logits(predictor)
            record.update(
                evaluation.accuracies(
                    average_logits, self.splits, evaluation.AVERAGE_PREFIX
                )
            )
            for name, value in logits.items():
                self.ensemble_sums[name] = self.ensemble_sums.get(name, 0.0) + value
            self.ensemble_members += 1
            record.update(
                evaluation.accuracies(
                    self.ensemble_sums, self.splits, evaluation.ENSEMBLE_PREFIX
                )
            )
            record["ensemble_members"] = self.ensemble_members
        record["hparams"] = self._hparams()
        record["args"] = self._args()
        return record

    def _epoch(self):
        smallest = min(len(self.splits[f"env{i}_in"]) for i in self.train_envs)
        return self.step * self.config.batch_size / smallest

    def _hparams(self):
        config = self.config
        return {
            "backbone": str(config.backbone),
            "rate": config.rate,
            "lr": config.lr,
            "weight_decay": config.weight_decay,
            "momentum": config.momentum,
            "head_lr_multiplier": config.head_lr_multiplier,
            "batch_size": config.batch_size,
            "image_size": config.image_size,
            "freeze_bn": config.freeze_batchnorm,
            "lr_drop_steps": list(config.lr_drop_steps()),
            "average_start": config.average_start,
            "precision": config.precision,
            # What was done: in-memory datasets are never augmented.
            "augment_evaluation": config.augment_evaluation and self.spec.augment,
        }

    def _args(self):
        """The run in DomainBed's terms: its tools group records by these fields.

        `dataset` is DomainBed's class name where DomainBed has the dataset,
        else ours (`keras_ldrop_dataset` is always ours); `algorithm` names
        the rate (`ERM` at 0, `LargeDropout(0.9)`); `hparams_seed` hashes the
        hyperparameters but the rate, with the steps and the seed, so the
        runs that differ in them differ in it.
        """
        config = self.config
        searched = {k: v for k, v in self._hparams().items() if k != "rate"}
        return {
            "dataset": self.spec.domainbed_name or config.dataset,
            "keras_ldrop_dataset": config.dataset,
            "algorithm": "ERM" if config.rate == 0 else f"LargeDropout({config.rate:g})",
            "test_envs": list(config.test_envs),
            "trial_seed": config.trial_seed,
            "seed": config.seed,
            "hparams_seed": seed_hash(
                json.dumps([searched, config.steps, config.seed], sort_keys=True)
            ),
            "holdout_fraction": config.holdout_fraction,
            "steps": config.steps,
            "checkpoint_freq": config.checkpoint_freq,
            "data_dir": config.data_dir,
            "output_dir": self.files.root,
            "backend": keras.backend.backend(),
            "distribution": config.distribution,
            "devices": max(1, len(self.distribution.devices)),
        }

    def _checkpoint(self, record):
        validation = evaluation.training_domain_validation(
            record, self.config.test_envs
        )
        if self.best is None or validation > self.best["validation_acc"]:
            self.best = {
                "step": self.step,
                "validation_acc": validation,
                "test_acc": evaluation.test_accuracy(record, self.config.test_envs),
            }
            self._save_model("best")
        self.records.append(record)
        self._save_state()

    def _save_state(self):
        """Checkpoints the run and rewrites its records."""
        with writes_to(self.files.root, self.saved_step):
            if self.distribution.is_main_process:
                save_checkpoint(
                    self.files.checkpoint,
                    self.model.variables,
                    self.optimizer.variables,
                    {f"ensemble/{k}": v for k, v in self.ensemble_sums.items()},
                    {
                        "step": self.step,
                        "records": self.records,
                        "best": self.best,
                        "ensemble_members": self.ensemble_members,
                        "interval_loss": self.interval_loss,
                    },
                )
            self.saved_step = self.step
            self.files.write_records(self.records)

    def _save_model(self, name):
        with writes_to(self.files.root, self.saved_step):
            with self.distribution.main_process_only():
                self.files.save_model(self.model, name)

    def finish(self):
        self._save_model("final")
        last = self.records[-1]
        test_envs = self.config.test_envs
        summary = {
            "best": self.best,
            "final": _summary_of(last, test_envs, ""),
            "paths": self.files.paths(),
        }
        for name, prefix in (
            ("weight_average", evaluation.AVERAGE_PREFIX),
            ("trajectory_ensemble", evaluation.ENSEMBLE_PREFIX),
        ):
            if f"{prefix}env0_in_acc" in last:
                summary[name] = _summary_of(last, test_envs, prefix)
        with writes_to(self.files.root, self.saved_step):
            self.files.finish(summary)
        return summary


class _IntervalEnd(keras.callbacks.Callback):
    """Ends each epoch of a run's `fit`, one checkpoint interval of `interval` steps.

    It hands the epoch's steps to the run: a whole interval is counted,
    evaluated and checkpointed (`_Run.end_interval`), and its images per
    second count its steps and its stream's start-up, not the evaluation.
    An interval cut short by a preemption signal is counted with its loss
    mean kept for the checkpoint (`_Run.end_partial_interval`); one cut short
    otherwise means the stream ended, which is an error.
    """

    def __init__(self, run, interval, images_per_step, progress):
        super().__init__()
        self.run = run
        self.interval = interval
        self.images_per_step = images_per_step
        self.progress = progress
        self.steps = 0
        self.started = None

    def on_epoch_begin(self, epoch, logs=None):
        self.steps = 0
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        if self.steps < self.interval:
            if not self.model.stop_training:
                raise RuntimeError(
                    f"The training stream ended after {self.steps} of "
                    f"{self.interval} steps; it must be endless."
                )
            self.run.end_partial_interval(self.steps, loss_mean_state(self.model))
            return
        evaluation_started = time.perf_counter()
        self.run.end_interval(
            self.steps, float(logs["loss"]), self.interval * self.images_per_step / seconds
        )
        self.progress.evaluated(time.perf_counter() - evaluation_started)


def _summary_of(record, test_envs, prefix):
    return {
        "step": record["step"],
        "validation_acc": evaluation.training_domain_validation(
            record, test_envs, prefix
        ),
        "test_acc": evaluation.test_accuracy(record, test_envs, prefix),
    }
