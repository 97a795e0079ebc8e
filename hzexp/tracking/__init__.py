"""Everything MLflow, and the only part of hzexp that imports it.

`runs` (tracking URI, experiment, run tags, params, metrics, tables, figures), `models` (the
logged model's signature, the serving pyfunc `HybridZPyfunc`, the baseline model) and
`registry` (champion/challenger registration, resolving and looking up model URIs);
`callbacks` (the Keras callbacks that log a training) is imported from its module, so that
importing the package does not import Keras. The
names below are the package's public surface; `hzexp.tracking.HybridZPyfunc` is imported by
every logged model's `pyfunc_model.py`, so it stays here.
"""

from hzexp.tracking.models import (
                                   BASELINE_ARTIFACT,
                                   BASELINE_TRUSTED_TYPES,
                                   BASELINE_URI_TAG,
                                   KERAS_FILE,
                                   MODEL_ARTIFACT,
                                   HybridZPyfunc,
                                   load_hybrid_z_pyfunc,
                                   load_pyfunc,
                                   log_baseline_model,
                                   log_deployable_model,
                                   model_requirements,
                                   model_signature,
)
from hzexp.tracking.registry import (
                                   CHALLENGER,
                                   CHAMPION,
                                   FAIL_FAST_HTTP,
                                   REGISTERED_MODEL,
                                   ModelLookupError,
                                   ModelSource,
                                   Registration,
                                   load_baseline_for,
                                   lookup_model,
                                   register_model,
                                   registry_uri,
                                   resolve_model,
)
from hzexp.tracking.runs import (
                                   DATASET_CONTEXTS,
                                   DATASET_DIGEST_LENGTH,
                                   DATASET_SPLITS_TAG,
                                   DEFAULT_EXPERIMENT,
                                   DEFAULT_TRACKING_URI,
                                   EPOCH_METRICS,
                                   STUDY_TAG,
                                   TRIAL_STATE_TAG,
                                   WORKER_TAG,
                                   configure_tracking,
                                   end_killed_search_run,
                                   git_commit,
                                   log_dataset_input,
                                   log_figures,
                                   log_file,
                                   log_frame,
                                   log_metrics,
                                   log_params,
                                   log_parquet,
                                   log_prediction_input,
                                   mark_trial_run,
                                   pinned_run_id,
                                   run_log,
                                   run_tags,
                                   running_search_runs,
                                   start_run,
)

__all__ = [
    "BASELINE_ARTIFACT", "BASELINE_TRUSTED_TYPES", "BASELINE_URI_TAG", "CHALLENGER", "CHAMPION",
    "DATASET_CONTEXTS", "DATASET_DIGEST_LENGTH", "DATASET_SPLITS_TAG", "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI", "EPOCH_METRICS", "FAIL_FAST_HTTP", "KERAS_FILE", "MODEL_ARTIFACT",
    "REGISTERED_MODEL", "STUDY_TAG", "TRIAL_STATE_TAG", "WORKER_TAG",
    "HybridZPyfunc", "ModelLookupError", "ModelSource", "Registration",
    "configure_tracking", "end_killed_search_run", "git_commit", "load_baseline_for",
    "load_hybrid_z_pyfunc", "load_pyfunc", "log_baseline_model", "log_dataset_input",
    "log_deployable_model", "log_figures", "log_file", "log_frame", "log_metrics", "log_params",
    "log_parquet", "log_prediction_input", "lookup_model", "mark_trial_run",
    "model_requirements", "model_signature", "pinned_run_id", "register_model", "registry_uri",
    "resolve_model", "run_log", "run_tags", "running_search_runs", "start_run",
]
