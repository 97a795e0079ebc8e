from pathlib import Path

import pytest

from hzexp.config import ConfigError, flatten, load_pipeline, load_search_space
from hzexp.search import check_space

PIPELINES = Path(__file__).parents[1] / "pipelines"


@pytest.mark.parametrize("name", ["mock", "smoke", "kids_dr4"])
def test_shipped_pipelines_load(name):
    config = load_pipeline(PIPELINES / f"{name}.yaml")
    assert config.name == name
    assert 3 <= config.model.depth <= 5


def test_mock_pipeline_is_the_paper_setup_on_20k_galaxies():
    config = load_pipeline(PIPELINES / "mock.yaml")
    assert config.data.mock.n_galaxies >= 20000
    assert config.training.huber_delta == 1e-3 and config.preprocess.cutout == 36
    assert (config.split.train, config.split.val, config.split.test) == (0.70, 0.15, 0.15)
    assert config.model.inception_filters == (64, 96, 128, 16, 32, 32)


def test_overrides_are_typed_and_flattened():
    config = load_pipeline(PIPELINES / "smoke.yaml",
                           ["model.depth=5", "training.learning_rate=3e-4"])
    flat = flatten(config)
    assert flat["model.depth"] == 5
    assert flat["training.learning_rate"] == pytest.approx(3e-4)
    assert flat["model.inception_filters"] == [8, 8, 8, 4, 4, 4]


@pytest.mark.parametrize("override, message", [
    ("model.depth=7", "model.depth = 7: must be 3, 4 or 5"),
    ("model.kernel=3", "unknown key model.kernel"),
    ("training.huber_delta=-0.1", "training.huber_delta = -0.1: must be > 0"),
    ("model.depth=four", "model.depth = 'four': expected int"),
    ("preprocess.augment=7", "preprocess.augment = 7: expected bool"),
    ("data.source=web", "data.source = 'web': must be one of"),
    ("training.lr_schedule=step", "training.lr_schedule = 'step': must be one of"),
    ("training.lr_floor=0", "training.lr_floor = 0.0: must be in (0, 1]"),
    ("training.input_workers=0", "training.input_workers = 0: must be >= 1"),
    ("preprocess.seeing_augment=1.5", "preprocess.seeing_augment = 1.5: must be in [0, 1]"),
    ("model.psf_inputs=maybe", "model.psf_inputs = 'maybe': expected bool"),
    ("model.pdf_kernel_width=-0.01", "model.pdf_kernel_width = -0.01: must be >= 0"),
    ("split.train=0.9", "split = "),
    ("bogus=1", "unknown key bogus"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as err:
        load_pipeline(PIPELINES / "smoke.yaml", [override])
    assert message in str(err.value)
    assert "smoke.yaml" in str(err.value)


def test_cutout_larger_than_stored_images_is_rejected():
    config = load_pipeline(PIPELINES / "smoke.yaml", ["preprocess.cutout=52"])
    message = "preprocess.cutout = 52: is larger than the stored 48 px images of data/ds$"
    with pytest.raises(ConfigError, match=message):
        config.validate(stored_size=48, data_path="data/ds")


def test_missing_pipeline_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: pipeline file not found"):
        load_pipeline(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["", "# only a comment\n\n# and another\n"])
def test_an_empty_pipeline_or_space_file_is_refused_not_read_as_the_defaults(tmp_path, text):
    """An empty pipeline used to run the full default training (a 20k mock, 40 epochs)."""
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    with pytest.raises(ConfigError, match="empty.yaml: the pipeline file is empty"):
        load_pipeline(empty)
    with pytest.raises(ConfigError, match="empty.yaml: the search space file is empty"):
        load_search_space(empty)


def test_a_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntraining: {epochs: 3\nmodel: {depth: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(bad)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{bad}:3:6: not valid YAML: expected ',' or '}}'")
    with pytest.raises(ConfigError, match=r"override 'model.depth=\[3': not valid YAML"):
        load_pipeline(PIPELINES / "smoke.yaml", ["model.depth=[3"])


SPACES = PIPELINES.parent / "search_spaces"
#: The pipeline each shipped search space is run with (MLproject's `search` defaults to quick).
SPACE_PIPELINE = {"smoke": "smoke", "quick": "quick", "hybridz": "mock"}


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_pipeline_loads_and_validates(path):
    config = load_pipeline(path)
    config.validate()
    assert config.name == path.stem


@pytest.mark.parametrize("path", sorted(SPACES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_search_space_stays_inside_its_pipelines_valid_values(path):
    pipeline = load_pipeline(PIPELINES / f"{SPACE_PIPELINE[path.stem]}.yaml")
    check_space(pipeline, load_search_space(path), stored_size=48)
