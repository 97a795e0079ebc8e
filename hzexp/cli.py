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
    return parser


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
