"""A tracked smoke training run end to end: MLflow record, model round trip, failures."""

import dataclasses
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

from hzexp.cli import main
from hzexp.config import load_pipeline
from hzexp.data.pipeline import magnitudes
from hzexp.data.store import Dataset
from hzexp.evaluation.metrics import Dz, smad
from hzexp.experiment import tracked_training
from hzexp.training import train
from tests.helpers import REPO, use_private_tracking

SMOKE = Path(__file__).parents[1] / "pipelines" / "smoke.yaml"


@pytest.fixture(scope="module")
def tracking_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    mp = pytest.MonkeyPatch()
    use_private_tracking(mp, root)  # artifacts land in ./mlruns of the test directory
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def smoke_config(tracking_dir, smoke_pipeline):
    return load_pipeline(smoke_pipeline)


@pytest.fixture(scope="module")
def outcome(smoke_config):
    return tracked_training(smoke_config, pipeline_file=str(SMOKE), run_name="smoke-test")


def test_run_logs_params_metrics_tags_and_artifacts(outcome, smoke_config):
    run = mlflow.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.depth"] == "3"
    assert run.data.params["preprocess.cutout"] == "20"
    metrics = run.data.metrics
    for name in ("smad_dz", "dz_mean", "bias_mean", "sigma_dz", "outlier_frac", "r2", "n_test",
                 "clean_smad_dz", "red_smad_dz", "blue_smad_dz", "baseline_smad_dz",
                 "baseline_knn_smad_dz", "loss", "val_loss", "r2"):
        assert name in metrics, name
    assert metrics["n_test"] == 36  # 15% of 240
    history = mlflow.MlflowClient().get_metric_history(outcome.run_id, "val_loss")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
    dataset = Dataset.open(smoke_config.data.path)
    assert run.data.tags["dataset_hash"] == dataset.content_hash
    assert {"git_commit", "hzexp_version"} <= set(run.data.tags)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(outcome.run_id, "figures")}
    assert {"figures/zphot_vs_zspec.html", "figures/residuals.html", "figures/dz_histogram.html",
            "figures/nz.html", "figures/loss_curves.html"} <= artifacts
    table = mlflow.load_table("tables/photoz_table_test.json", run_ids=[outcome.run_id])
    assert {"Hybrid-z", "MLP baseline (magnitudes)"} <= set(table["method"])


def test_the_dataset_is_a_logged_input_in_each_context_it_was_used(outcome, smoke_config):
    """The MLflow UI's Dataset column: name, digest (the content hash) and source."""
    dataset = Dataset.open(smoke_config.data.path)
    (entry,) = mlflow.get_run(outcome.run_id).inputs.dataset_inputs
    tags = {tag.key: tag.value for tag in entry.tags}
    assert tags == {"mlflow.data.context": "training", "hzexp.splits": "training,validation,test"}
    assert entry.dataset.name == dataset.path.name
    assert entry.dataset.digest == dataset.content_hash[:36]
    assert json.loads(entry.dataset.source)["uri"] == str(dataset.path.resolve())
    # runs on the same data are found by it
    found = mlflow.search_runs(filter_string=f"dataset.digest = '{entry.dataset.digest}'",
                               search_all_experiments=True)
    assert outcome.run_id in set(found["run_id"])


def test_the_run_log_holds_one_line_per_epoch(outcome):
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id,
                                               artifact_path="logs/hzexp.log")
    lines = [line for line in Path(path).read_text().splitlines() if " epoch " in line]
    assert len(lines) == outcome.result.epochs_run
    assert "epoch 1/" in lines[0] and "val_smad" in lines[0]


def test_per_galaxy_predictions_reproduce_the_logged_metrics(outcome, smoke_config):
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id,
                                               artifact_path="data/predictions_test.parquet")
    predictions = pd.read_parquet(path)
    dataset = Dataset.open(smoke_config.data.path)
    rows = outcome.result.assignment["test"]
    assert list(predictions.columns) == ["object_id", "source_id", "z_spec", "masked", "z_phot",
                                         "z_phot_mlp", "z_phot_knn"]
    np.testing.assert_array_equal(predictions["object_id"],
                                  dataset.catalogue["object_id"].to_numpy()[rows])
    assert predictions["source_id"].tolist() == predictions["object_id"].astype(str).tolist()
    np.testing.assert_allclose(predictions["z_phot"], outcome.result.predictions["test"])
    metrics = mlflow.get_run(outcome.run_id).data.metrics
    for column, prefix in (("z_phot", ""), ("z_phot_mlp", "baseline_"),
                           ("z_phot_knn", "baseline_knn_")):
        smad_dz = smad(Dz(predictions["z_spec"], predictions[column]))
        assert smad_dz == pytest.approx(metrics[f"{prefix}smad_dz"], rel=1e-9), column


