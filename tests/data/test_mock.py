"""The KiDS-like mock: determinism, atomic writing, photometry and image physics."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit
from sklearn.mixture import GaussianMixture

from hzexp.data.mock import GENERATION_BLOCK, MockSurvey, mock_fingerprint, simulate
from hzexp.data.mock_defects import add_artefacts
from hzexp.data.mock_flux_table import REST_FRAME_BAND, build_flux_table, survey_flux_table
from hzexp.data.mock_images import moffat_alpha, render_stamps
from hzexp.data.mock_parameters import MockParameters
from hzexp.data.mock_photometry import component_fluxes
from hzexp.data.mock_sed import FilterCurve, load_survey_filters
from hzexp.data.store import IMAGE_BANDS, MAG_BANDS, Dataset

KIDS_FILTER_DIR = Path(__file__).parents[2] / ".." / "shared" / "reference" / "filters" / "kids_viking"
STAMP = 48
CENTRE = (STAMP - 1) / 2.0


@pytest.fixture(scope="module")
def survey() -> MockSurvey:
    return MockSurvey()


@pytest.fixture(scope="module")
def galaxies(survey):
    """Catalogue-level draws (no images): enough for n(z) and colour statistics."""
    return survey.draw_galaxies(np.random.default_rng(3), 6000)


@pytest.fixture(scope="module")
def small_mock(tmp_path_factory) -> Dataset:
    path = tmp_path_factory.mktemp("mock") / "m"
    simulate(path, 2 * GENERATION_BLOCK, seed=7, progress=False)
    return Dataset.open(path)


def _render_noiseless(survey: MockSurvey, block, fwhm_px=None, offsets=None) -> np.ndarray:
    g = block.galaxies
    n = len(g)
    bands = [MAG_BANDS.index(b) for b in IMAGE_BANDS]
    nominal = np.asarray(survey.params.psf_fwhm_arcsec) / survey.params.pixel_scale_arcsec
    to_px = 1.0 / survey.params.pixel_scale_arcsec
    return render_stamps(
        block.bulge_flux[:, bands], block.disk_flux[:, bands],
        g["bulge_re_arcsec"].to_numpy() * to_px, g["bulge_axis_ratio"].to_numpy(),
        g["disk_re_arcsec"].to_numpy() * to_px, g["disk_axis_ratio"].to_numpy(),
        g["position_angle"].to_numpy(), np.zeros((n, 2)) if offsets is None else offsets,
        np.tile(nominal, (n, 1)) if fwhm_px is None else fwhm_px,
        survey.params.psf_moffat_beta, STAMP)


# --- determinism and writing -------------------------------------------------------------

def test_same_seed_same_hash_different_seed_different(tmp_path):
    first = simulate(tmp_path / "a", 300, seed=1, progress=False)
    again = simulate(tmp_path / "b", 300, seed=1, progress=False)
    other = simulate(tmp_path / "c", 300, seed=2, progress=False)
    hashes = [Dataset.open(p).content_hash for p in (first, again, other)]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def test_content_does_not_depend_on_chunk_size(tmp_path):
    n = GENERATION_BLOCK + 100
    small = Dataset.open(simulate(tmp_path / "a", n, seed=5, chunk_size=64, progress=False))
    large = Dataset.open(simulate(tmp_path / "b", n, seed=5, chunk_size=10_000, progress=False))
    assert len(small) == n
    assert small.content_hash == large.content_hash
    small.verify()


def test_failure_mid_run_leaves_nothing(tmp_path, monkeypatch):
    real_block = MockSurvey.block

    def failing_block(self, seed, index, stored_size):
        if index == 1:
            raise RuntimeError("disk full")
        return real_block(self, seed, index, stored_size)

    monkeypatch.setattr(MockSurvey, "block", failing_block)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate(tmp_path / "out", 2 * GENERATION_BLOCK, seed=1, chunk_size=64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_manifest_records_the_parameters(small_mock):
    provenance = small_mock.manifest["provenance"]
    assert provenance["seed"] == 7
    as_json = json.loads(json.dumps(MockParameters().as_provenance()))  # tuples -> lists
    assert provenance["parameters"] == as_json


def test_manifest_records_the_mock_fingerprint(small_mock):
    provenance = small_mock.manifest["provenance"]
    assert provenance["mock_fingerprint"] == mock_fingerprint()
    assert mock_fingerprint() == mock_fingerprint(MockParameters())
    other = dataclasses.replace(MockParameters(), gaap_sigma_mag=0.021)
    assert mock_fingerprint(other) != mock_fingerprint()
    assert len(mock_fingerprint()) == 16


def test_fingerprint_changes_with_the_model_version(monkeypatch):
    import hzexp.data.mock as mock

    current = mock_fingerprint()
    monkeypatch.setattr(mock, "MOCK_MODEL_VERSION", mock.MOCK_MODEL_VERSION + 1)
    assert mock.mock_fingerprint() != current


def test_flux_table_is_cached_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("HZEXP_CACHE_DIR", str(tmp_path))
    built = survey_flux_table()
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    loaded = survey_flux_table()
    np.testing.assert_array_equal(built.flux, loaded.flux)


# --- population and photometry -------------------------------------------------------------

def test_nz_red_fraction_and_selection(galaxies):
    z = galaxies.galaxies["z"]
    assert 0.20 < z.mean() < 0.26
    assert 0.01 < (z > 0.45).mean() < 0.1
    assert 0.33 < galaxies.galaxies["is_red"].mean() < 0.47
    assert (galaxies.catalogue["mag_r_auto"] < 20).all()


def test_galaxies_get_fainter_with_redshift_at_fixed_luminosity(survey):
    z = np.linspace(0.02, 0.7, 40)
    params = dataclasses.replace(survey.params, bulge_sed_tilt_sigma_mag=(0, 0, 0),
                                 disk_sed_tilt_sigma_mag=(0, 0, 0), bulge_line_scatter_mag=0.0,
                                 red_disk_line_scatter_mag=0.0, blue_disk_line_scatter_mag=0.0)
    for sed in (0.0, 3.0):
        same = pd.DataFrame({"z": z, "abs_mag_r": -21.0, "is_red": sed < 1, "bulge_type": sed,
                             "disk_type": sed, "bulge_fraction": 0.5, "disk_av": 0.3})
        bulge, disk = component_fluxes(same, survey.table, survey.cosmology, params,
                                       np.random.default_rng(0))
        r_flux = (bulge + disk)[:, MAG_BANDS.index("r")]
        assert np.all(np.diff(r_flux) < 0)


def test_median_r_rises_with_redshift(galaxies):
    z = galaxies.galaxies["z"].to_numpy()
    r = galaxies.catalogue["mag_r"].to_numpy()
    edges = [0.02, 0.1, 0.2, 0.3, 0.45]
    medians = [np.median(r[(z >= lo) & (z < hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    assert np.all(np.diff(medians) > 0)


def test_g_minus_r_is_bimodal(galaxies):
    """Red sequence and blue cloud at 0.15 < z < 0.25: a two-Gaussian mixture fits better
    than one (BIC) with Ashman et al. (1994) separation D > 2, the criterion for two
    distinct populations (a histogram dip is too sample-dependent at this size)."""
    z = galaxies.galaxies["z"].to_numpy()
    in_slice = (z > 0.15) & (z < 0.25)
    colour = (galaxies.catalogue["mag_g"] - galaxies.catalogue["mag_r"]).to_numpy()[in_slice]
    red = galaxies.galaxies["is_red"].to_numpy()[in_slice]
    assert np.median(colour[red]) - np.median(colour[~red]) > 0.35
    sample = colour[np.isfinite(colour)].reshape(-1, 1)
    one, two = (GaussianMixture(k, random_state=0).fit(sample) for k in (1, 2))
    assert two.bic(sample) < one.bic(sample) - 100
    mean, variance = two.means_.ravel(), two.covariances_.ravel()
    assert abs(mean[0] - mean[1]) / np.sqrt(variance.mean()) > 2.0


def test_sed_scatter_lives_in_the_disk(galaxies):
    """Bulges are a tight red sequence; disks carry most of the intrinsic colour scatter, so
    the total (catalogue) colour is more scattered than the bulge's."""
    g = galaxies.galaxies
    z = g["z"].to_numpy()
    gi, ri = MAG_BANDS.index("g"), MAG_BANDS.index("r")
    near = (z > 0.19) & (z < 0.21) & (g["bulge_fraction"].to_numpy() > 0.05)
    red = g["is_red"].to_numpy()
    for kind, rows in (("red", near & red), ("blue", near & ~red)):

        def colour_scatter(flux):
            colour = -2.5 * np.log10(flux[rows, gi] / flux[rows, ri])
            return 1.4826 * np.median(np.abs(colour - np.median(colour)))

        bulge = colour_scatter(galaxies.bulge_flux)
        disk = colour_scatter(galaxies.disk_flux)
        print(f"{kind}: g-r scatter at z = 0.2: bulge {bulge:.3f}, disk {disk:.3f}")
        assert bulge < 0.05
        assert disk > 2 * bulge


