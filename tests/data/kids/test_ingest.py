"""End-to-end KiDS ingestion on the small faithful scenario of `kids_fixtures`."""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from hzexp.data.kids import ingest
from hzexp.data.kids.ids import KIDS_ID_FILE, kids_object_ids
from hzexp.data.kids.tiles import assign_to_tiles, discover_tiles
from hzexp.data.store import IMAGE_BANDS, MANIFEST_FILE, PSF_COLUMNS, Dataset, DatasetError
from tests.helpers.kids_fixtures import (
    BAND_CRPIX_SHIFT,
    BAND_FLUX_FACTOR,
    BLENDED,
    EXPECTED_LABELLED,
    SOURCE_BY_NAME,
    SOURCES,
    TILE_A_CENTRE,
    TILE_B_CENTRE,
    TILE_PSF_FWHM,
    build_scenario,
    kids_id,
    photometry_table,
    spectra_table,
    tan_wcs,
)

CUTOUT = 48
TILE_CENTRES = {"A": TILE_A_CENTRE, "B": TILE_B_CENTRE}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    return build_scenario(tmp_path_factory.mktemp("kids"))


@pytest.fixture(scope="module")
def labelled(scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "labelled"
    report = ingest(scenario.tiles_dir, scenario.photometry, out, spec_file=scenario.spectra,
                    column_map={"galaxy_type": "RED_SEQUENCE"}, chunk_size=4, progress=False)
    return report, Dataset.open(out)


def names_of(dataset: Dataset) -> list[str]:
    """Scenario names of the dataset's rows, through the KiDS ID side table."""
    ids = pd.read_parquet(dataset.path / KIDS_ID_FILE).set_index("object_id")["kids_id"]
    by_kids_id = {kids_id(s): s.name for s in SOURCES}
    return [by_kids_id[ids[o]] for o in dataset.catalogue["object_id"]]


def test_selection_and_match_counts_are_exact(labelled):
    report, dataset = labelled
    assert report.photometry_rows == 20
    assert report.failed_criterion == {"MAG_AUTO<20": 1, "CLASS_STAR<0.5": 1, "SG2DPHOT=0": 1,
                                       "SG_FLAG=1": 2, "IMAFLAGS_ISO=0": 1}
    assert (report.selected, report.selected_masked) == (15, 1)
    assert (report.spectra_read, report.spectra_low_quality, report.spectra_z_too_low,
            report.spectra_z_outside_contract, report.spectra_usable) == (16, 1, 1, 1, 13)
    assert (report.matched, report.lost_to_nearer, report.unmatched_dropped) == (11, 1, 4)
    assert (report.tiles, report.outside_tiles, report.off_edge) == (2, 1, 1)
    assert (report.written, report.written_masked, report.nonfinite_pixels) == (9, 1, 0)
    assert len(dataset) == 9 and dataset.labelled


def test_written_rows_carry_the_right_labels_and_flags(labelled):
    _, dataset = labelled
    catalogue = dataset.catalogue.assign(name=names_of(dataset)).set_index("name")
    assert set(catalogue.index) == set(EXPECTED_LABELLED)
    z = catalogue["z_spec"]
    assert all(z[name] == pytest.approx(expected) for name, expected in EXPECTED_LABELLED.items())
    assert catalogue.index[catalogue["masked"]].tolist() == ["masked_ne"]    # MASK=2 not a bit
    assert catalogue["galaxy_type"].to_dict() == {
        name: "red" if SOURCE_BY_NAME[name].red else "blue" for name in catalogue.index}
    mag99 = catalogue.loc["mag99"]
    assert np.isnan([mag99.mag_u, mag99.magerr_u, mag99.mag_Ks, mag99.magerr_Ks]).all()
    assert np.isfinite(catalogue.drop(index="mag99")[["mag_u", "magerr_u", "mag_Ks"]]).all().all()
    assert mag99.mag_g == pytest.approx(18.6) and mag99.magerr_g == pytest.approx(0.021)
    kids_ids = pd.read_parquet(dataset.path / KIDS_ID_FILE)
    np.testing.assert_array_equal(kids_object_ids(kids_ids["kids_id"]), kids_ids["object_id"])


def band_pixel_position(name: str, band: str, tile: str) -> tuple[float, float]:
    """Where the galaxy sits in that band image of its tile (the scenario's own WCS)."""
    wcs = tan_wcs(*TILE_CENTRES[tile], BAND_CRPIX_SHIFT[band])
    x, y = wcs.world_to_pixel_values(*SOURCE_BY_NAME[name].radec)
    return float(x), float(y)


def moments(image: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Light centroid (x = axis 1, y = axis 0) and the 2x2 second-moment matrix in (x, y)."""
    y, x = np.mgrid[:image.shape[0], :image.shape[1]]
    total = image.sum()
    xc, yc = (image * x).sum() / total, (image * y).sum() / total
    dx, dy = x - xc, y - yc
    second = np.array([[(image * dx * dx).sum(), (image * dx * dy).sum()],
                       [(image * dx * dy).sum(), (image * dy * dy).sum()]]) / total
    return xc, yc, second


def test_cutouts_are_centred_on_the_galaxy_in_every_band(labelled):
    _, dataset = labelled
    images = dataset.read_images(np.arange(len(dataset)))
    centre = (CUTOUT - 1) / 2
    for row, name in enumerate(names_of(dataset)):
        if name in BLENDED:
            continue
        for b, band in enumerate(IMAGE_BANDS):
            xc, yc, _ = moments(images[row, :, :, b])
            assert abs(xc - centre) <= 0.5 and abs(yc - centre) <= 0.5, (name, band)
            # the exact sub-pixel position, from this band's own WCS (bands are shifted)
            x, y = band_pixel_position(name, band, SOURCE_BY_NAME[name].tile)
            expected = (x - np.ceil(x - CUTOUT / 2), y - np.ceil(y - CUTOUT / 2))
            assert (xc, yc) == pytest.approx(expected, abs=0.05), (name, band)


def test_band_order_is_u_g_r_i(labelled):
    _, dataset = labelled
    images = dataset.read_images(np.arange(len(dataset)))
    flux = images.sum(axis=(1, 2))
    expected = np.array([BAND_FLUX_FACTOR[b] for b in IMAGE_BANDS]) / BAND_FLUX_FACTOR["r"]
    np.testing.assert_allclose(flux / flux[:, [2]], np.broadcast_to(expected, flux.shape),
                               rtol=0.02)


@pytest.mark.parametrize("name", ["along_ra", "along_dec", "masked_ne"])
def test_orientation_follows_the_tile_wcs(labelled, name):
    """The major axis in the cutout points where the WCS maps the galaxy's sky major axis.

    Convention: cutout axis 1 is the tile's x, axis 0 its y (no resampling or flipping);
    KiDS tiles are north up, east left, so an RA-elongated galaxy is elongated along x.
    """
    _, dataset = labelled
    row = names_of(dataset).index(name)
    source = SOURCE_BY_NAME[name]
    image = dataset.read_images(np.array([row]))[0, :, :, 2]
    _, _, second = moments(image)
    eigenvalues, eigenvectors = np.linalg.eigh(second)
    major = eigenvectors[:, 1]
    wcs = tan_wcs(*TILE_CENTRES[source.tile], BAND_CRPIX_SHIFT["r"])
    ra, dec = source.radec
    step = 1.0 / 3600
    pa = np.radians(source.pa)
    x0, y0 = wcs.world_to_pixel_values(ra, dec)
    x1, y1 = wcs.world_to_pixel_values(ra + step * np.sin(pa) / np.cos(np.radians(dec)),
                                       dec + step * np.cos(pa))
    sky_major = np.array([x1 - x0, y1 - y0]) / np.hypot(x1 - x0, y1 - y0)
    assert abs(major @ sky_major) > 0.99
    assert eigenvalues[1] > 2 * eigenvalues[0]
    if name == "along_ra":
        assert second[0, 0] > 2 * second[1, 1]          # elongated along x (axis 1)
    if name == "masked_ne":
        assert second[0, 1] < 0                          # NE = up-left when east is left


def test_overlapping_tiles_take_the_galaxy_farthest_from_their_edge(scenario):
    tiles = discover_tiles(scenario.tiles_dir)
    assert [t.name for t in tiles] == ["KIDS_130.017_0.5", "KiDS_DR4.0_130.0_0.5_sci"]
    tile_letter = {"KIDS_130.017_0.5": "B", "KiDS_DR4.0_130.0_0.5_sci": "A"}
    names = ["overlap_to_b", "overlap_to_a", "only_b", "along_ra", "edge", "outside"]
    ra, dec = np.array([SOURCE_BY_NAME[n].radec for n in names]).T
    assignment = assign_to_tiles(tiles, ra, dec, CUTOUT)
    chosen = [tile_letter[tiles[i].name] if i >= 0 else None for i in assignment.tile]
    assert chosen == ["B", "A", "B", "A", "A", None]
    assert assignment.fits_fully.tolist() == [True, True, True, True, False, False]


def test_manifest_records_inputs_with_checksums_and_counts(labelled, scenario):
    report, dataset = labelled
    provenance = json.loads((dataset.path / MANIFEST_FILE).read_text())["provenance"]
    inputs = provenance["inputs"]
    files = [entry for bands in inputs["tiles"].values() for entry in bands.values()]
    files += [inputs["photometry"], inputs["spectroscopy"]]
    assert len(files) == 10
    for entry in files:
        with open(entry["file"], "rb") as stream:
            assert entry["sha256"] == hashlib.sha256(stream.read()).hexdigest()
    assert not any("_wei" in entry["file"] for entry in files)
    assert inputs["photometry"]["file"] == str(scenario.photometry.resolve())
    assert provenance["counts"] == report.as_dict()
    assert provenance["summary"] == report.summary()
    assert provenance["parameters"]["match_radius_arcsec"] == 1.0
    assert "RA runs along axis 1" in provenance["image_orientation"]


def test_unlabelled_ingestion_keeps_every_selected_galaxy_with_null_z(scenario, tmp_path):
    renamed = tmp_path / "kids_bright.parquet"
    photometry_table({"MAG_AUTO": "MAG_AUTO_CALIB"}).to_pandas().to_parquet(renamed)
    report = ingest(scenario.tiles_dir, renamed, tmp_path / "ds",
                    column_map={"MAG_AUTO": "MAG_AUTO_CALIB"}, progress=False)
    dataset = Dataset.open(tmp_path / "ds")
    assert report.matched is None and (report.selected, report.written) == (15, 13)
    assert dataset.catalogue["z_spec"].isna().all() and not dataset.labelled
    assert dataset.catalogue["galaxy_type"].isna().all()
    assert "edge" not in names_of(dataset) and "pair_far" in names_of(dataset)


def test_pad_policy_keeps_edge_galaxies_zero_padded_and_masked(scenario, tmp_path):
    report = ingest(scenario.tiles_dir, scenario.photometry, tmp_path / "ds",
                    edge_policy="pad", progress=False)
    dataset = Dataset.open(tmp_path / "ds")
    names = names_of(dataset)
    assert (report.off_edge, report.written, report.written_masked) == (1, 14, 2)
    row = names.index("edge")
    assert dataset.catalogue["masked"].iloc[row]
    image = dataset.read_images(np.array([row]))[0]
    # The galaxy is ~7 px from the tile's right edge: the right-hand columns are padding.
    assert (image[:, -10:, :] == 0).all() and (image[:, :20, :] != 0).all()


def assert_nothing_written(root):
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(("out", ".out"))]
    assert leftovers == []


def test_tile_without_wcs_is_named(scenario, tmp_path):
    tiles = tmp_path / "tiles"
    shutil.copytree(scenario.tiles_dir, tiles)
    broken = tiles / "KiDS_DR4.0_130.0_0.5_g_sci.fits"
    fits.PrimaryHDU(fits.getdata(broken)).writeto(broken, overwrite=True)
    with pytest.raises(DatasetError, match=r"KiDS_DR4.0_130.0_0.5_g_sci.fits: no celestial WCS"):
        ingest(tiles, scenario.photometry, tmp_path / "out", spec_file=scenario.spectra,
               progress=False)
    assert_nothing_written(tmp_path)


def test_missing_band_names_tile_and_band(scenario, tmp_path):
    tiles = tmp_path / "tiles"
    shutil.copytree(scenario.tiles_dir, tiles)
    (tiles / "tileB_coadd_2.fits").unlink()          # tile B's g band
    with pytest.raises(DatasetError, match=r"tile KIDS_130.017_0.5: band g missing"):
        ingest(tiles, scenario.photometry, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path)


def test_missing_column_is_named_with_a_close_match(scenario, tmp_path):
    renamed = tmp_path / "kids_bright.csv"
    photometry_table({"MAG_AUTO": "MAG_AUTO_CALIB"}).write(renamed)
    with pytest.raises(DatasetError, match=r"kids_bright.csv: required column 'MAG_AUTO' "
                                           r"missing \(close: 'MAG_AUTO_CALIB'"):
        ingest(scenario.tiles_dir, renamed, tmp_path / "out", progress=False)
    assert_nothing_written(tmp_path)


def test_missing_spectroscopic_column_is_named(scenario, tmp_path):
    spectra = spectra_table()
    spectra.rename_column("NQ", "QUALITY")
    spectra.write(tmp_path / "gama.fits")
    with pytest.raises(DatasetError, match=r"gama.fits: required column 'NQ' missing"):
        ingest(scenario.tiles_dir, scenario.photometry, tmp_path / "out",
               spec_file=tmp_path / "gama.fits", progress=False)
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("radius", [0.0, -1.0])
def test_non_positive_match_radius_is_rejected(scenario, tmp_path, radius):
    with pytest.raises(DatasetError, match=r"match_radius_arcsec must be > 0"):
        ingest(scenario.tiles_dir, scenario.photometry, tmp_path / "out",
               spec_file=scenario.spectra, match_radius_arcsec=radius, progress=False)
    assert_nothing_written(tmp_path)


def test_galaxies_with_non_finite_pixels_are_dropped_or_filled(scenario, tmp_path):
    tiles = tmp_path / "tiles"
    shutil.copytree(scenario.tiles_dir, tiles)
    band_file = tiles / "KiDS_DR4.0_130.0_0.5_i_sci.fits"
    with fits.open(band_file, mode="update") as hdul:
        x, y = (int(v) for v in band_pixel_position("along_ra", "i", "A"))
        hdul[0].data[y + 10:y + 13, x - 2:x + 2] = np.nan     # a bad-pixel patch in its cutout
    dropped = ingest(tiles, scenario.photometry, tmp_path / "drop", progress=False)
    assert (dropped.nonfinite_pixels, dropped.written) == (1, 12)
    assert "along_ra" not in names_of(Dataset.open(tmp_path / "drop"))
    padded = ingest(tiles, scenario.photometry, tmp_path / "pad", edge_policy="pad",
                    progress=False)
    dataset = Dataset.open(tmp_path / "pad")
    row = names_of(dataset).index("along_ra")
    assert (padded.nonfinite_pixels, padded.written) == (1, 14)
    assert dataset.catalogue["masked"].iloc[row]
    assert (dataset.read_images(np.array([row]))[0, :, :, 3] == 0).sum() == 12


def test_no_matches_is_an_error_with_the_counts(scenario, tmp_path):
    spectra = spectra_table()
    spectra["NQ"] = 2
    spectra.write(tmp_path / "gama.fits")
    with pytest.raises(DatasetError, match=r"(?s)out: no galaxies to write.*matched: 0"):
        ingest(scenario.tiles_dir, scenario.photometry, tmp_path / "out",
               spec_file=tmp_path / "gama.fits", progress=False)
    assert_nothing_written(tmp_path)


def test_each_galaxy_gets_its_tiles_seeing_from_the_headers(labelled):
    """PSF_FWHM (tile A), SEEING (tile B); B has none in i: NaN, and the report names it."""
    report, dataset = labelled
    catalogue = dataset.catalogue.assign(name=names_of(dataset)).set_index("name")
    for name, row in catalogue.iterrows():
        seeing = TILE_PSF_FWHM[SOURCE_BY_NAME[name].tile]
        expected = [seeing.get(band, np.nan) for band in IMAGE_BANDS]
        np.testing.assert_allclose(row[list(PSF_COLUMNS)].to_numpy(float), expected, rtol=1e-6)
    assert {SOURCE_BY_NAME[n].tile for n in catalogue.index} == {"A", "B"}
    assert report.tiles_unknown_seeing == ["KIDS_130.017_0.5 (i)"]
    assert "seeing unknown (no PSF_FWHM/SEEING keyword) in KIDS_130.017_0.5 (i)" in \
        report.summary()


def test_an_impossible_seeing_keyword_is_named(scenario, tmp_path):
    tiles = tmp_path / "tiles"
    shutil.copytree(scenario.tiles_dir, tiles)
    broken = tiles / "KiDS_DR4.0_130.0_0.5_g_sci.fits"
    with fits.open(broken, mode="update") as hdul:
        hdul[0].header["PSF_FWHM"] = -1.0
    with pytest.raises(DatasetError, match=r"_g_sci.fits: header keyword PSF_FWHM = -1.0 is not"):
        ingest(tiles, scenario.photometry, tmp_path / "out", spec_file=scenario.spectra,
               progress=False)
    assert_nothing_written(tmp_path)
