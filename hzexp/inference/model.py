"""The model a prediction uses: looked up in the registry, pinned, and checked against data.

An alias such as `champion` can move while a long prediction runs or between a run and its
resume, so the URI is resolved once to a registered version and that version is loaded.
Predictions go through `HybridZPyfunc.predict`, the code `mlflow models serve` runs, so the
REST endpoint and a catalogue run cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hzexp import tracking
from hzexp.evaluation.pdfs import PdfGrid, summaries
from hzexp.inference.errors import PredictionError
from hzexp.inference.stream import Chunk


@dataclass(frozen=True)
class ModelFacts:
    """What a prediction must know of its model without running it: the pinned source, the
    stamp size its `image` input takes (the training set's stored size), the cutout its
    `CentreCrop` layer takes from that, and a PDF model's redshift grid (None: point).

    A Dask cluster's driver holds only these (its workers load the model), so it never
    starts TensorFlow; an in-process prediction holds the loaded `PredictionModel`.
    """

    source: tracking.ModelSource
    stored_size: int
    cutout: int
    pdf_grid: PdfGrid | None

    @property
    def pinned_uri(self) -> str:
        return pinned_uri(self.source)

    @property
    def label(self) -> str:
        if self.source.name:
            return f"{self.source.name} v{self.source.version}"
        return self.source.uri

    def check_stamps(self, stamp_size: int, where: str) -> None:
        """Refuse stamps that do not contain the model's cutout."""
        if stamp_size < self.cutout:
            raise PredictionError(
                f"{where}: images are {stamp_size} px but model {self.label} "
                f"({self.source.uri}) crops {self.cutout} px cutouts from them")


@dataclass(frozen=True)
class PredictionModel(ModelFacts):
    """A loaded Hybrid-z model: its facts and the pyfunc that predicts."""

    pyfunc: tracking.HybridZPyfunc

    @property
    def facts(self) -> ModelFacts:
        return ModelFacts(self.source, self.stored_size, self.cutout, self.pdf_grid)

    def predict(self, images: np.ndarray, mags: np.ndarray, batch_size: int,
                psf: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray | None]:
        """float32 estimates for raw stamps of any size >= the cutout, raw magnitudes (and
        PSF FWHMs, which a model with PSF inputs uses):
        `z_phot`, or a PDF model's `SUMMARY_COLUMNS` (and `in_train_coverage`) and its
        (N, bins) PDFs (else None).
        The summaries are those `HybridZPyfunc.predict` (the REST answer) gives."""
        self.pyfunc.batch_size = batch_size
        output = self.pyfunc.predict_output(self.to_model_frame(images), mags, psf)
        if self.pdf_grid is None:
            return pd.DataFrame({"z_phot": output.reshape(-1)}), None
        return self.pyfunc.with_coverage(summaries(output, self.pdf_grid), mags), output

    def predict_chunk(self, chunk: Chunk, batch_size: int) -> tuple[pd.DataFrame, np.ndarray]:
        """A chunk's part of the catalogue (`object_id, ra, dec` and the estimates) and its
        PDFs (None for a point model)."""
        estimates, pdfs = self.predict(chunk.images, chunk.mags, batch_size, chunk.psf)
        frame = chunk.rows.loc[:, ["object_id", "ra", "dec"]].assign(
            **{c: estimates[c].to_numpy() for c in estimates})
        return frame, pdfs

    def to_model_frame(self, images: np.ndarray) -> np.ndarray:
        """Stamps of another stored size put on the model's input grid, crop unchanged.

        The model only ever looks at its centre `cutout` px, so the dataset's centre cutout
        is placed where the model's `CentreCrop` will take it from, in a zero frame (the
        frame is cropped away before normalisation). This lets a model trained on 48 px
        mock stamps predict the official table's 36 px stamps when its cutout is <= 36.
        """
        size = images.shape[1]
        if size == self.stored_size:
            return images
        from hzexp.model.preprocessing import centre_crop  # Keras: loaded with the model

        framed = np.zeros((len(images), self.stored_size, self.stored_size, images.shape[3]),
                          dtype=np.float32)
        start = (self.stored_size - self.cutout) // 2
        framed[:, start:start + self.cutout, start:start + self.cutout] = np.asarray(
            centre_crop(images, self.cutout))
        return framed


def pinned_uri(source: tracking.ModelSource) -> str:
    """`models:/<name>/<version>` for a registered model, else the URI as given."""
    if source.name and source.version:
        return f"models:/{source.name}/{source.version}"
    return source.uri


def lookup_source(model_uri: str) -> tracking.ModelSource:
    """`tracking.lookup_model`, its one-line failures raised as `PredictionError`."""
    try:
        return tracking.lookup_model(model_uri)
    except tracking.ModelLookupError as err:
        raise PredictionError(str(err)) from None


def load_prediction_model(model_uri: str) -> PredictionModel:
    """Resolve `model_uri` to a pinned version and load it; `PredictionError` if absent."""
    from hzexp.model.preprocessing import CentreCrop

    source = lookup_source(model_uri)
    try:
        pyfunc = tracking.load_hybrid_z_pyfunc(pinned_uri(source))
    except OSError as err:
        raise PredictionError(f"model {model_uri}: cannot be loaded ({err})") from None
    keras_model = pyfunc.model
    crops = [layer.cutout for layer in keras_model.layers if isinstance(layer, CentreCrop)]
    if len(crops) != 1:
        raise PredictionError(f"model {model_uri}: expected one CentreCrop layer (an "
                              f"exported Hybrid-z model), found {len(crops)}")
    image_input = next(t for t in keras_model.inputs if t.name == "image")
    return PredictionModel(source=source, stored_size=int(image_input.shape[1]),
                           cutout=crops[0], pdf_grid=pyfunc.pdf_grid, pyfunc=pyfunc)
