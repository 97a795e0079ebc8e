"""Typed configuration read from `pipelines/*.yaml`.

Every choice a run makes is a field here, so a run is fully described by its pipeline file
plus `key=value` overrides, and MLflow logs the flattened config as the run's params. Loading
is strict: an unknown key, a wrong type or an impossible value fails before any work starts,
with a message naming the dotted key (for example `model.depth`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A pipeline or search-space file that cannot describe a valid run."""


@dataclass(frozen=True)
class MockConfig:
    """The built-in KiDS-like mock survey, generated on first use and cached."""

    n_galaxies: int = 20000
    seed: int = 42
    #: Values of `hzexp.data.mock.MockParameters` other than the defaults, e.g.
    #: {psf_fwhm_scale: 1.2} for a survey in 20% worse seeing; checked when the mock is made.
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """Where the dataset directory is; `source: mock` builds it there when it is missing."""

    source: Literal["mock", "directory"] = "mock"
    path: str = "data/mock-20k"
    mock: MockConfig = field(default_factory=MockConfig)


@dataclass(frozen=True)
class SplitConfig:
    """Random train/validation/test assignment (paper 3.2: 70/15/15).

    `smooth_train_nz` subsamples the training split to a smoothed n(z) (paper 5.3), so the
    model does not learn the large-scale-structure spikes of a small spectroscopic field.
    """

    seed: int = 42
    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    smooth_train_nz: bool = False


@dataclass(frozen=True)
class PreprocessConfig:
    """Image and magnitude preprocessing; travels inside the logged model.

    NaN magnitudes (KiDS 99/-99 sentinels, undetected bands) are replaced by the training
    split's median of that band before standardisation: the scaler is then fitted on finite
    values only and an undetected band maps to 0 in standardised units, the least
    informative value the network can see.
    """

    cutout: int = 36
    augment: bool = True
    shift_fraction: float = 0.05
    flips: bool = True
    #: Seeing augmentation (with `augment`): each training stamp's PSF FWHM grows by a
    #: fraction drawn uniformly from [0, seeing_augment] per band, fresh every epoch, by a
    #: Gaussian convolution (never sharpened), its PSF inputs growing with it; 0 is off.
    seeing_augment: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """The Hybrid-z network (paper fig. 2; defaults from the authors' released code)."""

    depth: int = 4
    stem_filters: tuple[int, ...] = (64, 64, 192)
    inception_filters: tuple[int, ...] = (64, 96, 128, 16, 32, 32)
    width: float = 1.0
    mag_units: tuple[int, ...] = (512, 256, 128, 64)
    mag_dropout: float = 0.2
    head_units: tuple[int, ...] = (512, 128, 32)
    #: `point`: the paper's sigmoid z_phot trained with the Huber loss; `pdf`: a softmax
    #: over `pdf_bins` equal redshift bins on [0, pdf_z_max] trained with the CRPS
    #: (`hzexp.model.pdf`), whose median is z_phot.
    output: Literal["point", "pdf"] = "point"
    pdf_bins: int = 200
    pdf_z_max: float = 1.0
    #: The standard deviation (redshift) of the Gaussian each bin's probability is spread
    #: with (`hzexp.model.pdf.GaussianKernel`): smooth PDFs in place of a comb of single
    #: bins; 0 leaves the softmax as it is. 0.01 measured best on the default mock
    #: (docs/pdfs.md).
    pdf_kernel_width: float = 0.01
    #: The u,g,r,i PSF FWHMs (dataset columns psf_fwhm_*) as inputs of the magnitude
    #: branch, standardised like the magnitudes (unknown -> the training median); the
    #: logged model then takes a `psf_fwhm` input.
    psf_inputs: bool = False


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (paper: Adam 1e-4, Huber delta 1e-3, early stopping)."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-4
    huber_delta: float = 1e-3
    patience: int = 5
    #: `constant` as the paper; `plateau` multiplies the rate by lr_decay_factor after
    #: lr_decay_patience epochs without a better validation loss (Keras ReduceLROnPlateau);
    #: `cosine` lowers it every epoch along a half cosine that reaches lr_floor at the last
    #: epoch, whatever the validation loss does.
    lr_schedule: Literal["constant", "plateau", "cosine"] = "constant"
    lr_decay_patience: int = 2
    lr_decay_factor: float = 0.3
    #: The lowest rate of either schedule, as a fraction of learning_rate.
    lr_floor: float = 1e-3
    seed: int = 42
    #: Mixed precision (float32 weights and output, `mixed_dtype` compute) when a GPU is
    #: visible; float32 otherwise.
    mixed_precision: bool = False
    mixed_dtype: Literal["float16", "bfloat16"] = "float16"
    #: XLA compilation of the training step.
    jit_compile: bool = False
    #: `data_parallel`: the model replicated on every visible GPU, each batch split between
    #: them (JAX DataParallel, TensorFlow MirroredStrategy); `none`: the default device.
    distribution: Literal["none", "data_parallel"] = "none"
    chunk_size: int = 2048
    #: Threads reading training batches. 1: one thread reads whole chunks ahead of the model
    #: (the lightest input, best on a few cores); N > 1: N threads each read whole batches,
    #: the same batches, for a GPU host whose cores can feed a fast device.
    input_workers: int = 1


