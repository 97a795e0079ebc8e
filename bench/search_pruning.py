"""Epochs spent and best validation SMAD of one search with pruning and one without.

Same pipeline, space and sampler seed; each study in its own temporary Optuna and MLflow
store. The pruned study uses the space's own pruner unless `--pruner` overrides it, so the
default run measures the default search (`mlflow run . -e search`: quick pipeline and space,
20 trials); its wall time is that search's minus building the mock and registering.
Target: pruning spends at most 60% of the epochs for a best value within noise of the
unpruned search.

    python bench/search_pruning.py                      # quick pipeline + space, 20 trials
    python bench/search_pruning.py --n-trials 6 --pipeline pipelines/smoke.yaml \
        --space search_spaces/smoke.yaml
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from hzexp.config import load_search_space
from hzexp.search import run_search

REPO = Path(__file__).parents[1]


def epochs_spent(study: optuna.Study) -> int:
    """Training epochs over all trials: each epoch reports one intermediate value."""
    return sum(len(t.intermediate_values) for t in study.trials)


def run(pipeline: str, space: Path, pruner: str, n_trials: int, root: Path) -> dict:
    data = yaml.safe_load(space.read_text())
    data.setdefault("study", {})["pruner"] = pruner
    space_file = root / f"space-{pruner}.yaml"
    space_file.write_text(yaml.safe_dump(data, sort_keys=False))  # key order = suggestion order
    storage = f"sqlite:///{root / f'optuna-{pruner}.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / f'mlflow-{pruner}.db'}"
    start = time.perf_counter()
    outcome = run_search(pipeline, str(space_file), n_trials=n_trials, storage=storage,
                         study_name=f"bench-{pruner}", register=False)
    study = optuna.load_study(study_name=f"bench-{pruner}", storage=storage)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {"epochs": epochs_spent(study), "best": outcome.best_value, "pruned": pruned,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=str(REPO / "pipelines" / "quick.yaml"))
    parser.add_argument("--space", default=str(REPO / "search_spaces" / "quick.yaml"))
    parser.add_argument("--pruner", choices=("median", "percentile", "hyperband"),
                        help="override the space's pruner")
    parser.add_argument("--n-trials", type=int, default=20)
    args = parser.parse_args()
    pruner = args.pruner or load_search_space(args.space).study.pruner
    root = Path(tempfile.mkdtemp(prefix="hzexp-pruning-"))
    unpruned = run(args.pipeline, Path(args.space), "none", args.n_trials, root)
    pruned = run(args.pipeline, Path(args.space), pruner, args.n_trials, root)
    print(f"pipeline {args.pipeline}  space {args.space}  trials {args.n_trials}")
    for label, r in (("no pruning", unpruned), (f"{pruner} pruner", pruned)):
        print(f"{label:>16}: {r['epochs']:4d} epochs  best val SMAD(Dz) {r['best']:.4f}  "
              f"pruned {r['pruned']:2d}  {r['seconds']:.0f} s")
    print(f"epochs ratio pruned / unpruned: {pruned['epochs'] / unpruned['epochs']:.2f} "
          f"(target <= 0.60); best value ratio: {pruned['best'] / unpruned['best']:.3f}")


if __name__ == "__main__":
    main()