def test_logged_model_predicts_in_a_new_process_what_memory_predicted(outcome, smoke_config,
                                                                      tracking_dir):
    dataset = Dataset.open(smoke_config.data.path)
    rows = outcome.result.assignment["test"]
    images, mags = dataset.read_images(rows), magnitudes(dataset, rows)
    mags[0, 5] = np.nan  # a missing NIR band must be handled inside the model
    expected = outcome.result.deployable.predict({"image": images, "mags": mags}, verbose=0)
    np.save(tracking_dir / "images.npy", images)
    np.save(tracking_dir / "mags.npy", mags)
    script = (
        "import json, sys, numpy as np, mlflow\n"
        "m = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "z = m.predict({'image': np.load('images.npy'), 'mags': np.load('mags.npy')})\n"
        "print(json.dumps(np.asarray(z, dtype=float).ravel().tolist()))\n")
    done = subprocess.run([sys.executable, "-c", script, outcome.model_uri], cwd=tracking_dir,
                          capture_output=True, text=True, check=True)
    predicted = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_array_equal(predicted.astype(np.float32), expected.ravel())
    assert np.all((predicted > 0) & (predicted < 1))
    # Same numbers as the test-set predictions used for the metrics (row 0 differs: NaN band).
    np.testing.assert_allclose(predicted[1:], outcome.result.predictions["test"][1:], atol=1e-6)


@pytest.fixture(scope="module")
def pdf_outcome(tracking_dir, smoke_pipeline):
    """The smoke training with the PDF output (pipelines/smoke_pdf.yaml's model settings)."""
    config = load_pipeline(smoke_pipeline, ["model.output=pdf", "model.pdf_bins=100",
                                            "training.epochs=3", "baselines.mlp=false"])
    return tracked_training(config, run_name="smoke-pdf-test")


def test_a_pdf_run_logs_calibrated_pdf_metrics_tables_figures_and_summaries(pdf_outcome):
    run = mlflow.get_run(pdf_outcome.run_id)
    metrics = run.data.metrics
    assert run.data.params["model.output"] == "pdf"
    for sample in ("", "clean_", "red_", "blue_", "baseline_knn_"):
        for name in ("pit_ks", "pit_cvm", "pit_ad", "pit_outlier_frac", "crps", "coverage_68",
                     "coverage_95", "cde_loss"):
            assert f"{sample}{name}" in metrics, f"{sample}{name}"
    assert 0.02 <= metrics["pdf_temperature"] <= 50
    # the temperature is fitted on validation: it brings the validation PIT nearer uniform
    assert (abs(metrics["calibration_val_coverage_68"] - 0.6827)
            <= abs(metrics["calibration_val_coverage_68_raw"] - 0.6827) + 0.05)
    assert "val_pdf_crps" in metrics and metrics["baseline_knn_pdf_kernel_width"] > 0
    assert (metrics["coverage_k"], metrics["coverage_quantile"]) == (10, 0.99)
    assert 0.9 <= metrics["in_train_coverage_frac"] <= 1.0  # test galaxies are like training
    result = pdf_outcome.result
    pdfs = result.pdfs["test"]
    np.testing.assert_allclose(pdfs.sum(axis=1), 1.0, atol=1e-9)
    path = mlflow.artifacts.download_artifacts(run_id=pdf_outcome.run_id,
                                               artifact_path="data/predictions_test.parquet")
    predictions = pd.read_parquet(path)
    assert list(predictions.columns) == ["object_id", "source_id", "z_spec", "masked", "z_phot",
                                         "z_phot_knn", "z_phot_mode", "z_phot_err",
                                         "z_phot_lo68", "z_phot_hi68"]
    assert np.all(predictions["z_phot_lo68"] <= predictions["z_phot"])
    assert np.all(predictions["z_phot"] <= predictions["z_phot_hi68"])
    # z_phot is the median of the calibrated PDF, so the point metrics keep their meaning
    smad_dz = smad(Dz(predictions["z_spec"], predictions["z_phot"]))
    assert smad_dz == pytest.approx(metrics["smad_dz"], rel=1e-6)
    coverage = np.mean((predictions["z_spec"] >= predictions["z_phot_lo68"])
                       & (predictions["z_spec"] <= predictions["z_phot_hi68"]))
    assert coverage == pytest.approx(metrics["coverage_68"], abs=1.5 / len(predictions))
    figures = {a.path for a in mlflow.MlflowClient().list_artifacts(pdf_outcome.run_id,
                                                                      "figures")}
    assert {"figures/pit_histogram.html", "figures/coverage.html",
            "figures/example_pdfs.html"} <= figures
    table = mlflow.load_table("tables/photoz_table_test.json", run_ids=[pdf_outcome.run_id])
    hybrid_all = table[(table["sample"] == "all") & (table["method"] == "Hybrid-z")].iloc[0]
    assert hybrid_all["crps"] == pytest.approx(metrics["crps"], rel=1e-9)