@dataclass(frozen=True)
class BaselineConfig:
    """Magnitude-only baselines trained on the same split in the same run."""

    mlp: bool = True
    knn: bool = True


@dataclass(frozen=True)
class PipelineConfig:
    """One training run, as read from a pipeline YAML file."""

    name: str = "mock"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)

    def validate(self, stored_size: int | None = None, data_path: str | Path | None = None) -> None:
        """Reject impossible values; `stored_size` checks the cutout against the data (the
        dataset at `data_path`, which the message names)."""
        checks = [
            ("model.depth", 3 <= self.model.depth <= 5, "must be 3, 4 or 5 Inception modules"),
            ("model.width", self.model.width > 0, "must be > 0"),
            ("model.mag_dropout", 0 <= self.model.mag_dropout < 1, "must be in [0, 1)"),
            ("model.inception_filters", len(self.model.inception_filters) == 6,
             "needs 6 filter counts (1x1, 3x3-reduce, 3x3, 5x5-reduce, 5x5, pool-proj)"),
            ("model.stem_filters", len(self.model.stem_filters) == 3, "needs 3 filter counts"),
            ("model.head_units", len(self.model.head_units) == 3, "needs 3 dense layers (paper)"),
            ("model.mag_units", len(self.model.mag_units) == 4,
             "needs 4 dense layers (batch norm and dropout follow the second)"),
            ("model.pdf_bins", self.model.pdf_bins >= 2, "must be >= 2"),
            ("model.pdf_z_max", self.model.pdf_z_max > 0, "must be > 0"),
            ("model.pdf_kernel_width", 0 <= self.model.pdf_kernel_width < self.model.pdf_z_max,
             "must be >= 0 (0: no kernel) and below model.pdf_z_max"),
            ("preprocess.cutout", 8 <= self.preprocess.cutout, "must be at least 8 px"),
            ("preprocess.shift_fraction", 0 <= self.preprocess.shift_fraction < 0.5,
             "must be in [0, 0.5)"),
            ("preprocess.seeing_augment", 0 <= self.preprocess.seeing_augment <= 1,
             "must be in [0, 1] (the largest fractional growth of the PSF FWHM)"),
            ("training.huber_delta", self.training.huber_delta > 0, "must be > 0"),
            ("training.learning_rate", self.training.learning_rate > 0, "must be > 0"),
            ("training.epochs", self.training.epochs >= 1, "must be >= 1"),
            ("training.batch_size", self.training.batch_size >= 1, "must be >= 1"),
            ("training.patience", self.training.patience >= 0, "must be >= 0"),
            ("training.lr_decay_patience", self.training.lr_decay_patience >= 1, "must be >= 1"),
            ("training.lr_decay_factor", 0 < self.training.lr_decay_factor < 1,
             "must be in (0, 1)"),
            ("training.lr_floor", 0 < self.training.lr_floor <= 1, "must be in (0, 1]"),
            ("training.chunk_size", self.training.chunk_size >= 1, "must be >= 1"),
            ("training.input_workers", self.training.input_workers >= 1, "must be >= 1"),
            ("data.mock.n_galaxies", self.data.mock.n_galaxies >= 10, "must be >= 10"),
            ("split", abs(self.split.train + self.split.val + self.split.test - 1) < 1e-9
             and min(self.split.train, self.split.val, self.split.test) > 0,
             "fractions train, val, test must be positive and sum to 1"),
        ]
        for units_key in ("stem_filters", "inception_filters", "mag_units", "head_units"):
            units = getattr(self.model, units_key)
            checks.append((f"model.{units_key}", all(u >= 1 for u in units), "must all be >= 1"))
        if stored_size is not None:
            of = f" of {data_path}" if data_path is not None else ""
            checks.append(("preprocess.cutout", self.preprocess.cutout <= stored_size,
                           f"is larger than the stored {stored_size} px images{of}"))
        for key, ok, message in checks:
            if not ok:
                raise ConfigError(f"{key} = {_lookup(self, key)!r}: {message}")


