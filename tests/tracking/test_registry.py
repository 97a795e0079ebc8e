"""Champion/challenger registration on tiny pyfunc models (no training).

The rule: a new version becomes `champion` when there is none, or when the champion was
chosen on the same dataset (content hash) with a worse validation SMAD; otherwise it becomes
`challenger`. Registering the same model again changes nothing.
"""

from __future__ import annotations

import mlflow
import pytest

from hzexp import tracking


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0.2] * len(model_input)


@pytest.fixture
def log_tiny_model(tracking_env):
    tracking.configure_tracking()

    def log() -> str:
        with mlflow.start_run():
            return mlflow.pyfunc.log_model(name="model", python_model=_Constant(),
                                           pip_requirements=[]).model_uri

    return log


def _register(uri: str, val_smad: float, dataset_hash: str = "hash-a"):
    return tracking.register_model(uri, val_smad, dataset_hash,
                                   {"dataset_hash": dataset_hash, "val_smad_dz": str(val_smad)},
                                   {"test_smad_dz": val_smad})


def _alias_version(alias: str) -> str:
    client = mlflow.MlflowClient()
    return str(client.get_model_version_by_alias(tracking.REGISTERED_MODEL, alias).version)


def test_the_first_model_becomes_champion(log_tiny_model):
    registration = _register(log_tiny_model(), 0.020)
    assert (registration.version, registration.alias) == ("1", tracking.CHAMPION)
    assert registration.uri == "models:/hybrid-z@champion"
    assert _alias_version(tracking.CHAMPION) == "1"


def test_a_better_model_on_the_same_data_takes_the_champion_alias(log_tiny_model):
    _register(log_tiny_model(), 0.020)
    better = _register(log_tiny_model(), 0.018)
    assert (better.version, better.alias) == ("2", tracking.CHAMPION)
    assert _alias_version(tracking.CHAMPION) == "2"


@pytest.mark.parametrize("val_smad, dataset_hash", [(0.022, "hash-a"), (0.010, "hash-b")],
                         ids=["worse on the same data", "better on other data"])
def test_otherwise_the_new_model_is_challenger(log_tiny_model, val_smad, dataset_hash):
    _register(log_tiny_model(), 0.020)
    second = _register(log_tiny_model(), val_smad, dataset_hash)
    assert (second.version, second.alias) == ("2", tracking.CHALLENGER)
    assert _alias_version(tracking.CHAMPION) == "1"
    assert _alias_version(tracking.CHALLENGER) == "2"


def test_registering_the_same_model_again_changes_nothing(log_tiny_model):
    """A rerun of a finished study registers its best model again: no new version, and
    neither alias moves."""
    champion_uri, challenger_uri = log_tiny_model(), log_tiny_model()
    _register(champion_uri, 0.020)
    _register(challenger_uri, 0.030)
    again = [_register(champion_uri, 0.020), _register(challenger_uri, 0.030)]
    assert [(r.version, r.alias) for r in again] == [("1", "champion"), ("2", "challenger")]
    versions = mlflow.MlflowClient().search_model_versions(f"name='{tracking.REGISTERED_MODEL}'")
    assert len(versions) == 2
    assert (_alias_version(tracking.CHAMPION), _alias_version(tracking.CHALLENGER)) == ("1", "2")