def test_a_logged_pdf_model_serves_its_summaries(pdf_outcome, smoke_config):
    from hzexp.evaluation.pdfs import SUMMARY_COLUMNS, PdfGrid, summaries

    model = mlflow.pyfunc.load_model(pdf_outcome.model_uri)
    outputs = model.metadata.get_output_schema().input_names()
    assert outputs == [*SUMMARY_COLUMNS, "in_train_coverage"]
    dataset = Dataset.open(smoke_config.data.path)
    rows = pdf_outcome.result.assignment["test"]
    answer = model.predict({"image": dataset.read_images(rows),
                            "mags": magnitudes(dataset, rows)})
    assert list(answer.columns) == [*SUMMARY_COLUMNS, "in_train_coverage"]
    expected = summaries(pdf_outcome.result.pdfs["test"], PdfGrid(1.0, 100))
    np.testing.assert_allclose(answer[list(SUMMARY_COLUMNS)].to_numpy(), expected.to_numpy(),
                               atol=2e-5)
    np.testing.assert_array_equal(answer["in_train_coverage"], pdf_outcome.result.coverage.flags(
        magnitudes(dataset, rows)))


def test_an_external_validation_of_a_pdf_model_logs_its_pdf_metrics(pdf_outcome,
                                                                    smoke_config):
    from hzexp.experiment import tracked_evaluation

    table = tracked_evaluation(pdf_outcome.model_uri, smoke_config.data.path, name="ext")
    assert {"crps", "coverage_68", "coverage_95"} <= set(table.columns)
    run = mlflow.search_runs(filter_string="attributes.run_name = 'evaluate-ext'",
                             search_all_experiments=True, output_format="list")[0]
    metrics = run.data.metrics
    for name in ("crps", "pit_ks", "coverage_68", "clean_crps", "cde_loss"):
        assert name in metrics, name
    hybrid = table[table["method"] == "Hybrid-z"].iloc[0]
    assert hybrid["crps"] == pytest.approx(metrics["crps"], rel=1e-9)


@pytest.fixture(scope="module")
def psf_outcome(tracking_dir, smoke_pipeline):
    """The smoke training with PSF inputs and seeing augmentation."""
    config = load_pipeline(smoke_pipeline, ["model.psf_inputs=true",
                                            "preprocess.seeing_augment=0.3", "baselines.knn=false"])
    return tracked_training(config, run_name="smoke-psf-test")


def test_a_psf_run_logs_the_bias_in_bins_of_seeing_and_serves_with_psf_inputs(psf_outcome,
                                                                               smoke_config):
    from hzexp.evaluation.seeing import seeing_bin_names

    run = mlflow.get_run(psf_outcome.run_id)
    metrics = run.data.metrics
    assert run.data.params["model.psf_inputs"] == "True"
    assert run.data.params["preprocess.seeing_augment"] == "0.3"
    for prefix in ("", "baseline_"):
        counts = [metrics[f"{prefix}seeing_r_{name}_n"] for name in seeing_bin_names()]
        assert sum(counts) == metrics["n_test"]
        assert f"{prefix}seeing_r_dz_slope" in metrics
    figures = {a.path for a in mlflow.MlflowClient().list_artifacts(psf_outcome.run_id,
                                                                      "figures")}
    assert "figures/residuals_vs_seeing.html" in figures
    model = mlflow.pyfunc.load_model(psf_outcome.model_uri)
    assert model.metadata.get_input_schema().input_names() == ["image", "mags", "psf_fwhm"]
    dataset = Dataset.open(smoke_config.data.path)
    rows = psf_outcome.result.assignment["test"]
    answer = model.predict({"image": dataset.read_images(rows), "mags": magnitudes(dataset, rows),
                            "psf_fwhm": dataset.psf_array[rows]})
    np.testing.assert_allclose(answer, psf_outcome.result.predictions["test"], atol=2e-6)
    worse = model.predict({"image": dataset.read_images(rows), "mags": magnitudes(dataset, rows),
                           "psf_fwhm": 1.5 * dataset.psf_array[rows]})
    assert not np.allclose(worse, answer, atol=1e-5)  # the model reads the seeing


