"""Collecting a sweep: model selection, soups, golden tables and figures."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from keras_ldrop.data import evaluation_dataset, load_domains, split_in_out
from keras_ldrop.experiments import collect, figures, soups, tables
from keras_ldrop.experiments.selection import select

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_RUNS = os.path.join(GOLDEN, "runs")
GOLDEN_TABLES = [
    ("training_domain", "text", "txt"),
    ("training_domain", "markdown", "md"),
    ("training_domain", "latex", "tex"),
    ("oracle", "markdown", "md"),
    ("last", "markdown", "md"),
]


def golden_summaries(selection):
    runs, _ = collect.read_runs(GOLDEN_RUNS)
    cache = os.path.join(GOLDEN_RUNS, collect.SOUP_CACHE)
    return collect.summarize(collect.collect_scores(runs, selection, cache))


@pytest.mark.parametrize("selection, style, extension", GOLDEN_TABLES)
def test_tables_match_the_golden_files(selection, style, extension):
    cached = sorted(os.listdir(os.path.join(GOLDEN_RUNS, collect.SOUP_CACHE)))
    rendered = tables.render(golden_summaries(selection), selection, style)
    with open(os.path.join(GOLDEN, "expected", f"{selection}.{extension}")) as file:
        assert rendered == file.read()
    # The soups came from the cache: nothing was evaluated or written.
    assert sorted(os.listdir(os.path.join(GOLDEN_RUNS, collect.SOUP_CACHE))) == cached


def test_unfinished_runs_are_left_out():
    runs, unfinished = collect.read_runs(GOLDEN_RUNS)
    assert len(runs) == 24
    assert [os.path.basename(f) for f in unfinished] == ["vlcs_mini-unfinished"]
    assert {run.rate for run in runs} == {0.0, 0.9}


def test_training_domain_selection_matches_a_direct_computation():
    """Rate 0, test domain 0: DomainBed's procedure written out plainly."""
    per_trial = []
    for trial in (0, 1):
        best = None
        for lr in ("0.001", "0.0005"):
            path = os.path.join(GOLDEN_RUNS, f"vlcs_mini-rate0-lr{lr}-env0-trial{trial}")
            with open(os.path.join(path, "results.jsonl")) as file:
                for record in map(json.loads, file):
                    validation = (record["env1_out_acc"] + record["env2_out_acc"]) / 2
                    if best is None or validation > best[0]:
                        best = (validation, record["env0_in_acc"])
        per_trial.append(best[1])
    (summary,) = golden_summaries("training_domain")
    row = next(r for r in summary.rows if (r.method, r.rate) == ("fine-tuning", 0.0))
    estimate = row.ood[(0,)]
    assert estimate.mean == pytest.approx(np.mean(per_trial))
    assert estimate.stderr == pytest.approx(np.std(per_trial, ddof=1) / np.sqrt(2))


class FakeRun:
    def __init__(self, folder, records):
        self.folder, self.records, self.test_envs = folder, records, (0,)


def record(step, validation, test_out, test_in, prefix=""):
    return {"step": step, f"{prefix}env0_in_acc": test_in,
            f"{prefix}env0_out_acc": test_out, f"{prefix}env1_out_acc": validation}


def test_each_selection_picks_its_own_checkpoint():
    first = FakeRun("a", [record(1, 0.70, 0.5, 0.80), record(2, 0.60, 0.9, 0.60)])
    second = FakeRun("b", [record(1, 0.65, 0.4, 0.70), record(2, 0.68, 0.5, 0.75)])
    picks = {
        name: select([first, second], name) for name in ("training_domain", "oracle", "last")
    }
    assert (picks["training_domain"].folder, picks["training_domain"].step) == ("a", 1)
    assert (picks["oracle"].folder, picks["oracle"].step) == ("a", 2)
    assert (picks["last"].folder, picks["last"].step) == ("b", 2)
    assert (picks["training_domain"].iid, picks["training_domain"].ood) == (0.70, 0.80)
    assert picks["last"].ood == 0.75
    averaged = FakeRun("c", [record(1, 0.9, 0.9, 0.9), record(2, 0.5, 0.5, 0.55, "average_")])
    assert select([averaged], "training_domain", "average_").ood == 0.55
    assert select([first], "training_domain", "average_") is None
    with pytest.raises(ValueError, match="expected one of training_domain, oracle, last"):
        select([first], "best")


def score(method, test_env, trial, ood, rate=0.0):
    setting = collect.Setting("vlcs_mini", "tiny", 32, 3)
    return collect.Score(setting, method, rate, (test_env,), trial, iid=0.9, ood=ood)


