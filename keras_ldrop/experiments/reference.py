"""Published results to compare a sweep with, kept as data with their source.

`paper`: the means of Zhang & Bottou's figure, o.o.d. accuracy only, for plain
fine-tuning and for 90% dropout on the four DomainBed datasets the figure
shows. Each value is the centroid of one cloud of the figure: the paper's
estimator (each run's checkpoint by training-domain validation, then the mean
over every hyperparameter setting, trial and test domain). The counterpart of
a published value is our `fine-tuning` row at the same rate, `Avg` column,
under `--selection=paper`: plain fine-tuning is `fine-tuning` at rate 0, 90%
dropout is `fine-tuning` at rate 0.9. The paper publishes no i.i.d. value and
no value per test domain; none is made up here.

Example:

>>> from keras_ldrop.experiments.reference import published
>>> [(value.label, value.rate, value.ood) for value in published("paper", "pacs")]
[('paper: fine-tuning', 0.0, 0.865), ('paper: fine-tuning', 0.9, 0.884)]
"""

import dataclasses

from keras_ldrop.experiments.collect import FINE_TUNING

NONE = "none"
PAPER = "paper"
REFERENCE_NAMES = (NONE, PAPER)

PAPER_SOURCE = (
    "Zhang & Bottou, Fine-tuning with Very Large Dropout, arXiv:2403.00946: the "
    "centroids of Figure 2's i.i.d./o.o.d. clouds, read off the figure "
    "(figure/dropout.png of the authors' repository TjuJianyu/verylarge_dropout)"
)
PAPER_SETUP = (
    "ResNet-50 with torchvision's V2 ImageNet weights, 224 px, 10,000 steps, "
    "lr {1e-3, 5e-4} x weight decay {1e-4, 5e-5, 1e-5}, 3 trials, full datasets"
)


@dataclasses.dataclass(frozen=True)
class Published:
    """One published o.o.d. mean and the row of ours it corresponds to.

    Attributes:
        dataset: our registry name of the dataset.
        name: the paper's name of the method: plain fine-tuning, 90% dropout.
        method: our method name (`fine-tuning`).
        rate: our dropout rate: 0 for plain fine-tuning, 0.9 for 90% dropout.
        ood: the o.o.d. accuracy, a fraction, averaged over the test domains.
        source: where the value comes from and how it was obtained.
        setup: the backbone and protocol behind it.
    """

    dataset: str
    name: str
    method: str
    rate: float
    ood: float
    source: str
    setup: str

    @property
    def label(self):
        """The table's method cell: `paper: <our method>`."""
        return f"paper: {self.method}"


def _paper(dataset, plain, large_dropout):
    return (
        Published(dataset, "plain fine-tuning", FINE_TUNING, 0.0, plain,
                  PAPER_SOURCE, PAPER_SETUP),
        Published(dataset, "90% dropout", FINE_TUNING, 0.9, large_dropout,
                  PAPER_SOURCE, PAPER_SETUP),
    )


REFERENCES = {
    NONE: (),
    PAPER: (
        *_paper("vlcs", 0.787, 0.800),
        *_paper("pacs", 0.865, 0.884),
        *_paper("office_home", 0.708, 0.734),
        *_paper("terra_incognita", 0.513, 0.536),
    ),
}


def check_reference(reference):
    """Raises `ValueError` unless `reference` is one of `REFERENCE_NAMES`."""
    if reference not in REFERENCE_NAMES:
        raise ValueError(
            f"--reference must be one of {', '.join(REFERENCE_NAMES)}; "
            f"received {reference!r}."
        )


def published(reference, dataset):
    """The `Published` values of `reference` for `dataset` (a registry name)."""
    check_reference(reference)
    return tuple(value for value in REFERENCES[reference] if value.dataset == dataset)


def datasets(reference):
    """The registry names of the datasets `reference` has values for."""
    check_reference(reference)
    return tuple(dict.fromkeys(value.dataset for value in REFERENCES[reference]))
