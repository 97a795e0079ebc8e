"""The built-in KiDS-like mock survey (KiDS-Bright x GAMA stand-in), written as a dataset.

`survey` draws galaxies block by block and writes the dataset directory (`simulate`); the
physics lives in small modules, one job each: `parameters` (every number), `sed` (templates,
filters, synthetic photometry), `flux_table` (cached template x band x z table),
`population` (luminosity functions, cosmology, structure), `photometry` (component fluxes,
catalogue errors), `images` (bulge + disk + PSF rendering, sky noise) and `defects`
(neighbours, masked artefacts).
"""

from hzexp.data.mock.parameters import MockParameters
from hzexp.data.mock.survey import MOCK_MODEL_VERSION, MockSurvey, mock_fingerprint, simulate

__all__ = ["MOCK_MODEL_VERSION", "MockParameters", "MockSurvey", "mock_fingerprint", "simulate"]