def test_bulges_are_compact_and_tied_to_type(galaxies):
    g = galaxies.galaxies
    assert np.all(g["bulge_re_arcsec"] < 0.5 * g["disk_re_arcsec"])
    red = g["is_red"].to_numpy()
    bulge_fraction = g["bulge_fraction"].to_numpy()
    assert np.median(bulge_fraction[red]) > 0.6
    assert np.median(bulge_fraction[~red]) < 0.35
    late = ~red & (g["disk_type"].to_numpy() > 3)
    early = ~red & (g["disk_type"].to_numpy() < 2)
    assert np.median(bulge_fraction[late]) < np.median(bulge_fraction[early]) - 0.15


def test_nir_gaps_are_a_few_percent(galaxies):
    catalogue = galaxies.catalogue
    for band in ("Z", "Y", "J", "H", "Ks"):
        assert 0.01 < catalogue[f"mag_{band}"].isna().mean() < 0.06
    assert catalogue[["mag_g", "mag_r", "mag_i"]].notna().all().all()


# --- images --------------------------------------------------------------------------------

def test_stamp_flux_matches_catalogue_for_isolated_galaxies(small_mock, survey):
    catalogue = small_mock.catalogue
    clean = ~catalogue["masked"].to_numpy()
    rows = np.flatnonzero(clean)
    images = small_mock.read_images(rows)
    stamp_r = images[..., IMAGE_BANDS.index("r")].sum(axis=(1, 2))
    catalogue_r = 10.0 ** (-0.4 * (catalogue["mag_r"].to_numpy()[rows]
                                   - survey.params.image_zero_point_ab))
    ratio = stamp_r / catalogue_r
    assert abs(np.median(ratio) - 1.0) < 0.03
    assert np.mean(np.abs(ratio - 1.0) < 0.15) > 0.9