def test_average_column_needs_every_test_domain_of_a_trial():
    scores = [
        score("fine-tuning", 0, 0, 0.6), score("fine-tuning", 1, 0, 0.8),
        score("fine-tuning", 0, 1, 0.7),  # trial 1 lacks test domain 1
        score("uniform soup", 0, 0, 0.5, rate=0.9),
    ]
    (summary,) = collect.summarize(scores)
    assert summary.columns == ((0,), (1,), "Avg")
    assert [summary.column_label(c) for c in summary.columns] == ["caltech", "labelme", "Avg"]
    fine_tuning, soup = summary.rows
    assert fine_tuning.ood["Avg"] == collect.Estimate(0.7, None, 1)
    assert fine_tuning.ood[(0,)].count == 2
    assert "Avg" not in soup.ood
    _, rows = tables.cells(summary, "ood", "text")
    assert rows == [["fine-tuning", "0", "65.0 ± 5.0", "80.0", "70.0"],
                    ["uniform soup", "0.9", "50.0", "-", "-"]]


def test_latex_escapes_names_and_figures_are_pngs(tmp_path):
    summaries = golden_summaries("training_domain")
    latex = tables.render(summaries, "training_domain", "latex")
    assert "vlcs\\_mini" in latex and "$\\pm$" in latex and "vlcs_mini" not in latex
    figures.plot_iid_vs_ood(summaries, tmp_path / "a.png")
    figures.plot_ood_vs_rate(summaries, tmp_path / "b.png")
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def small_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5),
    ])


def test_soup_averages_weights_and_ensemble_sums_logits(tmp_path, tiny_vlcs_tree):
    args = {"dataset": "vlcs", "data_dir": str(tiny_vlcs_tree), "holdout_fraction": 0.2,
            "trial_seed": 0, "test_envs": [0]}
    models = [small_model(seed) for seed in (1, 2)]
    runs = []
    for index, model in enumerate(models):
        folder = tmp_path / f"run{index}"
        folder.mkdir()
        model.save(folder / "final.keras")
        last = {"step": 3, "hparams": {"image_size": 32, "lr": index}, "args": args}
        runs.append(collect.Run(str(folder), (last,)))
    cache = tmp_path / "soups"
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        combined = soups.combine_final_models(runs, cache)
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        domains = load_domains("vlcs", tiny_vlcs_tree)
    soup = small_model(3)
    first, second = (model.get_weights() for model in models)
    soup.set_weights([(a + b) / 2 for a, b in zip(first, second)])
    assert len(combined[soups.UNIFORM_SOUP]) == len(combined[soups.FINAL_ENSEMBLE]) == 8
    for index, domain in list(enumerate(domains))[:2]:
        for part, examples in zip(("in", "out"), split_in_out(domain, 0.2, 0, index)):
            dataset = evaluation_dataset(examples, 32)
            logits = [np.asarray(m.predict(dataset, verbose=0)) for m in (*models, soup)]
            labels = examples.labels
            key = f"env{index}_{part}_acc"
            expected_ensemble = np.mean(np.argmax(logits[0] + logits[1], -1) == labels)
            expected_soup = np.mean(np.argmax(logits[2], -1) == labels)
            assert combined[soups.FINAL_ENSEMBLE][key] == pytest.approx(expected_ensemble)
            assert combined[soups.UNIFORM_SOUP][key] == pytest.approx(expected_soup)
    # The second time the cache answers, even without the models.
    for run in runs:
        os.remove(os.path.join(run.folder, "final.keras"))
    assert soups.combine_final_models(runs, cache) == combined
    shutil.rmtree(cache)
    assert soups.combine_final_models(runs, cache) is None


def test_a_users_dataset_names_its_domains_and_runs_on_every_domain_are_left_out(
    user_tree
):
    setting = collect.Setting(str(user_tree), "tiny", 32, 3)
    summary = collect.Summary(setting, ((2,), (0, 1), collect.AVERAGE_COLUMN), ())
    assert [summary.column_label(c) for c in summary.columns] == [
        "site_c", "site_a+site_b", "Avg"
    ]
    runs, _ = collect.read_runs(GOLDEN_RUNS)
    run = runs[0]
    last = dict(run.records[-1], args={**run.records[-1]["args"], "test_envs": []})
    everywhere = collect.Run("/runs/everywhere", run.records[:-1] + (last,))
    with pytest.warns(UserWarning, match="Left out 1 run.*/runs/everywhere"):
        scores = collect.collect_scores([run, everywhere], "training_domain")
    assert scores == collect.collect_scores([run], "training_domain")