def _lookup(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the type hint `hint`, converting lists to tuples."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(hint, value, prefix=f"{key}.")
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key} = {value!r}: must be one of {list(typing.get_args(hint))}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: expected a mapping")
        return dict(value)
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        return tuple(_coerce(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        return _coerce(value, hint, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads `3e-4` (no dot) as a string; accept it as the number it spells.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key} = {value!r}: expected float") from None
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or
                                            (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{key} = {value!r}: expected {hint.__name__}")
    return value


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys by their dotted name."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    return cls(**{k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in data.items()})


def to_dict(config: Any) -> dict:
    """The config as plain YAML-able data (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(config))))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def flatten(config: Any) -> dict[str, Any]:
    """Dotted-key params for MLflow: `{"model.depth": 4, "training.learning_rate": 1e-4, ...}`."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(to_dict(config), "")
    return flat


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a config mapping."""
    data = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        dotted, raw = item.split("=", 1)
        node = data
        *parents, leaf = dotted.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: not valid YAML: {_yaml_problem(err)[1]}") \
                from None
    return data


def read_yaml_mapping(path: Path, kind: str) -> dict:
    """A YAML file's top-level mapping; errors name the file and say what it should be.

    An empty file (or one of only comments) is refused rather than read as "all defaults":
    a truncated or wrongly named file would otherwise start the full default run.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} file not found") from None
    except yaml.YAMLError as err:
        position, problem = _yaml_problem(err)
        raise ConfigError(f"{path}{position}: not valid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: the {kind} file is empty (or only comments); "
                          f"write its keys, or name another file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _yaml_problem(err: yaml.YAMLError) -> tuple[str, str]:
    """Where (`:LINE:COLUMN`, or "") and what PyYAML's error is, on one line (its own text
    spans seven, with a copy of the offending line)."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or problem is None:
        return "", " ".join(str(err).split())
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    where = f" ({context} from line {context_mark.line + 1})" if context and context_mark else ""
    return f":{mark.line + 1}:{mark.column + 1}", f"{problem}{where}"


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Read, override and validate a pipeline file; errors name the file and the key."""
    path = Path(path)
    data = read_yaml_mapping(path, "pipeline")
    try:
        config = from_dict(PipelineConfig, apply_overrides(data, overrides or []))
        config.validate()
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return config


@dataclass(frozen=True)
class ParameterSpec:
    """One searched pipeline key: a float or int range (optionally log) or categories."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class StudyConfig:
    """How the Optuna study samples and prunes.

    `percentile` is used by the `percentile` pruner: a trial whose best validation SMAD so
    far is worse than this percentile of the completed trials' values at the same epoch
    stops (`median` is the 50th percentile; a lower one prunes harder).
    """

    sampler_seed: int = 42
    #: What trials are ranked (and pruned) by: `val_smad`, the validation SMAD(Dz) of z_phot,
    #: or `val_crps`, the validation CRPS of a PDF model's PDFs (`model.output: pdf`).
    #: The registry compares versions by validation SMAD(Dz) either way.
    objective: Literal["val_smad", "val_crps"] = "val_smad"
    pruner: Literal["median", "percentile", "hyperband", "none"] = "median"
    startup_trials: int = 3
    warmup_epochs: int = 2
    percentile: float = 25.0


@dataclass(frozen=True)
class SearchSpace:
    """A search space file: dotted pipeline keys to distributions, plus study settings."""

    name: str
    parameters: dict[str, ParameterSpec]
    study: StudyConfig = field(default_factory=StudyConfig)


def _check_parameter(key: str, spec: ParameterSpec) -> None:
    if spec.type == "categorical":
        if not spec.choices:
            raise ConfigError(f"parameters.{key}: categorical needs a non-empty 'choices' list")
        return
    if spec.low is None or spec.high is None:
        raise ConfigError(f"parameters.{key}: {spec.type} needs 'low' and 'high'")
    if spec.low > spec.high:
        raise ConfigError(f"parameters.{key}: low {spec.low} > high {spec.high}")
    if spec.log and spec.low <= 0:
        raise ConfigError(f"parameters.{key}: a log range needs low > 0, got {spec.low}")


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and validate a search space; errors name the file and the parameter entry."""
    path = Path(path)
    data = read_yaml_mapping(path, "search space")
    try:
        unknown = sorted(set(data) - {"name", "parameters", "study"})
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]} (known: name, parameters, study)")
        entries = data.get("parameters") or {}
        if not isinstance(entries, dict) or not entries:
            raise ConfigError("parameters: expected a non-empty mapping of pipeline keys")
        pipeline_keys = set(flatten(PipelineConfig()))
        parameters = {}
        for key, entry in entries.items():
            if key not in pipeline_keys:
                raise ConfigError(f"parameters.{key}: the pipeline has no such key")
            if not isinstance(entry, dict):
                raise ConfigError(f"parameters.{key}: expected a mapping with 'type'")
            spec = from_dict(ParameterSpec, entry, prefix=f"parameters.{key}.")
            _check_parameter(key, spec)
            parameters[key] = spec
        study = from_dict(StudyConfig, data.get("study") or {}, prefix="study.")
        if not 0.0 < study.percentile < 100.0:
            raise ConfigError(f"study.percentile: must lie in (0, 100), got {study.percentile}")
        for key in ("startup_trials", "warmup_epochs"):
            if getattr(study, key) < 0:
                raise ConfigError(f"study.{key}: must be >= 0, got {getattr(study, key)}")
        return SearchSpace(name=str(data.get("name", path.stem)), parameters=parameters,
                           study=study)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