def test_a_psf_model_predicts_a_catalogue_and_validates_externally(psf_outcome, smoke_config,
                                                                    tmp_path):
    from hzexp.experiment import tracked_evaluation
    from hzexp.inference import predict_catalogue

    report = predict_catalogue(smoke_config.data.path, tmp_path / "photoz.parquet",
                               model_uri=psf_outcome.model_uri, progress=False)
    catalogue = pd.read_parquet(tmp_path / "photoz.parquet")
    rows = psf_outcome.result.assignment["test"]
    assert report.n_galaxies == len(catalogue)
    np.testing.assert_allclose(catalogue["z_phot"].to_numpy()[rows],
                               psf_outcome.result.predictions["test"], atol=2e-6)
    table = tracked_evaluation(psf_outcome.model_uri, smoke_config.data.path, name="ext-psf")
    hybrid = table[table["method"] == "Hybrid-z"].iloc[0]
    run = mlflow.search_runs(filter_string="attributes.run_name = 'evaluate-ext-psf'",
                             search_all_experiments=True, output_format="list")[0]
    assert "seeing_r_dz_slope" in run.data.metrics
    assert hybrid["size"] == len(catalogue)


def test_psf_inputs_on_data_without_seeing_is_refused_naming_the_data(smoke_config, tmp_path):
    from hzexp.config import ConfigError
    from hzexp.data.store import PSF_COLUMNS, DatasetWriter
    from tests.helpers import synthetic_catalogue, synthetic_images

    config = dataclasses.replace(smoke_config, model=dataclasses.replace(smoke_config.model,
                                                                         psf_inputs=True))
    out = tmp_path / "no-seeing"
    with DatasetWriter(out, 48, {}) as writer:
        writer.append(synthetic_catalogue(60).drop(columns=list(PSF_COLUMNS)),
                      synthetic_images(60))
    with pytest.raises(ConfigError, match=r"model.psf_inputs = True: .*no-seeing has no seeing "
                                          r"in psf_fwhm_u, psf_fwhm_g"):
        train(config, Dataset.open(out))


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("simulated crash mid-training")


def test_learning_rate_drops_after_each_epoch_without_a_better_validation_loss(smoke_config):
    """The schedule follows val_loss exactly: factor 0.5 after 1 epoch without improvement,
    however small the Huber loss values are (no Keras min_delta threshold)."""
    training = dataclasses.replace(smoke_config.training, epochs=4, patience=4,
                                   lr_schedule="plateau", lr_decay_patience=1,
                                   lr_decay_factor=0.5)
    history = train(dataclasses.replace(smoke_config, training=training),
                    Dataset.open(smoke_config.data.path)).history
    expected, rate, best = [], training.learning_rate, np.inf
    for val_loss in history["val_loss"]:
        expected.append(rate)  # Keras logs the rate the epoch was trained with
        if val_loss < best:
            best = val_loss
        else:
            rate *= 0.5
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-6)


def test_cosine_learning_rate_falls_from_the_initial_rate_to_the_floor(smoke_config):
    """Half a cosine over the epochs, whatever the validation loss: the first epoch trains
    at learning_rate, the middle one halfway to the floor, the last one at the floor."""
    training = dataclasses.replace(smoke_config.training, epochs=5, patience=5,
                                   lr_schedule="cosine", lr_floor=0.1)
    history = train(dataclasses.replace(smoke_config, training=training),
                    Dataset.open(smoke_config.data.path)).history
    start, floor = training.learning_rate, 0.1 * training.learning_rate
    cosines = np.array([1, np.sqrt(0.5), 0, -np.sqrt(0.5), -1])  # cos(pi * epoch / 4)
    np.testing.assert_allclose(history["learning_rate"],
                               floor + (start - floor) * (1 + cosines) / 2, rtol=1e-6)


