"""hzexp: train, search, compare and deploy Hybrid-z photometric-redshift models.

Importing the package does no work: TensorFlow, MLflow and Optuna are imported only by the
modules that need them, so the CLI starts fast and the data tools run without them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hzexp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
