"""The `hzexp` command (also `python -m hzexp`).

Each subcommand parses its arguments and hands over to one library function; heavy imports
(TensorFlow, MLflow) happen inside the handlers so `hzexp --help` and `hzexp simulate` stay
fast. Expected failures (bad config, bad dataset) print one line naming the file, key or
value and exit with status 2; anything else is a bug and keeps its traceback.

Output is hzexp's own (progress, results, errors, warnings a user should act on); the
libraries' start-up chatter appears only with `--verbose` or HZEXP_VERBOSE=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hzexp import chatter
from hzexp.config import ConfigError
from hzexp.data.store import DatasetError
from hzexp.inference.errors import PredictionError
from hzexp.inference.forkserver import start_fork_server


def _simulate(args: argparse.Namespace) -> None:
    from hzexp.config import apply_overrides
    from hzexp.data.mock import MockParameters, simulate

    params = MockParameters.with_overrides(apply_overrides({}, args.set))
    path = simulate(args.out, n_galaxies=args.n_galaxies, seed=args.seed,
                    overwrite=args.overwrite, params=params)
    print(f"wrote {args.n_galaxies} mock galaxies to {path}")


def _train(args: argparse.Namespace) -> None:
    from hzexp.config import load_pipeline
    from hzexp.experiment import tracked_training

    config = load_pipeline(args.pipeline, args.set + args.overrides.split())
    if args.kfold:
        from hzexp.experiment import tracked_kfold

        summary = tracked_kfold(config, args.kfold, args.pipeline, run_name=args.run_name)
        print(f"{args.kfold}-fold SMAD(Dz) {summary['kfold_mean_smad_dz']:.4f} "
              f"+- {summary['kfold_std_smad_dz']:.4f} (std over folds)")
        return
    outcome = tracked_training(config, pipeline_file=args.pipeline, run_name=args.run_name)
    print(outcome.summary())


def _ingest(args: argparse.Namespace) -> None:
    from hzexp.data.kids import ingest

    report = ingest(args.tiles, args.photometry, args.out, spec_file=args.spec,
                    match_radius_arcsec=args.match_radius, cutout_size=args.cutout_size,
                    column_map=_mapping(args.column), edge_policy=args.edge_policy,
                    overwrite=args.overwrite)
    print(report.summary())


def _import_official(args: argparse.Namespace) -> None:
    from hzexp.data.kids.official import read_official_table

    path = read_official_table(args.fits, args.out, overwrite=args.overwrite)
    print(f"wrote {path}")


def _evaluate(args: argparse.Namespace) -> None:
    from hzexp.experiment import tracked_evaluation

    table = tracked_evaluation(args.model_uri, args.data, name=args.name, out=args.out)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _predict(args: argparse.Namespace) -> None:
    import glob

    from hzexp.inference import predict_catalogue
    from hzexp.inference.shards import is_directory_output, predict_shards

    options = {"model_uri": args.model_uri, "batch_size": args.batch_size,
               "chunk_size": args.chunk_size, "progress": not args.no_progress,
               "restart": args.restart, "overwrite": args.overwrite, "workers": args.workers,
               "scheduler": args.scheduler}
    if len(args.data) > 1 or glob.has_magic(args.data[0]) or is_directory_output(args.out):
        if args.evaluate or args.pdf_out:
            raise ConfigError("--evaluate and --pdf-out take one dataset and one output file")
        report = predict_shards(args.data, args.out, **options)
    else:
        report = predict_catalogue(args.data[0], args.out, evaluate=args.evaluate,
                                   pdf_out=args.pdf_out, **options)
    print(report.summary())


def _verify(args: argparse.Namespace) -> None:
    from hzexp.data.store import Dataset

    dataset = Dataset.open(args.dir, check_content=False)
    recorded = dataset.verify()
    print(f"{dataset.path}: OK, {len(dataset)} galaxies match content hash "
          f"{dataset.content_hash}" + (f" (recorded {', '.join(recorded)} in the manifest)"
                                       if recorded else ""))


def _mapping(items: list[str]) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in items]
    bad = [item for item, pair in zip(items, pairs) if len(pair) != 2]
    if bad:
        raise ConfigError(f"--column {bad[0]!r}: expected KIDS_NAME=ACTUAL_NAME")
    return dict(pairs)


def _search(args: argparse.Namespace) -> None:
    from hzexp.search import run_search

    outcome = run_search(args.pipeline, args.space, n_trials=args.n_trials, timeout=args.timeout,
                         storage=args.storage, study_name=args.study,
                         worker_index=args.worker_index,
                         heartbeat_interval=args.heartbeat_interval,
                         register=not args.no_register, progress=not args.no_progress)
    print(outcome.summary())


def _register(args: argparse.Namespace) -> None:
    from hzexp.search import register_finished_study

    registration = register_finished_study(args.pipeline, args.space, args.study, args.storage)
    print(registration.summary() if registration else f"study {args.study}: nothing to register")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hzexp", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the libraries' own logs (also HZEXP_VERBOSE=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write the KiDS-like mock survey")
    simulate.add_argument("--n-galaxies", type=int, required=True)
    simulate.add_argument("--seed", type=int, default=42)
    simulate.add_argument("--out", required=True, help="dataset directory to create")
    simulate.add_argument("--overwrite", action="store_true")
    simulate.add_argument("--set", action="append", default=[], metavar="PARAMETER=VALUE",
                          help="a mock parameter other than its default, e.g. --set "
                               "psf_fwhm_scale=1.2 for 20%% worse seeing (repeatable)")
    simulate.set_defaults(handler=_simulate)

    train = commands.add_parser("train", help="train Hybrid-z and log the run to MLflow")
    train.add_argument("--pipeline", default="pipelines/mock.yaml")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a pipeline key, e.g. --set model.depth=3 (repeatable)")
    train.add_argument("--overrides", default="", metavar="'KEY=VALUE ...'",
                       help="space-separated overrides in one string (MLproject passes these)")
    train.add_argument("--run-name", default=None)
    train.add_argument("--kfold", type=int, default=0, metavar="K",
                       help="k-fold cross-validation (paper: 5) as K nested runs")
    train.set_defaults(handler=_train, keras_backend=True)

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
    search.add_argument("--no-progress", action="store_true",
                        help="log lines per epoch and trial instead of progress bars")
    search.set_defaults(handler=_search, keras_backend=True)

    register = commands.add_parser("register", help="register the best trial of a finished "
                                                    "study as a new hybrid-z version")
    _study_arguments(register)
    register.set_defaults(handler=_register, keras_backend=True)

    ingest = commands.add_parser("ingest", help="KiDS DR4 tiles + KiDS-Bright catalogue "
                                                "(+ GAMA spec-z) -> dataset directory")
    ingest.add_argument("--tiles", required=True, help="directory of u,g,r,i tile FITS files")
    ingest.add_argument("--photometry", required=True, help="KiDS-Bright catalogue "
                                                             "(FITS, parquet or CSV)")
    ingest.add_argument("--spec", default=None, help="GAMA-style RA, DEC, Z, NQ catalogue")
    ingest.add_argument("--out", required=True)
    ingest.add_argument("--match-radius", type=float, default=1.0, help="arcsec")
    ingest.add_argument("--cutout-size", type=int, default=48, help="stored stamp size, px")
    ingest.add_argument("--edge-policy", choices=("drop", "pad"), default="drop",
                        help="cutouts running off a tile: drop, or zero-pad and flag masked")
    ingest.add_argument("--column", action="append", default=[], metavar="KIDS=ACTUAL",
                        help="column spelling map, e.g. MAG_AUTO=MAG_AUTO_r (repeatable)")
    ingest.add_argument("--overwrite", action="store_true")
    ingest.set_defaults(handler=_ingest)

    official = commands.add_parser("import-official", help="official Hybrid-z FITS table "
                                                           "-> dataset directory")
    official.add_argument("--fits", required=True)
    official.add_argument("--out", required=True)
    official.add_argument("--overwrite", action="store_true")
    official.set_defaults(handler=_import_official)

    evaluate = commands.add_parser("evaluate", help="external validation (paper Table 2) "
                                                    "of a model on a labelled dataset")
    evaluate.add_argument("--model-uri", default="models:/hybrid-z@champion")
    evaluate.add_argument("--data", required=True, help="labelled dataset directory")
    evaluate.add_argument("--name", default=None, help="sample label (default: directory name)")
    evaluate.add_argument("--out", default=None, help="also write the rows to this CSV")
    evaluate.set_defaults(handler=_evaluate, keras_backend=True)

    predict = commands.add_parser("predict", help="photo-z catalogue from a registered model "
                                                  "(streamed, resumable)")
    predict.add_argument("--data", required=True, nargs="+",
                         help="dataset directory, or an official Hybrid-z FITS table "
                              "(.fits, .fit, .fits.gz); or several dataset directories (or a "
                              "quoted glob), the shards of one catalogue")
    predict.add_argument("--out", required=True,
                         help="output catalogue: FITS if it ends in .fits, else parquet; DIR/ "
                              "for one parquet file per shard")
    predict.add_argument("--model-uri", default="models:/hybrid-z@champion")
    predict.add_argument("--batch-size", type=int, default=256)
    predict.add_argument("--chunk-size", type=int, default=2048)
    predict.add_argument("--evaluate", action="store_true",
                         help="also write Table 1 against z_spec to <out stem>_stats.csv")
    predict.add_argument("--restart", action="store_true",
                         help="discard an unfinished run's parts instead of resuming it")
    predict.add_argument("--workers", type=int, default=None, metavar="N",
                         help="predict on a local Dask cluster of N worker processes")
    predict.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="predict on the Dask cluster at this scheduler address "
                              "(tcp://HOST:PORT)")
    predict.add_argument("--pdf-out", default=None, metavar="FILE",
                         help="a PDF model's PDFs of every galaxy, as a qp HDF5 file")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace an existing --out file that is not this command's own "
                              "output (never a file of the input dataset)")
    predict.add_argument("--no-progress", action="store_true")
    predict.set_defaults(handler=_predict, keras_backend=True)

    verify = commands.add_parser("verify", help="recompute a dataset directory's content hash "
                                                "and compare it with its manifest")
    verify.add_argument("dir", help="dataset directory")
    verify.set_defaults(handler=_verify)
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
    if args.verbose:
        os.environ["HZEXP_VERBOSE"] = "1"  # for the processes it starts: Dask's workers
    verbose = chatter.is_verbose()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        chatter.hold_back()
    if getattr(args, "workers", None) and getattr(args, "scheduler", None) is None:
        # its workers' imports (~6 s on 2 cores) run beside this process's own
        start_fork_server()
    if getattr(args, "keras_backend", False) and not verbose and not _on_a_cluster(args):
        with chatter.native_start_up_hidden():
            chatter.start_keras_backend()
    try:
        args.handler(args)
    except (ConfigError, DatasetError, PredictionError) as err:
        print(f"hzexp {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


def _on_a_cluster(args: argparse.Namespace) -> bool:
    """Whether the command only drives a Dask cluster, whose workers load the model: then
    this process never starts Keras (and TensorFlow)."""
    return bool(getattr(args, "workers", None) or getattr(args, "scheduler", None))
