"""Real-data path end to end: KiDS-like tiles -> ingest -> train -> evaluate -> predict.

The smoke mock's stamps are pasted into two bands-complete FITS tiles with a real TAN WCS,
with a KiDS-Bright catalogue (KiDS column names) and a GAMA-like spec-z catalogue, so the
ingested cutouts must reproduce the mock stamps pixel for pixel.
"""

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from hzexp.cli import main
from hzexp.config import load_pipeline
from hzexp.data.kids.ids import KIDS_ID_FILE
from hzexp.data.store import MAG_BANDS, Dataset
from hzexp.inference import read_predictions
from tests.helpers import REPO

SPACING = 60  # px between stamp centres
STAMP = 48


def tile_wcs(n_side: int) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [180.0, 0.5]
    wcs.wcs.crpix = [n_side / 2 + 0.5, n_side / 2 + 0.5]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return wcs


def write_field(root, dataset: Dataset):
    """One tile holding every mock stamp on a grid, and the matching catalogues."""
    n = len(dataset)
    per_row = int(np.ceil(np.sqrt(n)))
    side = SPACING * per_row + SPACING
    wcs = tile_wcs(side)
    images = dataset.read_images(np.arange(n))
    planes = np.zeros((4, side, side), dtype=np.float32)
    centres = []
    for k in range(n):
        cy, cx = SPACING * (1 + k // per_row), SPACING * (1 + k % per_row)
        planes[:, cy - STAMP // 2:cy + STAMP // 2, cx - STAMP // 2:cx + STAMP // 2] = \
            np.moveaxis(images[k], -1, 0)
        centres.append((cx - 0.5, cy - 0.5))  # stamp centre between pixels, 0-based
    tiles = root / "tiles"
    tiles.mkdir()
    for b, band in enumerate("ugri"):
        fits.PrimaryHDU(planes[b], wcs.to_header()).writeto(
            tiles / f"KiDS_DR4.0_180.0_0.5_{band}_sci.fits")
    ra, dec = wcs.pixel_to_world_values(*np.array(centres).T)
    cat = dataset.catalogue
    photometry = Table({"ID": [f"KIDS J{k:06d}" for k in range(n)], "RAJ2000": ra,
                        "DECJ2000": dec, "MAG_AUTO": cat["mag_r_auto"].to_numpy(),
                        "MASK": np.where(cat["masked"], 4, 0).astype(np.int32),
                        "CLASS_STAR": np.full(n, 0.02), "SG2DPHOT": np.zeros(n, np.int16),
                        "SG_FLAG": np.ones(n, np.int16), "IMAFLAGS_ISO": np.zeros(n, np.int16)})
    for band in MAG_BANDS:
        photometry[f"MAG_GAAP_{band}"] = cat[f"mag_{band}"].fillna(99.0).to_numpy()
        photometry[f"MAGERR_GAAP_{band}"] = cat[f"magerr_{band}"].fillna(99.0).to_numpy()
    photometry.write(root / "kids_bright.fits")
    Table({"RA": ra, "DEC": dec, "Z": cat["z_spec"].to_numpy(), "NQ": np.full(n, 4)}
          ).write(root / "gama.fits")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, smoke_pipeline):
    root = tmp_path_factory.mktemp("field")
    mock = Dataset.open(load_pipeline(smoke_pipeline).data.path)
    write_field(root, mock)
    out = root / "ingested"
    assert main(["ingest", "--tiles", str(root / "tiles"), "--photometry",
                 str(root / "kids_bright.fits"), "--spec", str(root / "gama.fits"),
                 "--out", str(out)]) == 0
    return mock, Dataset.open(out), root


def test_ingested_cutouts_reproduce_the_pasted_stamps(ingested):
    mock, real, _ = ingested
    assert len(real) == len(mock) and real.labelled
    # Galaxies come back in the catalogue order of the photometry file.
    np.testing.assert_allclose(real.catalogue["z_spec"], mock.catalogue["z_spec"])
    np.testing.assert_array_equal(real.read_images(np.arange(5)), mock.read_images(np.arange(5)))
    np.testing.assert_array_equal(real.catalogue["masked"], mock.catalogue["masked"])


def test_train_then_evaluate_on_ingested_data(ingested, tracking_env):
    _, real, root = ingested
    data = yaml.safe_load((REPO / "pipelines" / "smoke.yaml").read_text())
    data["data"] = {"source": "directory", "path": str(real.path)}
    pipeline = tracking_env / "ingested.yaml"
    pipeline.write_text(yaml.safe_dump(data))
    assert main(["train", "--pipeline", str(pipeline), "--run-name", "on-ingested"]) == 0
    run = mlflow.search_runs(filter_string="attributes.run_name = 'on-ingested'",
                             output_format="list")[0]
    assert run.data.tags["dataset_hash"] == real.content_hash
    logged = mlflow.search_logged_models(filter_string=f"source_run_id = '{run.info.run_id}'",
                                         output_format="list")
    model_uri = next(m.model_uri for m in logged if m.name == "model")
    out = tracking_env / "table2.csv"
    assert main(["evaluate", "--model-uri", model_uri, "--data", str(real.path),
                 "--name", "ingested-field", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["method"]) == ["Hybrid-z", "MLP baseline (magnitudes)"]
    assert set(table["sample"]) == {"ingested-field"} and (table["size"] == len(real)).all()
    evaluation = mlflow.search_runs(filter_string="attributes.run_name = 'evaluate-ingested-field'",
                                    output_format="list")[0]
    assert evaluation.data.tags["evaluated_model_run_id"] == run.info.run_id
    assert "baseline_smad_dz" in evaluation.data.metrics
    # the training and the evaluation name the same dataset input, in their own contexts
    (trained_on,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    (evaluated_on,) = mlflow.get_run(evaluation.info.run_id).inputs.dataset_inputs
    assert trained_on.dataset.digest == evaluated_on.dataset.digest == real.content_hash[:36]
    assert {t.key: t.value for t in evaluated_on.tags}["mlflow.data.context"] == "evaluation"

    catalogue = tracking_env / "photoz.fits"
    assert main(["predict", "--data", str(real.path), "--out", str(catalogue), "--model-uri",
                 model_uri, "--no-progress"]) == 0
    predicted, metadata = read_predictions(catalogue)
    assert predicted["object_id"].tolist() == real.catalogue["object_id"].tolist()
    kids_ids = pd.read_parquet(real.path / KIDS_ID_FILE)  # the KiDS IDs come back
    assert predicted["source_id"].tolist() == kids_ids["kids_id"].tolist()
    assert predicted["source_id"].str.startswith("KIDS J").all()  # not the hashed object_id
    assert ((predicted["z_phot"] > 0) & (predicted["z_phot"] < 1)).all()
    assert metadata["dataset_hash"] == real.content_hash
