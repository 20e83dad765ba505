"""Analysis and evaluation of a run, end to end on phantom data: losses, generation, metrics.json,
classifier utility, and the feature extractor's loud fallback when InceptionV3 cannot be had."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gan_lib.base.paths import PROJECT_ROOT, resolve
from gan_lib.config import EVALUATION_FIELDS, GANConfig
from gan_lib.data.images import png_text
from gan_lib.data.prepare import prepare_dataset
from gan_lib.data.sources import fetch_raw
from gan_lib.data.storage import load_processed, processed_path, save_processed
from gan_lib.evaluation import descriptors
from gan_lib.evaluation.evaluate import Evaluation, evaluate_run
from gan_lib.evaluation.features import INCEPTION_URL, FeatureExtractorUnavailable, choose_extractor, inception_weights
from gan_lib.evaluation.summary import summary_table
from gan_lib.evaluation.utility import class_images
from gan_lib.plots import class_picks, write_evolution_gif
from gan_lib.records.evaluation import read_best, read_evaluation
from gan_lib.runs import logs
from gan_lib.runs.generate import generate, interpolate, load_generator, noise_for
from gan_lib.runs.location import run_path
from gan_lib.runs.logs import load_history
from gan_lib.scripts import class_study, figure
from gan_lib.training.loop import train

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`


@pytest.fixture(scope="module")
def run_cfg(tmp_path_factory):
    """A finished 12-step run on 32 px phantom tumour slices (tiny: the pipeline, not the quality)."""
    root = tmp_path_factory.mktemp("eval")
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(root / "data"), image_size=32,
                                   output_root=str(root / "runs"), run_name="e", epochs=2, steps_per_epoch=6,
                                   checkpoint_every=6, log_every=2, xla="off", precision="float32", speed_layers="on",
                                   n_generated=40, kid_subset_size=20, kid_subsets=5, diversity_pairs=100,
                                   classifier_seeds=2, classifier_epochs=2, feature_extractor="random_cnn",
                                   kid_every=6, kid_images=20)
    save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    train(cfg)
    return cfg


def test_generation_is_reproducible_per_image(run_cfg):
    generator = load_generator(run_path(run_cfg))
    images, noise = generate(generator, 5, seed=3)
    again, _ = generate(generator, 2, seed=3, start=3)
    np.testing.assert_allclose(images[3:], again, atol=1e-6)
    np.testing.assert_array_equal(noise[4], noise_for(3, 4, 100))
    assert images.shape == (5, 32, 32, 1) and np.abs(images).max() <= 1
    path = interpolate(generator, seed=3, start=0, end=1, steps=4)
    np.testing.assert_allclose(path[0], images[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], images[1], atol=1e-5)


def test_generate_cli_writes_pngs_and_the_seed_table(run_cfg, tmp_path):
    out = tmp_path / "gen"
    subprocess.run([sys.executable, "-m", "gan_lib", "generate", "--run", str(run_path(run_cfg)), "--n", "6",
                    "--out", str(out), "--seed", "2", "--upscale", "64"], check=True, capture_output=True)
    with (out / "images.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["index"] for r in rows] == [str(i) for i in range(6)] and {r["seed"] for r in rows} == {"2"}

    first = cv2.imread(str(out / rows[0]["file"]), cv2.IMREAD_GRAYSCALE)
    assert first.shape == (64, 64)
    assert np.load(out / "noise.npy").shape == (6, 100)
    assert {r["synthetic"] for r in rows} == {"yes"} and {r["run"] for r in rows} == {run_cfg.run_name}


def test_a_generated_png_says_it_is_synthetic_wherever_it_goes(run_cfg, tmp_path):
    """The marker is in the file itself (read here by Pillow, not by our own reader), so a copy
    that has left its folder and images.csv still says what made it."""
    from PIL import Image

    from gan_lib.runs.generate import write_images

    out = write_images(run_path(run_cfg), 3, tmp_path / "gen", seed=5, batch=2)
    copied = Path(shutil.copy(out / "gen_5_00002.png", tmp_path / "elsewhere.png"))
    text = Image.open(copied).text
    assert text["Synthetic"].startswith("yes")
    source = json.loads(text["Generator"])
    recorded = json.loads((run_path(run_cfg) / "config.json").read_text())
    assert source == {"run": run_cfg.run_name, "preset": run_cfg.preset, "run_seed": run_cfg.seed, "generator": "final",
                      "step": recorded["effective"]["total_steps"], "seed": 5, "index": 2, "label": None}
    assert png_text(copied) == text
    np.testing.assert_array_equal(np.load(out / "noise.npy")[2], noise_for(5, 2, run_cfg.noise_dim))


def test_training_grids_are_captioned_and_only_generated_ones_are_marked(run_cfg):
    from PIL import Image

    samples = run_path(run_cfg) / "samples"
    assert "Synthetic" not in Image.open(samples / "reals.png").text
    last = sorted(samples.glob("epoch_*.png"))[-1]
    assert json.loads(Image.open(last).text["Generator"])["step"] == run_cfg.epochs * run_cfg.steps_per_epoch
    grid, reals = (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (last, samples / "reals.png"))
    tile = max(run_cfg.image_size, 64)
    assert grid.shape[0] > 5 * tile + 16 and reals.shape[0] > 5 * tile + 16, "a caption strip above each grid"


def test_loss_reading_names_the_reports_failure_and_a_balanced_game():
    def history(d_loss, g_loss, d_real, d_fake, epochs=3, per_epoch=20):
        return [{"epoch": e + 1, "step": e * per_epoch + i + 1, "d_loss": d_loss(e), "g_loss": g_loss(e),
                 "d_real": d_real(e), "d_fake": d_fake(e), "wall_time_s": 0.0}
                for e in range(epochs) for i in range(per_epoch)]

    report_like = history(lambda e: [0.6, 0.05, 0.003][e], lambda e: [1.5, 4.0, 8.5][e],
                          lambda e: [0.6, 0.97, 0.999][e], lambda e: [0.4, 0.03, 0.001][e])
    reading = logs.read_losses(report_like)
    assert reading["verdict"] == "d_wins" and "wins outright" in reading["findings"][0]
    assert [row["g_loss"] for row in reading["epochs"]] == pytest.approx([1.5, 4.0, 8.5])
    balanced = history(lambda e: 0.6, lambda e: 1.0, lambda e: 0.6, lambda e: 0.4)
    assert logs.read_losses(balanced)["verdict"] == "balanced"
    rising = history(lambda e: 0.4, lambda e: [1.0, 2.0, 3.0][e], lambda e: 0.7, lambda e: 0.3)
    assert logs.read_losses(rising)["verdict"] == "diverged"


def test_sample_evolution_gif_has_a_frame_per_epoch(run_cfg, tmp_path):
    from PIL import Image

    gif = write_evolution_gif(run_path(run_cfg), tmp_path / "evolution.gif")
    assert Image.open(gif).n_frames == 2
    assert Image.open(gif).width >= 640


def _evaluated(run_cfg) -> Evaluation:
    """The run evaluated as notebook 06 would (its metrics.json written)."""
    return evaluate_run(GANConfig.from_overrides(**{k: v for k, v in run_cfg.to_dict().items()
                                                   if k in ("run_name", "output_root", *EVALUATION_FIELDS)}))


def test_each_classifier_seed_trains_on_its_own_draw_and_the_first_is_the_old_one(run_cfg):
    """Which generated images a classifier trains on moves its AUC, so each classifier seed draws its
    own; draw 0 is the one every evaluation used before (noise seed `seed + 1`), so older figures
    stay comparable."""
    generator = load_generator(run_path(run_cfg))
    y_train = np.array([1, 1, 1, 0])
    draws = [class_images(generator, run_cfg, y_train, 1, draw) for draw in (0, 1)]
    assert draws[0].shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(draws[0], generate(generator, 3, seed=run_cfg.seed + 1)[0])
    assert np.abs(draws[0] - draws[1]).mean() > 0.01


def test_the_best_generator_is_evaluated_and_drawn_from_when_asked_and_named_with_its_step(run_cfg, tmp_path):
    """which_generator="best" measures generator_best.keras (in a copy without generator.keras, so
    nothing else can be read) and says so with best.json's step; `generate --generator best` too. A
    folder without generator_best.keras is refused, naming the file and the way out."""
    copy = Path(shutil.copytree(run_path(run_cfg), tmp_path / "copy", ignore=shutil.ignore_patterns("generator.keras")))
    settings = {k: v for k, v in run_cfg.to_dict().items() if k in EVALUATION_FIELDS}
    evaluation = evaluate_run(GANConfig.from_overrides(**{**settings, "which_generator": "best", "run_name": "copy",
                                                          "output_root": str(tmp_path)}))
    best_step = read_best(copy).step
    assert evaluation.record.config["which_generator"] == "best" and evaluation.record.generator_step == best_step
    assert read_evaluation(copy) == evaluation.record
    assert f"Generator: generator_best.keras, saved at step {best_step}." in summary_table(evaluation.record)
    cli = [sys.executable, "-m", "gan_lib", "generate", "--run", str(copy), "--n", "2", "--out", str(tmp_path / "gen")]
    subprocess.run(cli + ["--generator", "best"], check=True, capture_output=True)
    with (tmp_path / "gen" / "images.csv").open() as f:
        assert {(r["generator"], r["step"]) for r in csv.DictReader(f)} == {("best", str(best_step))}
    (copy / "generator_best.keras").unlink()
    refused = subprocess.run(cli + ["--generator", "best"], capture_output=True, text=True)
    assert refused.returncode == 2 and "generator_best.keras does not exist" in refused.stderr
    assert "which_generator='final' takes generator.keras" in refused.stderr


def test_evaluation_writes_metrics_with_baselines_and_utility(run_cfg):
    evaluation = _evaluated(run_cfg)
    saved = json.loads((run_path(run_cfg) / "metrics.json").read_text())
    assert saved["config"]["image_size"] == 32, "the run's own settings, read from its config.json"
    fidelity = saved["fidelity"]
    assert fidelity["feature_extractor"] == "random_cnn" and "NOT InceptionV3" in fidelity["feature_extractor_note"]
    for key in ("generated_vs_train", "baseline_train_half_vs_half", "baseline_held_out_vs_train"):
        assert np.isfinite(fidelity[key]["kid"]) and fidelity[key]["kid_std"] >= 0
    assert 0 < saved["diversity"]["real_msssim"] < 1 and saved["n_generated"] == 40
    assert set(saved["memorisation"]) >= {"generated_near_copy_share", "baseline_near_copy_share", "memorised"}
    utility = saved["utility"]
    assert len(utility["conditions"]) == 2, "real only, and real + generated tumour images"
    for condition in utility["conditions"].values():
        assert len(condition["accuracy"]) == 2 and 0 <= condition["accuracy_mean"] <= 1
    assert utility["train_on_synthetic_test_on_real"].startswith("skipped")
    # the GAN's training images never reach the classifier's test set
    _, _, gan_manifest = load_processed(processed_path(run_cfg), "train")
    assert utility["excluded_from_test"] == 0
    assert set(saved["timings_s"]) >= {"features", "KID and FID", "diversity (MS-SSIM)"}
    assert evaluation.generated.shape == (40, 32, 32, 1) and len(evaluation.nearest_index) == 40
    coverage = saved["coverage"]
    n_held = saved["n_held_out_real"]
    assert coverage["generated_vs_train"]["n"] == 40 and coverage["generated_vs_train_matched"]["n"] == n_held
    assert coverage["baseline_held_out_vs_train"]["n"] == n_held
    for key in ("generated_vs_train", "generated_vs_train_matched", "baseline_held_out_vs_train"):
        assert all(0 <= coverage[key][name] <= 1 for name in ("precision", "recall", "coverage"))
    with (run_path(run_cfg) / "coverage.csv").open() as f:
        per_scan = list(csv.DictReader(f))
    assert len(per_scan) == saved["n_train_real"] and per_scan[0]["source_path"].startswith("yes/")
    ratios = [float(r["ratio_to_radius"]) for r in per_scan]
    assert ratios == sorted(ratios, reverse=True), "least covered first"
    assert np.mean([r > 1 for r in ratios]) == pytest.approx(coverage["train_scans_not_covered"])
    assert set(saved["descriptors"]["generated_vs_train"]) == set(descriptors.DESCRIPTORS)
    assert set(evaluation.scan_descriptors) == {"phantom (training)", "generated", "held-out phantom"}
    assert "precision" in summary_table(evaluation.record) and "coverage.csv" in summary_table(evaluation.record)
    assert dataclasses.asdict(evaluation.record) == saved, "metrics.json holds the record, whole"
    assert saved["config"]["which_generator"] == "final" and saved["generator_step"] == 12


def test_the_quality_comparison_of_finished_runs_shows_each_runs_least_covered_scans(run_cfg, tmp_path):
    """`quality --compare` on a finished run folder: the table, and a least-covered figure per run
    made again from the run alone, showing the scans its coverage.csv lists first."""
    from gan_lib.scripts import quality

    if not (run_path(run_cfg) / "metrics.json").exists():
        _evaluated(run_cfg)
    folder = resolve(run_cfg.output_root).parent  # <folder>/runs/<run>, as quality --only writes it
    out = tmp_path / "compared"
    quality.main(["--compare", str(folder), "--out", str(out), "--seed", "1"])
    saved = json.loads((run_path(run_cfg) / "metrics.json").read_text())
    row = json.loads((out / "quality.json").read_text())["rows"][folder.name]
    assert row["kid"] == saved["fidelity"]["generated_vs_train"]["kid"] and row["steps"] == 12
    assert row["recall_matched"] == saved["coverage"]["generated_vs_train_matched"]["recall"]
    for name in ("table.md", "kid_vs_steps.png", "grids.png", "descriptors.png", f"least_covered_{folder.name}.png"):
        assert (out / name).stat().st_size > 0, name
    with (run_path(run_cfg) / "coverage.csv").open() as f:
        least = [f"{float(r['ratio_to_radius']):.2f}x radius" for r in list(csv.DictReader(f))[:8]]
    figure = quality.least_covered_figure(quality.evaluated_config(run_path(run_cfg), read_evaluation(run_path(run_cfg))))
    assert [text.get_text() for text in figure.axes[0].texts][:8] == least


@pytest.fixture(scope="module")
def both_cfg(tmp_path_factory):
    """A finished 6-step run of the default preset on both classes of 32 px phantom slices, its
    quality checked once."""
    root = tmp_path_factory.mktemp("both")
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(root / "data"), image_size=32, classes="both",
                                   output_root=str(root / "runs"), run_name="both", epochs=1, steps_per_epoch=6,
                                   checkpoint_every=6, log_every=2, xla="off", precision="float32", speed_layers="off",
                                   n_generated=40, kid_subset_size=10, kid_subsets=3, diversity_pairs=50,
                                   classifier_seeds=1, classifier_epochs=1, feature_extractor="random_cnn", kid_every=6,
                                   kid_images=20)
    save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    train(cfg)
    return cfg


def test_a_conditional_default_run_is_judged_per_class_and_trained_on_alone(both_cfg, tmp_path):
    """classes="both" with the default preset (report models, conditional): each class's own
    figures, the train-on-synthetic condition, and a picture per class."""
    cfg = both_cfg
    evaluation = evaluate_run(cfg)
    per_class = evaluation.record.fidelity["per_class"]
    assert set(per_class) == {"yes", "no"}
    for figures in per_class.values():
        assert np.isfinite(figures["generated_vs_train"]["kid"]) and figures["generated_vs_train"]["n"][0] == 40
        assert 0 <= figures["coverage"]["generated_vs_train"]["coverage"] <= 1
    conditions = evaluation.record.utility["conditions"]
    assert any(name.startswith("generated only") for name in conditions), "train on synthetic, test on real"
    assert list(evaluation.generated_labels[:4]) == [0, 1, 0, 1] and set(evaluation.train_labels) == {0, 1}
    figure = class_picks(evaluation.generated, evaluation.generated_labels, evaluation.train, evaluation.train_labels,
                         synthetic=True)
    assert figure.texts, "labelled synthetic"
    table = summary_table(evaluation.record).splitlines()
    assert any(row.startswith("| KID, class yes (tumour) only | ") for row in table)
    fidelity = evaluation.record.utility["label_fidelity"]
    assert fidelity["classes"] == ["no", "yes"] and fidelity["per_class"]["yes"]["generated_images"] > 0
    assert any(row.startswith("| label fidelity: ") for row in table)
    assert any(row.startswith("| head symmetry by class ") for row in table)
    assert set(per_class["no"]["descriptors"]) == {"generated_vs_train", "baseline_held_out_vs_train"}
    assert class_study.main(["--runs", str(run_path(cfg)), "--out", str(tmp_path / "study"), "--n", "8"]) == 0
    study = json.loads((tmp_path / "study" / "class_study.json").read_text())["runs"][0]
    assert set(study["classes"]) == {"no", "yes"} and study["cas"] == fidelity["score"]
    assert all(0 <= row["generated"]["head_area"] <= 1 for row in study["classes"].values())
    assert all(row.count("|") == 4 for row in table if row.startswith("|")), "every row its own table row"


def test_the_readme_figure_of_a_copied_run_folder_names_its_generators_step_and_marks_it_synthetic(
        both_cfg, run_cfg, tmp_path, capsys):
    copied = tmp_path / "copied" / "both"
    shutil.copytree(run_path(both_cfg), copied, ignore=shutil.ignore_patterns("checkpoints"))
    drawn = figure.class_figure(copied, per_class=2)
    assert ", 32 px, 6 steps: generated (upper row" in drawn.axes[0].get_title()
    assert drawn.texts, "labelled synthetic"
    assert figure.main(["--run", str(copied), "--out", str(tmp_path / "figure.png"), "--per-class", "2"]) == 0
    assert cv2.imread(str(tmp_path / "figure.png")).shape[1] > 100
    with pytest.raises(SystemExit):
        figure.main(["--run", str(run_path(run_cfg)), "--out", str(tmp_path / "one.png")])
    assert "its generator makes one class" in capsys.readouterr().err


def test_a_run_kept_in_stages_is_tabled_and_drawn_against_steps(both_cfg, tmp_path):
    """scripts.stages keeps an evaluated run as a stage (its metrics, figures, generators and last
    grid) and draws the kept stages: each row the stage's own figures, a class's KID included."""
    from gan_lib.scripts import stages

    if not (run_path(both_cfg) / "metrics.json").exists():
        evaluate_run(both_cfg)
    out = tmp_path / "both_s0"
    stages.keep_stage(run_path(both_cfg), out / "stage_6", out.name, seed=1)
    (out / "stage_12.tmp").mkdir()  # a stage stopped half-way is not one
    assert stages.stage_folders(out) == [out / "stage_6"]
    assert stages.main(["--curves", str(out), "--out", str(tmp_path / "curves"), "--seed", "1"]) == 0
    row = json.loads((tmp_path / "curves" / "quality.json").read_text())["rows"]["both_s0_6"]
    saved = read_evaluation(out / "stage_6")
    no_tumour, best = saved.fidelity["per_class"]["no"], json.loads((out / "stage_6" / "best.json").read_text())
    assert row["steps"] == 6 and row["kid_no"] == no_tumour["generated_vs_train"]["kid"]
    assert row["coverage_no_held_out"] == no_tumour["coverage"]["baseline_held_out_vs_train"]["coverage"]
    assert row["cas"] == saved.utility["label_fidelity"]["score"]
    assert (row["best_by"], row["best_step"]) == (best["by"], 6)
    assert (out / "stage_6" / "generator.keras").exists() and (out / "stage_6" / "grid.png").exists()
    for name in ("table.md", "stages.png", "kid_vs_steps.png", "stage_grids.png"):
        assert (tmp_path / "curves" / name).stat().st_size > 0, name
    table = (tmp_path / "curves" / "table.md").read_text()
    assert f"| both_s0 | 6 | {row['kid']:.3f} (" in table
    assert "| both_s0 | 6 | no |" in table and "| both_s0 | 6 | yes |" in table
    quality = json.loads((tmp_path / "curves" / "quality.json").read_text())
    health = load_history(out / "stage_6", "health.csv")
    stops, checks = quality["stopping"]["both_s0"], quality["checks"]["both_s0"]
    assert [(r["step"], r["kid_held_out"]) for r in checks] == [(r["step"], r["kid_held_out"]) for r in health]
    one_check = {"stop_after_checks": 4, "stops_at": None, "keeps": 6, "kept_value": pytest.approx(best["kid_held_out"]),
                 "kept_kid": pytest.approx(best["kid"]), "kept_recall": pytest.approx(health[0]["recall"])}
    assert stops["by"] == best["by"] and stops["replays"][:2] == [  # a schedule shorter than best_from_step: its last
        {**one_check, "best_from_step": 0}, {**one_check, "best_from_step": 2000}]
    assert f"| both_s0 | {best['by']} | 4 | 0 | not before 6 | 6 (" in table


def test_inception_weights_offline_fail_clearly_and_auto_falls_back_loudly(tmp_path, offline, capsys):
    cache = tmp_path / "weights"
    cache.mkdir()
    (cache / INCEPTION_URL.rsplit("/", 1)[1]).write_bytes(b"not the weights")  # a wrong hash is not accepted
    with pytest.raises(FeatureExtractorUnavailable, match="could not be downloaded"):
        inception_weights(cache)
    with pytest.raises(FeatureExtractorUnavailable):
        choose_extractor("inception", cache, 32)
    capsys.readouterr()
    extractor = choose_extractor("auto", cache, 32)
    assert extractor.name == "random_cnn" and extractor.standardise
    assert "WARNING" in capsys.readouterr().out
    assert extractor.extract(np.zeros((3, 32, 32, 1), np.float32)).shape == (3, 480)


def test_inception_features_come_from_a_cached_weight_file_offline(tmp_path, offline, monkeypatch):
    """The InceptionV3 path end to end, with a weight file built here in Keras's legacy .h5 layout
    (random weights: the ImageNet file cannot be fetched here) and its MD5 pinned in its place."""
    import hashlib

    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from gan_lib.evaluation import features

    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg", input_shape=(299, 299, 3))
    cache = tmp_path / "weights"
    cache.mkdir()
    path = cache / INCEPTION_URL.rsplit("/", 1)[1]
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    monkeypatch.setattr(features, "INCEPTION_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    extractor = choose_extractor("auto", cache, 32)
    assert extractor.name == "inception_v3_imagenet"
    images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
    out = extractor.extract(images)
    assert out.shape == (3, 2048) and np.isfinite(out).all()
    expected = model(np.repeat(keras.ops.image.resize(images, (299, 299)), 3, axis=-1), training=False)
    np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-3, atol=1e-4)


def test_the_kid_panel_has_numbers_on_its_axis_whatever_the_range():
    from gan_lib.plots import kid_curves

    for values in ([0.021, 0.034, 0.05], [0.02, 0.9, 3.5], [-0.02, 0.01, 0.03]):
        rows = [{"step": 500 * (i + 1), "kid": k, "kid_std": 0.01, "diversity_ratio": 0.9, "coverage": 0.7,
                 "recall": 0.7} for i, k in enumerate(values)]
        figure = kid_curves({"run": rows})
        figure.canvas.draw()
        labels = [t.get_text() for t in figure.axes[0].get_yticklabels() if t.get_text()]
        assert len(labels) >= 2 and figure.axes[0].get_ylabel() == "KID", values


def test_make_generate_works_from_the_shell_as_documented(run_cfg, tmp_path):
    """The README's `make generate RUN=... N=...`, through the project's .venv (not this interpreter)."""
    out = tmp_path / "made"
    done = subprocess.run(["make", "-s", "-C", str(PROJECT_ROOT), "generate", f"RUN={run_path(run_cfg)}", "N=2",
                           f"OUT={out}", "SEED=4"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["gen_4_00000.png", "gen_4_00001.png"]
    assert "Traceback" not in done.stderr and "cuInit" not in done.stderr and "remapper" not in done.stderr
    usage = subprocess.run(["make", "-s", "-C", str(PROJECT_ROOT), "generate"], capture_output=True, text=True)
    assert usage.returncode != 0 and "usage: make generate RUN=" in usage.stderr