def test_images_and_catalogue_share_the_zero_points():
    """With zero-point errors as the only large error, the u,g,r,i stamp fluxes follow the
    catalogue's (both measured on the same coadds) while both scatter around the truth."""
    params = dataclasses.replace(MockParameters(), zero_point_sigma_mag=0.2, gaap_sigma_mag=0.0,
                                 masked_extra_sigma_mag=0.0, masked_fraction=0.0,
                                 neighbour_fraction=0.0)
    survey = MockSurvey(params)
    rng = np.random.default_rng(11)
    block = survey.draw_galaxies(rng, 300)
    stamps = survey.render(block, rng, STAMP)
    bands = [MAG_BANDS.index(b) for b in IMAGE_BANDS]
    stamp_mag = params.image_zero_point_ab - 2.5 * np.log10(stamps.sum(axis=(1, 2)))
    catalogue_mag = block.catalogue[[f"mag_{b}" for b in IMAGE_BANDS]].to_numpy()
    true_mag = params.image_zero_point_ab - 2.5 * np.log10(
        (block.bulge_flux + block.disk_flux)[:, bands])
    bright = catalogue_mag[:, IMAGE_BANDS.index("r")] < 19.0
    stamp_error = (stamp_mag - true_mag)[bright]
    catalogue_error = (catalogue_mag - true_mag)[bright]
    assert np.all(np.median(np.abs(catalogue_error), axis=0) > 0.1)  # 0.2 mag: ~0.135
    for band in range(len(IMAGE_BANDS)):  # independent zero points would give ~0
        assert np.corrcoef(stamp_error[:, band], catalogue_error[:, band])[0, 1] > 0.8


def test_point_source_fwhm_matches_psf_spec(survey):
    n = len(IMAGE_BANDS)
    point = np.zeros((1, n))
    nominal_px = np.asarray(survey.params.psf_fwhm_arcsec) / survey.params.pixel_scale_arcsec
    stamp = render_stamps(np.ones((1, n)) * 1000.0, point, np.array([0.01]), np.array([1.0]),
                          np.array([1.0]), np.array([1.0]), np.array([0.0]),
                          np.full((1, 2), 0.5), nominal_px[None, :], survey.params.psf_moffat_beta,
                          STAMP)[0]
    y, x = np.indices((STAMP, STAMP))
    radius = np.hypot(y - (CENTRE + 0.5), x - (CENTRE + 0.5)).ravel()  # offset +0.5: a pixel centre
    beta = survey.params.psf_moffat_beta

    def moffat(r, amplitude, alpha):
        return amplitude * (1 + (r / alpha) ** 2) ** -beta

    for band, spec in enumerate(nominal_px):
        (amplitude, alpha), _ = curve_fit(moffat, radius, stamp[..., band].ravel(),
                                          p0=(stamp[..., band].max(), 2.0))
        measured = 2 * alpha * np.sqrt(2 ** (1 / beta) - 1)
        print(f"{IMAGE_BANDS[band]}: FWHM {measured:.2f} px (spec {spec:.2f})")
        assert abs(measured / spec - 1) < 0.1
    assert moffat_alpha(2.0, 3.0) == pytest.approx(1.0 / np.sqrt(2 ** (1 / 3) - 1))


