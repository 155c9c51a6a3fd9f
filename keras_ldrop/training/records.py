"""The files of a run folder, each written atomically, and the progress line.

Example:

>>> import tempfile
>>> from keras_ldrop.training.records import RunFiles
>>> files = RunFiles(tempfile.mkdtemp())
>>> files.write_records([{"step": 50, "env0_in_acc": 0.5}])
>>> files.read_records()
[{'env0_in_acc': 0.5, 'step': 50}]
"""

import contextlib
import json
import os

from keras_ldrop.data.user_data import describe_changes
from keras_ldrop.training import evaluation
from keras_ldrop.training.checkpoint import remove_quietly, write_atomically
from keras_ldrop.training.config import ConfigError, FinetuneConfig


class OutputFolderError(OSError):
    """A file of the run could not be written (disk full, read-only folder)."""


@contextlib.contextmanager
def writes_to(folder, saved_step):
    """Turns an `OSError` from writing the run's files into one `OutputFolderError`
    line that names the folder and the checkpoint left intact.

    Args:
        folder: the run folder.
        saved_step: the step of the last checkpoint written (0: none).

    >>> with writes_to("/run", 300):
    ...     raise OSError(28, "No space left on device", "/run/checkpoint.npz.tmp")
    Traceback (most recent call last):
    ...
    keras_ldrop.training.records.OutputFolderError: Cannot write to the run folder /run: No space left on device (/run/checkpoint.npz.tmp). Its checkpoint at step 300 is intact: once the folder takes writes again, rerun the same command to resume.
    """
    try:
        yield
    except OutputFolderError:
        raise
    except OSError as error:
        kept = (
            f"Its checkpoint at step {saved_step} is intact"
            if saved_step
            else "No checkpoint was written yet"
        )
        raise OutputFolderError(
            f"Cannot write to the run folder {folder}: "
            f"{error.strerror or error} ({error.filename or 'a file in it'}). "
            f"{kept}: once the folder takes writes again, rerun the same "
            "command to resume."
        ) from error


def _write_atomically(path, text):
    write_atomically(path, text.encode())


class RunFiles:
    """Paths and atomic writers of one run folder.

    Nothing is written, nor the folder created, before `claim`: a run that
    fails to start leaves the folder as it found it.

    Args:
        root: the run folder (created by `claim` if missing).
    """

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self.config = os.path.join(self.root, "config.json")
        self.results = os.path.join(self.root, "results.jsonl")
        self.checkpoint = os.path.join(self.root, "checkpoint.npz")
        self.summary = os.path.join(self.root, "summary.json")
        self.done = os.path.join(self.root, "done")

    def check(self, config):
        """Refuses a folder whose run has other settings; writes nothing.

        Raises:
            ConfigError: the folder holds a run with other settings.
        """
        if not os.path.exists(self.config):
            return
        with open(self.config) as file:
            existing = FinetuneConfig.from_json(file.read())
        if existing != config:
            differences = ", ".join(
                _difference(name, getattr(existing, name), value)
                for name, value in vars(config).items()
                if getattr(existing, name) != value
            )
            raise ConfigError(
                f"Output folder {self.root} holds a run with other settings "
                f"({differences}); use another --output_dir to start a new run."
            )

    def claim(self, config):
        """The run's first write: creates the folder and writes `config.json`,
        or checks that the folder's run has the same settings.

        Raises:
            ConfigError: the folder holds a run with other settings.
        """
        self.check(config)
        if not os.path.exists(self.config):
            os.makedirs(self.root, exist_ok=True)
            _write_atomically(self.config, config.to_json() + "\n")

    def has_checkpoint(self):
        return os.path.exists(self.checkpoint)

    def is_done(self):
        return os.path.exists(self.done)

    def write_records(self, records):
        """Rewrites `results.jsonl` with one JSON line per record."""
        _write_atomically(
            self.results, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        )

    def read_records(self):
        with open(self.results) as file:
            return [json.loads(line) for line in file if line.strip()]

    def model_path(self, name):
        return os.path.join(self.root, f"{name}.keras")

    def save_model(self, model, name):
        """Saves `model` as `<name>.keras`, replacing the previous one atomically."""
        path = self.model_path(name)
        temporary = os.path.join(self.root, f"{name}.tmp.keras")
        try:
            model.save(temporary)
            os.replace(temporary, path)
        except OSError:
            remove_quietly(temporary)
            raise

    def paths(self):
        return {
            "results": self.results,
            "config": self.config,
            "best_model": self.model_path("best"),
            "final_model": self.model_path("final"),
            "summary": self.summary,
        }

    def finish(self, summary):
        """Writes `summary.json`, then the `done` marker."""
        _write_atomically(self.summary, json.dumps(summary, indent=2) + "\n")
        _write_atomically(self.done, "")

    def read_summary(self):
        with open(self.summary) as file:
            return json.load(file)


def _difference(name, there, now):
    if name == "dataset_contents" and there and now:
        return f"the dataset changed since the run started ({describe_changes(there, now)})"
    return f"{name}: {there!r} there, {now!r} now"


def progress_line(record, config):
    """One line: step, loss, i.i.d./o.o.d. accuracy and images per second.

    The test-domain accuracies are left out when no domain is held out.
    """
    test_envs = config.test_envs
    parts = [
        f"step {record['step']}/{config.steps}",
        f"loss {record['loss']:.4f}",
        f"train-domain val acc {evaluation.training_domain_validation(record, test_envs):.4f}",
    ]
    if test_envs:
        parts.append(f"test acc {evaluation.test_accuracy(record, test_envs):.4f}")
    for label, prefix in (
        ("average", evaluation.AVERAGE_PREFIX),
        ("ensemble", evaluation.ENSEMBLE_PREFIX),
    ):
        if test_envs and f"{prefix}env0_in_acc" in record:
            parts.append(
                f"{label} test acc {evaluation.test_accuracy(record, test_envs, prefix):.4f}"
            )
    parts.append(f"{record['images_per_second']:.1f} img/s")
    return " | ".join(parts)
