"""Collecting a sweep: model selection, soups, golden tables and figures."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ldrop.data import evaluation_dataset, load_domains, split_in_out
from keras_ldrop.experiments import clouds, collect, figures, reference, soups, tables
from keras_ldrop.experiments.selection import SELECTION_LABELS, SELECTIONS, select
from tests.app_runner import ROOT

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN_RUNS = os.path.join(GOLDEN, "runs")
GOLDEN_TABLES = [
    ("training_domain", "text", "txt"),
    ("training_domain", "markdown", "md"),
    ("training_domain", "latex", "tex"),
    ("oracle", "markdown", "md"),
    ("last", "markdown", "md"),
    ("paper", "markdown", "md"),
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
    domainbed_only = "'paper'; expected one of training_domain, oracle, last.$"
    with pytest.raises(ValueError, match=domainbed_only):
        select([first], "paper")


def score(method, test_env, trial, ood, rate=0.0):
    setting = collect.Setting("vlcs_mini", "tiny", 32, 3, augment_evaluation=True)
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
    figures.plot_iid_vs_ood(summaries, tmp_path / "a.png", "training_domain")
    figures.plot_ood_vs_rate(summaries, tmp_path / "b.png", "training_domain")
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The paper's estimator on a grid small enough to compute by hand: vlcs, test
# domains 0 and 1 (each run trains on the other), trials 0 and 1, rate 0,
# lr {1e-3, 5e-4}, one weight decay. (test domain, trial, lr): the
# (training-domain validation, o.o.d.) pairs at steps 1 and 2; the pair with
# the better validation is the run's choice (marked <-).
HAND_GRID = {
    (0, 0, 1e-3): [(0.80, 0.60), (0.90, 0.70)],  # <- step 2
    (0, 0, 5e-4): [(0.85, 0.50), (0.75, 0.90)],  # <- step 1
    (0, 1, 1e-3): [(0.70, 0.40), (0.60, 0.80)],  # <- step 1
    (0, 1, 5e-4): [(0.60, 0.30), (0.65, 0.70)],  # <- step 2
    (1, 0, 1e-3): [(0.90, 0.20), (0.80, 0.90)],  # <- step 1
    (1, 0, 5e-4): [(0.70, 0.40), (0.80, 0.30)],  # <- step 2
    (1, 1, 1e-3): [(0.50, 0.50), (0.55, 0.45)],  # <- step 2
    (1, 1, 5e-4): [(0.95, 0.35), (0.90, 0.99)],  # <- step 1
}


def hand_record(step, test_env, trial, lr, validation, ood):
    train_env = 1 - test_env
    return {
        "step": step, f"env{test_env}_in_acc": ood, f"env{test_env}_out_acc": 0.5,
        f"env{train_env}_in_acc": 0.5, f"env{train_env}_out_acc": validation,
        "hparams": {"backbone": "tiny", "image_size": 32, "rate": 0.0, "lr": lr,
                    "weight_decay": 1e-4, "head_lr_multiplier": 1.0},
        "args": {"dataset": "vlcs", "test_envs": [test_env], "trial_seed": trial, "steps": 2},
    }


def write_hand_grid(root, grid=HAND_GRID):
    """Writes one finished run folder per grid entry; returns the runs read back."""
    for (test_env, trial, lr), checkpoints in grid.items():
        folder = root / f"env{test_env}-trial{trial}-lr{lr:g}"
        folder.mkdir(parents=True)
        records = [
            hand_record(step, test_env, trial, lr, validation, ood)
            for step, (validation, ood) in enumerate(checkpoints, 1)
        ]
        (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (folder / "done").touch()
    return collect.read_runs(root)[0]


def fine_tuning_row(runs, selection):
    (summary,) = collect.summarize(collect.collect_scores(runs, selection))
    (row,) = [row for row in summary.rows if row.method == "fine-tuning"]
    return summary, row


def test_paper_estimator_averages_every_setting_by_hand(tmp_path):
    summary, row = fine_tuning_row(write_hand_grid(tmp_path), "paper")
    # Cells (test domain, trial), o.o.d. mean over the two lrs: (0, 0) (.70 + .50) / 2
    # = .60; (0, 1) (.40 + .70) / 2 = .55; (1, 0) (.20 + .30) / 2 = .25;
    # (1, 1) (.45 + .35) / 2 = .40. i.i.d.: .875, .675, .85, .75.
    assert summary.columns == ((0,), (1,), "Avg")
    assert row.ood[(0,)].mean == pytest.approx(0.575)
    assert row.ood[(0,)].stderr == pytest.approx(0.025)
    assert row.ood[(1,)].mean == pytest.approx(0.325)
    assert row.ood[(1,)].stderr == pytest.approx(0.075)
    # Avg: per trial (.60 + .25) / 2 = .425 and (.55 + .40) / 2 = .475.
    assert row.ood["Avg"].mean == pytest.approx(0.45)
    assert row.ood["Avg"].stderr == pytest.approx(0.025)
    assert row.iid["Avg"].mean == pytest.approx(0.7875)
    assert row.ood["Avg"].count == 2
    # DomainBed's training-domain selection keeps the better-validated run instead:
    # lr 1e-3 in both trials of test domain 0 (validation .90 > .85, .70 > .65).
    _, selected = fine_tuning_row(collect.read_runs(tmp_path)[0], "training_domain")
    assert selected.ood[(0,)].mean == pytest.approx((0.70 + 0.40) / 2)


def test_paper_estimator_leaves_out_incomplete_cells_and_refuses_duplicates(tmp_path):
    grid = {key: value for key, value in HAND_GRID.items() if key != (1, 1, 5e-4)}
    runs = write_hand_grid(tmp_path / "incomplete", grid)
    message = "left out 1 cell.*test domain \\[1\\] trial 1 lacks lr=0.0005 weight_decay"
    with pytest.warns(UserWarning, match=message):
        summary, row = fine_tuning_row(runs, "paper")
    assert row.ood[(0,)].count == 2 and row.ood[(1,)] == collect.Estimate(0.25, None, 1)
    assert row.ood["Avg"] == collect.Estimate(pytest.approx(0.425), None, 1)
    with pytest.warns(UserWarning, match="left out 1 cell"):
        run_scores = collect.paper_run_scores(runs)
    assert len(run_scores) == 6  # the cell (1, 1) holds only lr 1e-3: left out
    twice = write_hand_grid(tmp_path / "twice", {(0, 0, 1e-3): HAND_GRID[(0, 0, 1e-3)]})
    write_hand_grid(tmp_path / "twice" / "again", {(0, 0, 1e-3): HAND_GRID[(0, 0, 1e-3)]})
    twice = collect.read_runs(tmp_path / "twice")[0]
    duplicate = "same lr=0.001 weight_decay=0.0001 head_lr_multiplier=1.0"
    with pytest.raises(ValueError, match=duplicate):
        collect.collect_scores(twice, "paper")


def test_a_cloud_has_a_point_per_combination_and_the_average_as_centroid(tmp_path):
    runs = write_hand_grid(tmp_path)
    (cloud,) = clouds.clouds(collect.paper_run_scores(runs))
    assert (cloud.method, cloud.rate, cloud.test_columns) == ("fine-tuning", 0.0, ((0,), (1,)))
    assert cloud.combinations == len(cloud.points) == 2**2 and not cloud.sampled
    # Per test domain and lr, the mean over trials (i.i.d., o.o.d.):
    # domain 0: lr 5e-4 (.75, .60), lr 1e-3 (.80, .55); domain 1: lr 5e-4 (.875, .325),
    # lr 1e-3 (.725, .325). A point averages one lr of each domain.
    expected = [[0.8125, 0.4625], [0.7375, 0.4625], [0.8375, 0.4375], [0.7625, 0.4375]]
    np.testing.assert_allclose(cloud.points, expected)
    _, row = fine_tuning_row(runs, "paper")
    assert cloud.centroid == pytest.approx((row.iid["Avg"].mean, row.ood["Avg"].mean))
    (sampled,) = clouds.clouds(collect.paper_run_scores(runs), max_points=3)
    assert len(sampled.points) == 3 and sampled.combinations == 4 and sampled.sampled
    assert sampled.centroid == cloud.centroid
    with pytest.raises(ValueError, match="max_points must be at least 1; received 0"):
        clouds.clouds([], max_points=0)
    run_scores = collect.paper_run_scores(runs)
    averaged = [dataclasses.replace(s, method="weight averaging")
                for s in run_scores if s.test_envs == (0,)]
    no_cloud = r"No cloud .*vlcs weight averaging rate 0 \(test domains \[\[1\]\]\)"
    with pytest.warns(UserWarning, match=no_cloud):
        assert [c.method for c in clouds.clouds(run_scores + averaged)] == ["fine-tuning"]
    # The golden sweep: 3 test domains x 2 lrs, 3 trajectory methods x 2 rates.
    golden = clouds.clouds(collect.paper_run_scores(collect.read_runs(GOLDEN_RUNS)[0]))
    assert len(golden) == 6
    assert all(len(c.points) == c.combinations == 2**3 for c in golden)


def test_published_rows_are_in_the_o_o_d_tables_of_their_dataset(tmp_path):
    summaries = collect.summarize(collect.collect_scores(write_hand_grid(tmp_path), "paper"))
    markdown = tables.render(summaries, "paper", "markdown", "paper")
    ood_table, iid_table = markdown.split("#### ")[1:]
    assert "| paper: fine-tuning | 0 | - | - | 78.7 |" in ood_table
    assert "| paper: fine-tuning | 0.9 | - | - | 80.0 |" in ood_table
    assert "paper: fine-tuning |" not in iid_table
    for table in (ood_table, iid_table):
        assert "'paper: fine-tuning' rate 0 (the paper's plain fine-tuning)" in table
        assert "our 'fine-tuning' rows at the same rates, Avg column" in table
        assert "under --selection=paper" in table
        assert "arXiv:2403.00946" in table and "no per-domain or i.i.d. value" in table
    text = tables.render(summaries, "paper", "text", "paper")
    assert any(line.split() == ["paper:", "fine-tuning", "0.9", "-", "-", "80.0"]
               for line in text.splitlines())
    latex = tables.render(summaries, "paper", "latex", "paper")
    assert "paper: fine-tuning & 0 & -- & -- & 78.7 \\\\" in latex
    assert "lr \\{1e-3, 5e-4\\}" in latex
    assert "paper: fine-tuning" not in tables.render(summaries, "paper", "markdown")
    golden = tables.render(golden_summaries("paper"), "paper", "markdown", "paper")
    assert "paper: fine-tuning" not in golden  # vlcs_mini: nothing published


def test_the_published_values_keep_their_source():
    values = {(v.dataset, v.name): (v.method, v.rate, v.ood)
              for v in reference.REFERENCES["paper"]}
    assert values == {
        (dataset, name): ("fine-tuning", rate, ood)
        for dataset, plain, dropout in (("vlcs", 0.787, 0.800), ("pacs", 0.865, 0.884),
                                        ("office_home", 0.708, 0.734),
                                        ("terra_incognita", 0.513, 0.536))
        for name, rate, ood in (("plain fine-tuning", 0.0, plain), ("90% dropout", 0.9, dropout))
    }
    assert all("ResNet-50" in v.setup and "arXiv:2403.00946" in v.source
               for v in reference.REFERENCES["paper"])
    assert reference.published("none", "vlcs") == ()
    message = "^--reference must be one of none, paper; received 'papers'.$"
    with pytest.raises(ValueError, match=message):
        reference.published("papers", "vlcs")


def test_every_table_and_figure_names_its_estimator(tmp_path):
    runs = write_hand_grid(tmp_path / "runs")
    for selection in SELECTIONS:
        summaries = collect.summarize(collect.collect_scores(runs, selection))
        named = f"estimator: {SELECTION_LABELS[selection]}"
        for style in tables.STYLES:
            rendered = tables.render(summaries, selection, style, "paper")
            plain = rendered.replace("\\_", "_").replace("\\%", "%")
            titles = [f"{tables.METRICS[metric]}, %; {named}" for metric in tables.METRICS]
            assert all(plain.count(title) == 1 for title in titles), (selection, style)
        plotted = [
            figures.plot_iid_vs_ood(summaries, tmp_path / "a.png", selection, "paper"),
            figures.plot_ood_vs_rate(summaries, tmp_path / "b.png", selection, "paper"),
        ]
        if selection == "paper":
            cloud_list = clouds.clouds(collect.paper_run_scores(runs))
            plotted.append(figures.plot_cloud(cloud_list, summaries, tmp_path / "c.png", "paper"))
        for figure in plotted:
            title = " ".join(figure.get_suptitle().split())  # wrapped to the width
            assert title.startswith(f"Estimator: {SELECTION_LABELS[selection]}")
    (axis,) = [a for a in plotted[-1].axes if a.get_visible()]
    labels = axis.get_legend_handles_labels()[1]
    assert "fine-tuning, rate 0: 4 points" in labels
    assert any(label.startswith("paper: fine-tuning, rate 0.9: published o.o.d. 80.0")
               for label in labels)
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Loads the collect app once in a fresh process (tests/test_sweep.py loads it
# in this one, and absl flags cannot be defined twice) and runs its main.
APP_DRIVER = """
import json, sys
from tests.app_runner import load_app, run_app
app = load_app("collect_results")
print(json.dumps([run_app(app, "collect_results", *argv) for argv in json.loads(sys.argv[1])]))
"""


def test_the_app_writes_the_paper_estimator_and_refuses_bad_values_in_one_line(tmp_path):
    write_hand_grid(tmp_path / "runs")
    common = [f"--input_dir={tmp_path / 'runs'}", f"--output_dir={tmp_path / 'out'}"]
    argvs = [
        [*common, "--selection=best"],
        [*common, "--reference=papers"],
        [*common, "--selection=paper", "--reference=paper"],
        [f"--input_dir={GOLDEN_RUNS}", f"--output_dir={tmp_path / 'golden'}", "--reference=paper"],
    ]
    process = subprocess.run(
        [sys.executable, "-c", APP_DRIVER, json.dumps(argvs)], cwd=ROOT,
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT}/apps"},
    )
    assert process.returncode == 0, process.stderr[-2000:]
    messages = json.loads(process.stdout.strip().splitlines()[-1])
    assert messages == [
        "collect_results: error: Unknown model selection 'best'; expected one of "
        "training_domain, oracle, last, paper.",
        "collect_results: error: --reference must be one of none, paper; received 'papers'.",
        None,
        None,
    ]
    assert "| paper: fine-tuning | 0.9 | - | - | 80.0 |" in (
        tmp_path / "out" / "results_paper.md").read_text()
    for name in ("cloud_paper.png", "iid_vs_ood_paper.png", "ood_vs_rate_paper.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "  cloud: " in process.stdout and "estimator: the paper's" in process.stdout
    assert ("--reference=paper has no values for vlcs_mini (only for vlcs, pacs, "
            "office_home, terra_incognita).") in process.stdout


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
    setting = collect.Setting(str(user_tree), "tiny", 32, 3, augment_evaluation=True)
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


def test_a_domainbed_run_beside_ours_is_read_into_its_own_table(tmp_path):
    """A DomainBed run folder used to stop collect with `KeyError: 'rate'`."""
    shutil.copytree(GOLDEN_RUNS, tmp_path / "sweep")
    folder = tmp_path / "sweep" / "domainbed_run"
    folder.mkdir()
    accuracies = {f"env{i}_{part}_acc": 0.5 + i / 10 for i in range(4) for part in ("in", "out")}
    with open(folder / "results.jsonl", "w") as file:
        for step in (0, 299):
            file.write(json.dumps({
                "step": step, **accuracies,
                "hparams": {"lr": 5e-5, "resnet18": False, "resnet_dropout": 0.5},
                "args": {"algorithm": "ERM", "dataset": "PACS", "hparams_seed": 1,
                         "seed": 3, "steps": 300, "test_envs": [2], "trial_seed": 0},
            }) + "\n")
    (folder / "done").write_text("done")
    runs, _ = collect.read_runs(tmp_path / "sweep")
    assert len(runs) == 25
    cache = tmp_path / "sweep" / collect.SOUP_CACHE
    with pytest.warns(UserWarning, match="Soups and final-model ensembles left out of 1 cell"):
        summaries = collect.summarize(collect.collect_scores(runs, "training_domain", cache))
    domainbed, ours = summaries
    assert domainbed.setting == collect.Setting(
        "pacs", "DomainBed torchvision resnet50", 224, 300, augment_evaluation=True
    )
    assert [(row.method, row.rate) for row in domainbed.rows] == [("fine-tuning", 0.5)]
    assert domainbed.column_label((2,)) == "photo"
    assert domainbed.rows[0].ood[(2,)].mean == pytest.approx(0.7)
    assert ours.setting.dataset == "vlcs_mini" and len(ours.rows) == 10