def test_light_is_centred(survey, galaxies):
    block = galaxies.head(200)
    stamps = _render_noiseless(survey, block)
    r_band = stamps[..., IMAGE_BANDS.index("r")]
    y, x = np.indices((STAMP, STAMP))
    total = r_band.sum(axis=(1, 2))
    centroid_x = (r_band * x).sum(axis=(1, 2)) / total
    centroid_y = (r_band * y).sum(axis=(1, 2)) / total
    assert np.max(np.hypot(centroid_x - CENTRE, centroid_y - CENTRE)) < 0.5


def test_bulges_are_redder_than_disks(survey, galaxies):
    """Colour gradient: the inner (bulge-dominated) light is redder in g-i than the outskirts."""
    block = galaxies.head(300)
    stamps = _render_noiseless(survey, block)
    y, x = np.indices((STAMP, STAMP))
    radius = np.hypot(x - CENTRE, y - CENTRE)
    g, i = IMAGE_BANDS.index("g"), IMAGE_BANDS.index("i")
    inner = stamps[:, radius < 2]
    outer = stamps[:, (radius > 4) & (radius < 10)]
    gradient = (-2.5 * np.log10(inner[..., g].sum(1) / inner[..., i].sum(1))
                + 2.5 * np.log10(outer[..., g].sum(1) / outer[..., i].sum(1)))
    two_component = (block.galaxies["bulge_fraction"].between(0.2, 0.8)).to_numpy()
    assert np.median(gradient[two_component]) > 0.02


def test_masked_fraction_and_artefacts(small_mock, survey):
    masked = small_mock.catalogue["masked"].to_numpy()
    assert 0.10 < masked.mean() < 0.20
    images = small_mock.read_images(np.arange(len(masked)))
    y, x = np.indices((STAMP, STAMP))
    corners = np.hypot(x - CENTRE, y - CENTRE) > 22  # beyond all but the largest galaxies
    peak_sigma = (images[:, corners] / survey.sky_sigma).max(axis=(1, 2))
    assert np.mean(peak_sigma[masked] > 10) > 0.9
    assert np.mean(peak_sigma[~masked] > 10) < 0.15


def test_every_artefact_is_visible(survey):
    stamps = np.zeros((40, STAMP, STAMP, len(IMAGE_BANDS)), dtype=np.float32)
    fwhm_px = np.tile(np.asarray(survey.params.psf_fwhm_arcsec) / 0.2, (40, 1))
    add_artefacts(stamps, np.ones(40, bool), fwhm_px, survey.sky_sigma,
                  survey.params.image_zero_point_ab, np.random.default_rng(0))
    assert np.all((stamps / survey.sky_sigma).max(axis=(1, 2, 3)) > 5)


# --- photometry against the real KiDS/VIKING curves ------------------------------------------

def _kids_curves() -> list[FilterCurve]:
    curves = []
    for band in MAG_BANDS:
        wavelength, transmission = np.loadtxt(KIDS_FILTER_DIR / f"KiDSVIKING_aibn139_{band}.res",
                                              unpack=True, usecols=(0, 1))
        curves.append(FilterCurve(band, wavelength, transmission))
    return curves


@pytest.mark.skipif(not KIDS_FILTER_DIR.is_dir(), reason="reference KiDS/VIKING curves absent")
def test_magnitudes_agree_with_real_kids_viking_curves(survey, galaxies):
    kids_table = build_flux_table(_kids_curves(), load_survey_filters()[REST_FRAME_BAND])
    block = galaxies.head(2000).galaxies
    magnitudes = {}
    for name, table in (("mock", survey.table), ("kids", kids_table)):
        bulge, disk = component_fluxes(block, table, survey.cosmology, survey.params,
                                       np.random.default_rng(11))
        magnitudes[name] = -2.5 * np.log10(bulge + disk)
    difference = np.median(magnitudes["kids"] - magnitudes["mock"], axis=0)
    print("median KiDS/VIKING - mock:",
          " ".join(f"{b}={d:+.3f}" for b, d in zip(MAG_BANDS, difference)))
    limits = np.where(np.array(MAG_BANDS) == "u", 0.2, 0.1)
    assert np.all(np.abs(difference) < limits)
