"""The `hzexp` command (also `python -m hzexp`).

Each subcommand parses its arguments and hands over to one library function; heavy imports
(TensorFlow, MLflow) happen inside the handlers so `hzexp --help` and `hzexp simulate` stay
fast. Expected failures (bad config, bad dataset) print one line naming the file, key or
value and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hzexp.config import ConfigError
from hzexp.data.store import DatasetError


def _simulate(args: argparse.Namespace) -> None:
    from hzexp.data.mock import simulate

    path = simulate(args.out, n_galaxies=args.n_galaxies, seed=args.seed,
                    overwrite=args.overwrite)
    print(f"wrote {args.n_galaxies} mock galaxies to {path}")


def _train(args: argparse.Namespace) -> None:
    from hzexp.config import load_pipeline
    from hzexp.experiment import tracked_training

    config = load_pipeline(args.pipeline, args.set + args.overrides.split())
    outcome = tracked_training(config, pipeline_file=args.pipeline, run_name=args.run_name)
    print(outcome.summary())


def _search(args: argparse.Namespace) -> None:
    from hzexp.search import run_search

    outcome = run_search(args.pipeline, args.space, n_trials=args.n_trials, timeout=args.timeout,
                         storage=args.storage, study_name=args.study,
                         worker_index=args.worker_index,
                         heartbeat_interval=args.heartbeat_interval,
                         register=not args.no_register)
    print(outcome.summary())


def _register(args: argparse.Namespace) -> None:
    from hzexp.search import register_finished_study

    registration = register_finished_study(args.pipeline, args.space, args.study, args.storage)
    print(registration.summary() if registration else f"study {args.study}: nothing to register")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hzexp", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write the KiDS-like mock survey")
    simulate.add_argument("--n-galaxies", type=int, required=True)
    simulate.add_argument("--seed", type=int, default=42)
    simulate.add_argument("--out", required=True, help="dataset directory to create")
    simulate.add_argument("--overwrite", action="store_true")
    simulate.set_defaults(handler=_simulate)

    train = commands.add_parser("train", help="train Hybrid-z and log the run to MLflow")
    train.add_argument("--pipeline", default="pipelines/mock.yaml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a pipeline key, e.g. --set model.depth=3 (repeatable)")
    train.add_argument("--overrides", default="", metavar="'KEY=VALUE ...'",
                       help="space-separated overrides in one string (MLproject passes these)")
    train.add_argument("--run-name", default=None)
    train.set_defaults(handler=_train)

    search = commands.add_parser("search", help="Optuna search with nested MLflow runs; "
                                                "registers the best model")
    _study_arguments(search)
    search.add_argument("--n-trials", type=int, default=12,
                        help="finished trials the study should hold (across all workers)")
    search.add_argument("--timeout", type=float, default=None, help="seconds for this worker")
    search.add_argument("--worker-index", type=int, default=0,
                        help="distinct per parallel worker: offsets the sampler seed")
    search.add_argument("--heartbeat-interval", type=int, default=60,
                        help="seconds; a worker silent for two intervals has its trial retried")
    search.add_argument("--no-register", action="store_true",
                        help="leave the registry alone (e.g. for all but one worker)")
    search.set_defaults(handler=_search)

    register = commands.add_parser("register", help="register the best trial of a finished "
                                                    "study as a new hybrid-z version")
    _study_arguments(register)
    register.set_defaults(handler=_register)
    return parser


def _study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", default="pipelines/quick.yaml")
    parser.add_argument("--space", default="search_spaces/quick.yaml")
    parser.add_argument("--storage", default="sqlite:///optuna.db",
                        help="Optuna RDB storage URL (SQLite, or postgresql+psycopg://...)")
    parser.add_argument("--study", default=None,
                        help="study name (default: <pipeline name>-<space name>)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args.handler(args)
    except (ConfigError, DatasetError) as err:
        print(f"hzexp {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0
