"""The logged Hybrid-z model: its signature, the serving pyfunc, and the baseline model.

A logged model is loaded by MLflow from `resources/pyfunc_model.py` (models from code),
which imports `hzexp.tracking.HybridZPyfunc`: that import path is a compatibility promise
to every model already registered, as is `BASELINE_TRUSTED_TYPES` for the baselines.

A logged model is self-contained: it carries a copy of the hzexp package it was trained
with (MLflow `code_paths`, put first on `sys.path` when the model loads in a fresh process)
and pins hzexp's own runtime dependencies, all resolvable from a package index, so it
loads and serves without this repository or an hzexp install.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import requires, version
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from packaging.requirements import Requirement

from hzexp.data.store import IMAGE_BANDS, MAG_COLUMNS, PSF_COLUMNS, PSF_INPUT, physical_magnitudes
from hzexp.evaluation.novelty import COVERAGE_COLUMN, TrainingCoverage
from hzexp.evaluation.pdfs import SUMMARY_COLUMNS, PdfGrid, summaries

if TYPE_CHECKING:  # Keras is imported where a model is loaded or logged: a cluster's
    import keras  # driver, which does neither, then never starts TensorFlow

MODEL_ARTIFACT = "model"
KERAS_FILE = "hybrid_z.keras"
COVERAGE_ARTIFACT = "train_coverage"
PACKAGE_DIR = Path(__file__).parents[1]
PYFUNC_ENTRY = PACKAGE_DIR / "resources" / "pyfunc_model.py"


def model_signature(stored_size: int, pdf: bool = False, coverage: bool = False,
                    psf: bool = False) -> ModelSignature:
    """Named signature on raw dataset rows: uncropped images and raw magnitudes, and for a
    model with PSF inputs (`psf`) the u,g,r,i PSF FWHMs in arcsec as `psf_fwhm`.
    The output is `z_phot`, or for a PDF model a table of its summaries (`SUMMARY_COLUMNS`)
    and, with the training-coverage flag, `COVERAGE_COLUMN`."""
    inputs = [
        TensorSpec(np.dtype(np.float32), (-1, stored_size, stored_size, len(IMAGE_BANDS)), "image"),
        TensorSpec(np.dtype(np.float32), (-1, len(MAG_COLUMNS)), "mags"),
    ]
    if psf:
        inputs.append(TensorSpec(np.dtype(np.float32), (-1, len(PSF_COLUMNS)), PSF_INPUT))
    columns = [ColSpec("float", name) for name in SUMMARY_COLUMNS]
    if coverage:
        columns.append(ColSpec("boolean", COVERAGE_COLUMN))
    outputs = (Schema(columns) if pdf
               else Schema([TensorSpec(np.dtype(np.float32), (-1,), "z_phot")]))
    return ModelSignature(inputs=Schema(inputs), outputs=outputs)


def pdf_grid_of(model: keras.Model) -> PdfGrid | None:
    """The redshift grid of a deployable PDF model (its `CalibratedPdf` output carries
    z_max, its width the number of bins); None for a point model."""
    from hzexp.model.pdf import CalibratedPdf

    layer = model.layers[-1]
    if not isinstance(layer, CalibratedPdf):
        return None
    return PdfGrid(layer.z_max, int(model.output.shape[-1]))


class HybridZPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc over the deployable Keras model (crop, normalisation and scaler inside).

    A thin wrapper rather than the keras flavour, so that loading imports hzexp's custom
    layers first, and predictions go in bounded batches whatever the request size.
    """

    batch_size = 1024

    def load_context(self, context) -> None:
        import keras

        from hzexp.model.export import takes_psf  # hzexp.model registers the custom layers

        self.model = keras.saving.load_model(context.artifacts["keras_model"])
        self.pdf_grid = pdf_grid_of(self.model)
        self.takes_psf = takes_psf(self.model)
        self.coverage = (TrainingCoverage.load(context.artifacts[COVERAGE_ARTIFACT])
                         if COVERAGE_ARTIFACT in context.artifacts else None)

    def predict(self, context, model_input, params=None) -> np.ndarray | pd.DataFrame:
        """z_phot of raw rows, or for a PDF model a DataFrame of its summaries
        (`SUMMARY_COLUMNS`, z_phot the median); magnitudes outside the physical range (KiDS
        99 / -99) are missing, as in the dataset reader, so a REST client gets the
        catalogue's answer. A model with PSF inputs reads them from `psf_fwhm`."""
        psf = model_input[PSF_INPUT] if self.takes_psf else None
        output = self.predict_output(model_input["image"], model_input["mags"], psf)
        if self.pdf_grid is None:
            return output.reshape(-1)
        return self.with_coverage(summaries(output, self.pdf_grid), model_input["mags"])

    def with_coverage(self, estimates: pd.DataFrame, mags) -> pd.DataFrame:
        """`estimates` with each galaxy's `COVERAGE_COLUMN`, when the model has the flag."""
        if self.coverage is None:
            return estimates
        return estimates.assign(**{COVERAGE_COLUMN: self.coverage.flags(
            physical_magnitudes(mags))})

    def predict_output(self, images, mags, psf=None) -> np.ndarray:
        """The network's float32 output for raw rows: (N, 1) z_phot or (N, bins) PDFs.
        `psf` (N, 4 arcsec) feeds a model with PSF inputs; None there means unknown seeing
        (NaN, filled by the model with the training median, like a missing magnitude)."""
        images = np.asarray(images, dtype=np.float32)
        inputs = {"image": images, "mags": physical_magnitudes(mags)}
        if self.takes_psf:
            inputs[PSF_INPUT] = (np.full((len(images), len(PSF_COLUMNS)), np.nan, np.float32)
                                 if psf is None else np.asarray(psf, dtype=np.float32))
        out = [self.model.predict_on_batch({k: v[i:i + self.batch_size] for k, v in inputs.items()})
               for i in range(0, len(images), self.batch_size)]
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in out])


