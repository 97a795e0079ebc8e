"""Every number that defines the KiDS-like mock survey, in one frozen record.

The record is written verbatim into the dataset manifest (`provenance`), so a mock dataset is
fully described by its seed plus these values. The scatter parameters at the end were tuned
so that a magnitude-only MLP on 20k mock galaxies reaches SMAD(Dz) ~ 0.018, the ANNz2 value
of KiDS-Bright (Bilicki et al. 2021; Hybrid-z paper Table 1); see `bench/mock_calibration.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class MockParameters:
    """Population, photometry and imaging parameters of the mock (units in the names)."""

    # --- cosmology (astropy FlatLambdaCDM) -----------------------------------------------
    hubble_constant: float = 70.0
    omega_matter: float = 0.3

    # --- population: evolving Schechter r-band luminosity functions (h = 0.7) -----------
    # GAMA/SDSS-like per-colour LFs (Blanton et al. 2003; Loveday et al. 2012): red galaxies
    # have a brighter M* and a flat faint end, blue ones a steep faint end. Evolution
    # M*(z) = M*(0) - Q z and phi*(z) = phi*(0) 10^(0.4 P z) (Lin et al. 1999 convention).
    # The phi* ratio sets the red fraction of the r < 20 sample (~0.4).
    red_m_star: float = -21.35
    red_alpha: float = -0.5
    red_phi_star: float = 1.15
    red_q_evolution: float = 0.9
    red_p_evolution: float = -1.0
    blue_m_star: float = -20.95
    blue_alpha: float = -1.35
    blue_phi_star: float = 1.0
    blue_q_evolution: float = 1.3
    blue_p_evolution: float = 1.0
    redshift_max: float = 0.9
    absolute_mag_range: tuple[float, float] = (-24.5, -16.0)
    r_auto_limit: float = 20.0

    # --- SED types: continuous index on El=0, Sbc=1, Scd=2, Im=3, SB3=4, SB2=5 -----------
    # Two components with distinct stellar populations. Bulges of every galaxy are old and
    # uniform, a red sequence (El, a little younger in spirals); disks are younger (Sbc..SB2
    # for blue galaxies) and carry most of the intrinsic SED variation (below). The mix of
    # the two, weighted by the bulge-to-total ratio, is the galaxy SED; B/T is tied tightly
    # to the disk type (Sa-like blue galaxies have big bulges, irregulars almost none), the
    # morphology-colour link.
    red_bulge_type_mean: float = 0.05
    red_bulge_type_sigma: float = 0.07
    red_disk_type_offset: tuple[float, float] = (0.3, 0.9)
    red_bulge_fraction_mean: float = 0.75
    red_bulge_fraction_sigma: float = 0.1
    blue_disk_type_range: tuple[float, float] = (1.0, 5.0)
    blue_bulge_type_mean: float = 0.25
    blue_bulge_type_sigma: float = 0.1
    blue_bulge_fraction_at_sbc: float = 0.45
    blue_bulge_fraction_slope: float = -0.1
    blue_bulge_fraction_sigma: float = 0.07

    # --- sizes: Shen et al. (2003) r-band size-luminosity relations (kpc, h = 0.7) ------
    early_size_slope: float = 0.65
    early_size_zero_point: float = -5.06
    late_size_alpha: float = 0.21
    late_size_beta: float = 0.53
    late_size_gamma: float = -1.31
    size_m0: float = -20.52
    size_sigma_bright: float = 0.25
    size_sigma_faint: float = 0.48
    # Bulge (Sersic 4) and disk (exponential) half-light radii as fractions of the Shen
    # radius: compact bulges inside larger disks (Gadotti 2009: r_e,bulge / r_e,disk ~ 0.2-0.4),
    # so the centre is bulge-dominated even after the KiDS PSF.
    bulge_radius_fraction: float = 0.35
    disk_radius_fraction: float = 1.3
    disk_intrinsic_thickness: float = 0.15
    bulge_axis_ratio_range: tuple[float, float] = (0.6, 1.0)

    # --- (a) intrinsic SED variation: seen by images AND magnitudes -----------------------
    # Per component, so that the catalogue's total light mixes them while resolved images
    # can separate the clean bulge colour from the scattered disk colour:
    # Calzetti et al. (2000) attenuation on the disk, growing with inclination
    # A_V = A_V,face-on (1 - slope log10 cos i) (cf. Driver et al. 2007); age/metallicity
    # (star-formation history) scatter as a smooth random tilt of the SED in rest-frame
    # log-wavelength (Legendre degrees 1-3); emission-line-like independent per-band scatter
    # (lines fall into different bands at different z). Bulges: a red-sequence-like
    # ~0.03 mag colour scatter; disks: most of the variation.
    red_disk_av_face_on: float = 0.1
    blue_disk_av_face_on: float = 0.3
    disk_av_lognormal_sigma: float = 0.5
    disk_av_inclination_slope: float = 2.0
    bulge_sed_tilt_sigma_mag: tuple[float, float, float] = (0.015, 0.007, 0.005)
    bulge_line_scatter_mag: float = 0.005
    disk_sed_tilt_sigma_mag: tuple[float, float, float] = (0.05, 0.025, 0.015)
    red_disk_line_scatter_mag: float = 0.015
    blue_disk_line_scatter_mag: float = 0.03

    # --- (b) seen by both: photometric calibration (zero points) ---------------------------
    # KiDS GAaP u,g,r,i magnitudes are measured on the same coadds the cutouts come from, so
    # a band's zero-point error is common to the images and the catalogue (KiDS DR4
    # homogenisation: ~0.01 mag, Kuijken et al. 2019); the VIKING bands reach only the
    # catalogue.
    zero_point_sigma_mag: float = 0.01

    # --- (c) catalogue only: GAaP aperture-photometry errors -----------------------------
    # Gaussian-aperture photometry of PSF-gaussianised images: aperture matching, PSF-model
    # and background errors, larger for `masked` galaxies (unreliable photometry), plus the
    # independent r_auto (SExtractor AUTO) measurement used for the selection. With the
    # intrinsic scatter above, 0.03 mag puts the magnitude-only MLP at SMAD(Dz) ~0.019.
    gaap_sigma_mag: float = 0.03
    masked_extra_sigma_mag: float = 0.015
    r_auto_sigma_mag: float = 0.03

    # --- (d) images: seeing per tile ---------------------------------------------------------
    # Every 1 x 1 deg cell of the sky is a KiDS tile with its own seeing per band, drawn once
    # per seed from a lognormal clipped to `psf_fwhm_range_arcsec`: KiDS DR4 observes r in
    # the best conditions (mean PSF FWHM 0.70"), g and i in worse, u in the worst, with i
    # the widest spread (Kuijken et al. 2019, A&A 625, A2, Sect. 2 and Fig. 3; the medians
    # and widths below approximate those distributions, r spanning ~0.5-0.95").
    # The catalogue's psf_fwhm_* columns are the tile values (what a tile header gives);
    # each galaxy's image has its own PSF around them, `psf_fwhm_jitter_sigma` (lognormal),
    # for the PSF's variation across a tile. `psf_fwhm_scale` multiplies every tile's
    # seeing: 1.2 is the 20%-worse survey of bench/seeing_shift.py.
    psf_fwhm_median_arcsec: tuple[float, float, float, float] = (1.00, 0.86, 0.70, 0.80)
    psf_fwhm_lognormal_sigma: tuple[float, float, float, float] = (0.12, 0.12, 0.11, 0.18)
    psf_fwhm_range_arcsec: tuple[float, float] = (0.45, 1.5)
    psf_fwhm_scale: float = 1.0
    psf_fwhm_jitter_sigma: float = 0.04

    # --- survey: KiDS / VIKING 5-sigma depths (2" aperture, AB) at the median seeing --------
    depth_5sigma: tuple[float, ...] = (24.2, 25.1, 25.0, 23.7, 23.1, 22.3, 22.1, 21.5, 21.2)
    depth_aperture_diameter_arcsec: float = 2.0
    psf_moffat_beta: float = 3.0
    pixel_scale_arcsec: float = 0.2
    image_zero_point_ab: float = 30.0

    # --- survey defects -------------------------------------------------------------------
    # VIKING coverage gaps remove all five NIR bands of ~2% of galaxies; single-band gaps
    # (detector / tile edges) another ~1% per band.
    nir_all_missing_fraction: float = 0.02
    nir_band_missing_fraction: float = 0.01
    masked_fraction: float = 0.15
    neighbour_fraction: float = 0.01
    wrong_spec_z_fraction: float = 0.005
    # GAMA equatorial fields G09, G12, G15: (ra_min, ra_max, dec_min, dec_max) in degrees.
    sky_patches_deg: tuple[tuple[float, float, float, float], ...] = (
        (129.0, 141.0, -2.0, 3.0), (174.0, 186.0, -3.0, 2.0), (211.5, 223.5, -2.0, 3.0))

    @classmethod
    def with_overrides(cls, overrides: dict, prefix: str = "") -> MockParameters:
        """The defaults with `overrides` ({field: value}), type-checked like a pipeline;
        `ConfigError` naming `prefix` + an unknown field or a wrong value."""
        from hzexp.config import from_dict

        return from_dict(cls, dict(overrides), prefix=prefix)

    def as_provenance(self) -> dict:
        """JSON-ready dict of all parameters (tuples become lists)."""
        return dataclasses.asdict(self)
