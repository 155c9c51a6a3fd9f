"""Sweeps and the paper's comparison: job grids, launchers, model selection,
soups and ensembles of final models, tables and figures.

- `sweep`: the grid of runs, their hashed folders and states.
- `launchers`: run the grid here, on every local GPU, or on SLURM (submitit).
- `collect`: read the records, group runs into cells, score every method.
- `selection`: DomainBed's model selection (training-domain, oracle, last) and
  the per-run choice of the paper's estimator.
- `clouds`: the paper's i.i.d./o.o.d. clouds; `reference`: its published results.
- `soups`: the uniform soup and the ensemble of the final models of a cell.
- `tables`, `figures`: terminal/Markdown/LaTeX tables, the two PNG figures.

Example:

>>> from keras_ldrop.experiments import make_jobs, sweep_status
>>> jobs = make_jobs("/tmp/sweep", dataset="pacs_mini", trials=1, rates=[0, 0.9],
...                  lrs=[1e-3], weight_decays=[1e-4])
>>> len(jobs), sweep_status(jobs)["done"]
(8, 0)
"""

from keras_ldrop.experiments.collect import collect_scores, read_runs, summarize
from keras_ldrop.experiments.sweep import Job, delete_incomplete, make_jobs, sweep_status

__all__ = [
    "Job",
    "collect_scores",
    "delete_incomplete",
    "make_jobs",
    "read_runs",
    "summarize",
    "sweep_status",
]