def model_requirements() -> list[str]:
    """pip requirements of a logged model: hzexp's runtime dependencies (those without an
    extra's marker) pinned to the versions installed now, so an environment manager
    rebuilds what the model was trained with. hzexp itself is not among them: the model
    carries its code, and no package index has hzexp."""
    pins = []
    for line in requires("hzexp") or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            pins.append(f"{requirement.name}{extras}=={version(requirement.name)}")
    return pins


def _package_copy(directory: Path) -> Path:
    """The hzexp package as the model carries it (sources, without bytecode caches)."""
    return Path(shutil.copytree(PACKAGE_DIR, directory / "hzexp",
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc")))


def log_deployable_model(deployable: keras.Model, stored_size: int,
                         coverage: TrainingCoverage | None = None) -> str:
    """Log the deployable model, with hzexp's code and pinned requirements (and a PDF
    model's training-coverage flag), under the active run; returns its `runs:/` URI."""
    from hzexp.model.export import takes_psf

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {"keras_model": str(Path(tmp) / KERAS_FILE)}
        deployable.save(artifacts["keras_model"])
        if coverage is not None:
            artifacts[COVERAGE_ARTIFACT] = str(Path(tmp) / "train_coverage.npz")
            coverage.save(Path(artifacts[COVERAGE_ARTIFACT]))
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT, python_model=str(PYFUNC_ENTRY), artifacts=artifacts,
            code_paths=[str(_package_copy(Path(tmp)))],
            signature=model_signature(stored_size, pdf=pdf_grid_of(deployable) is not None,
                                      coverage=coverage is not None,
                                      psf=takes_psf(deployable)),
            pip_requirements=model_requirements())
    return info.model_uri


BASELINE_ARTIFACT = "baseline_mlp"
BASELINE_URI_TAG = "baseline_model_uri"
# skops (MLflow's safe sklearn format) loads only listed types beyond sklearn's own.
BASELINE_TRUSTED_TYPES = ["hzexp.evaluation.baselines.magnitude_features", "numpy.dtype",
                          "sklearn.neural_network._stochastic_optimizers.AdamOptimizer"]


def log_baseline_model(model) -> str:
    """The magnitude-only MLP baseline (a scikit-learn pipeline on raw magnitudes), so an
    external validation can compare against the baseline of the same run. It carries hzexp's
    code like the Hybrid-z model: its pipeline calls `magnitude_features`."""
    with tempfile.TemporaryDirectory() as tmp:
        info = mlflow.sklearn.log_model(model, name=BASELINE_ARTIFACT,
                                        skops_trusted_types=BASELINE_TRUSTED_TYPES,
                                        code_paths=[str(_package_copy(Path(tmp)))],
                                        pip_requirements=model_requirements())
    mlflow.set_tag(BASELINE_URI_TAG, info.model_uri)
    return info.model_uri


def load_pyfunc(model_uri: str):
    """Load a logged or registered Hybrid-z model (`runs:/...`, `models:/hybrid-z@champion`)."""
    return mlflow.pyfunc.load_model(model_uri)


def load_hybrid_z_pyfunc(model_uri: str) -> HybridZPyfunc:
    """The `HybridZPyfunc` inside a logged model: its Keras model is `.model`, and its
    `predict` is the code path `mlflow models serve` runs."""
    return load_pyfunc(model_uri).unwrap_python_model()
