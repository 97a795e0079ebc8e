"""The one exception `predict_catalogue` raises for expected failures.

Its own module so the prediction modules can raise it without importing each other; the
CLI maps it to a one-line message and exit status 2, like `ConfigError` and `DatasetError`.
"""


class PredictionError(ValueError):
    """A prediction that cannot run: unknown model, unreachable registry, unusable data, or
    a resume that does not match. The message is one line naming the thing at fault."""