def test_crash_mid_training_marks_the_run_failed(smoke_config):
    with pytest.raises(RuntimeError, match="simulated crash"):
        tracked_training(smoke_config, run_name="crash", callbacks=[_Crash()])
    runs = mlflow.search_runs(filter_string="attributes.run_name = 'crash'", output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_cli_rejects_a_bad_pipeline_before_training(capsys):
    assert main(["train", "--pipeline", str(SMOKE), "--set", "model.depth=7"]) == 2
    err = capsys.readouterr().err
    assert "model.depth = 7: must be 3, 4 or 5" in err and "smoke.yaml" in err


@pytest.mark.slow
def test_kfold_logs_nested_folds_and_their_spread(smoke_config):
    from hzexp.experiment import tracked_kfold

    summary = tracked_kfold(smoke_config, 3, run_name="kfold-test")
    parent = mlflow.search_runs(filter_string="attributes.run_name = 'kfold-test'",
                                output_format="list")[0]
    folds = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                               output_format="list")
    assert sorted(r.info.run_name for r in folds) == ["fold-0", "fold-1", "fold-2"]
    smads = [r.data.metrics["smad_dz"] for r in folds]
    assert parent.data.metrics["kfold_mean_smad_dz"] == pytest.approx(np.mean(smads))
    assert parent.data.metrics["kfold_std_smad_dz"] == pytest.approx(np.std(smads, ddof=1))
    assert summary["kfold_mean_n_test"] == pytest.approx(80)  # 240 galaxies / 3 folds


def test_nz_smoothing_option_logs_kept_fraction_and_figure(smoke_config):
    import dataclasses

    config = dataclasses.replace(smoke_config,
                                 split=dataclasses.replace(smoke_config.split,
                                                           smooth_train_nz=True))
    outcome = tracked_training(config, run_name="smoothed")
    kept = outcome.metrics["nz_kept_fraction"]
    assert 0 < kept <= 1
    assert len(outcome.result.assignment["train"]) == round(kept * 168)  # 70% of 240
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(outcome.run_id, "figures")}
    assert "figures/nz_smoothing.html" in artifacts


@pytest.mark.slow
def test_under_mlflow_run_the_project_run_is_the_training_run(smoke_config, monkeypatch):
    """`mlflow run` creates the run (in its own experiment) and passes MLFLOW_RUN_ID."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("project-runs")
    project_run = client.create_run(experiment)
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run.info.run_id)
    outcome = tracked_training(smoke_config, run_name="under-mlflow-run")
    assert outcome.run_id == project_run.info.run_id
    run = mlflow.get_run(project_run.info.run_id)
    assert run.info.experiment_id == experiment and "smad_dz" in run.data.metrics


def readme_search_options() -> list[str]:
    """The options of the README's main command, `mlflow run . -e search ...`."""
    line = next(line for line in (REPO / "README.md").read_text().splitlines()
                if "mlflow run . -e search" in line)
    words = shlex.split(line.split("&&")[-1])
    return words[words.index("search") + 1:]


def test_the_readmes_main_command_names_the_hybrid_z_experiment():
    options = readme_search_options()
    assert options[options.index("--experiment-name") + 1] == "hybrid-z"
    assert options[options.index("--env-manager") + 1] == "local"


@pytest.mark.slow
def test_mlflow_run_with_the_readmes_options_files_the_run_in_hybrid_z(smoke_pipeline,
                                                                        tmp_path, monkeypatch):
    """A real `mlflow run` of the train entry point, with the main command's options."""
    use_private_tracking(monkeypatch, tmp_path)
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bin_dir / "mlflow"), "run", str(REPO), "-e", "train", *readme_search_options(),
         "-P", f"pipeline={smoke_pipeline}",
         "-P", "overrides=training.epochs=1 baselines.mlp=false baselines.knn=false"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_EXPERIMENT")
                and k != "MLFLOW_RUN_ID"},
             "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["hybrid-z"], output_format="list")
    assert "smad_dz" in run.data.metrics  # the project run is the training run
    assert run.data.tags.get("mlflow.project.entryPoint") == "train"
    assert not mlflow.search_runs(experiment_ids=["0"], output_format="list")
