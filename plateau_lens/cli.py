"""``plateau-lens`` command line: train, resume, analyze, demo, convert.

Exit status: 0 done; 2 refused before any work (a bad config or flag, a run another trainer
holds, a resume whose config disagrees with the run's checkpoints, an unreadable run, an
``--out`` holding files that are not a plateau-lens run); 3 training diverged (a non-finite
loss or weights; the last good checkpoint stays the resume point); 4 the operating system
failed a read or write (disk full, read-only file system, permission denied; files stay as
they were); 130 interrupted. Errors are one line, ``plateau-lens: error: <what> (<path>)``;
``--debug`` (anywhere on the line) adds the traceback. See docs/errors.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from pathlib import Path

log = logging.getLogger("plateau_lens")

from .errors import (  # noqa: F401  (EXIT_* are this module's public names too)
    EXIT_DIVERGED, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_REFUSED, PlateauLensError,
    describe_os_error, os_error_exit_code,
)
from .config.train import Precision
DEBUG_FLAG = "--debug"
PICKLE_HELP = ("also read legacy pickle checkpoints (step_N.pt): unpickling runs any code in the "
               "file, so only for runs you wrote yourself (better: `plateau-lens convert RUN`)")


def _overrides(args) -> list[str]:
    """``--set`` overrides, with the shorthand flags first (``--set`` wins on a clash)."""
    sets = []
    for key in ("steps", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            sets.append(f"train.{key}={value}")
    for key in ("device", "precision"):
        value = getattr(args, key, None)
        if value is not None:
            sets.append(f'train.{key}="{value}"')
    if getattr(args, "compile", False):
        sets.append("train.compile=true")
    return sets + list(getattr(args, "set", None) or [])


def dry_run(config):
    """Build the config's model and print what it is (task, architecture, sizes, parameter
    count, then the full config as JSON), without training or writing; returns the network."""
    from .models.build import build_network, check_model_for_task

    task = config.make_task()
    check_model_for_task(task, config.model)
    network = build_network(task, config.model, config.train.seed)
    n_parameters = sum(p.numel() for p in network.parameters())
    model = config.model
    print(f"task: {task.name} ({task.n_positions} positions, vocabulary {task.d_vocab}, "
          f"{task.attention_dir})")
    print(f"model: architecture={model.architecture}, {model.n_layers} layers, {model.n_heads} "
          f"heads, d_model {model.d_model}, d_mlp {model.resolved_d_mlp}, "
          f"{network.cfg.n_ctx} positions, attention={model.attention}")
    print(f"parameters: {n_parameters:,}".replace(",", " "))
    print(config.to_json())
    return network


def cmd_train(args) -> int:
    from .config import apply_overrides, load_config
    from .training import train

    config = apply_overrides(load_config(args.config), _overrides(args))
    if args.dry_run:
        dry_run(config)
        return 0
    if args.out is None:
        raise ValueError("train needs --out DIR (or --dry-run)")
    out = train(config, args.out, progress=not args.quiet)
    log.info("run written to %s", out)
    return 0


def cmd_resume(args) -> int:
    from .config import apply_overrides, load_config
    from .training import resume
    from .runs.layout import config_path

    config = None
    if args.set:
        config = apply_overrides(load_config(config_path(args.run)), args.set)
    out = resume(args.run, progress=not args.quiet, config=config,
                 allow_pickle=args.allow_legacy_pickle)
    log.info("run %s finished", out)
    return 0


def cmd_analyze(args) -> int:
    """Run registered analyzers over a run's checkpoints: one tidy CSV per analyzer in
    ``RUN/analysis/<name>.csv`` (or ``--out DIR``). Everything (the run, its task module, each
    analyzer and what it needs from the task) is checked before any checkpoint is read."""
    from .analysis.over_training import analyze_run, resolve_analyzers
    from .analyzers import parse_analyzers
    from .io import write_table
    from .runs.load import load_run
    from .runs.layout import analysis_dir, analysis_file

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    run = load_run(args.run, allow_pickle=args.allow_legacy_pickle)  # imports the task's module

    names = parse_analyzers(args.analyzers)
    resolve_analyzers(names, run.task)  # refuses an analyzer the task cannot serve
    steps = None
    if args.steps:
        try:
            steps = [int(step) for step in args.steps.split(",")]
        except ValueError:
            raise ValueError(f"--steps must be comma-separated checkpoint steps, got {args.steps!r}; "
                             f"available: {run.steps}") from None
    out = Path(args.out) if args.out else analysis_dir(run.path)
    for name in names:
        frame = analyze_run(run, [name], steps=steps, batch_size=args.batch_size,
                            progress=not args.quiet)
        out.mkdir(parents=True, exist_ok=True)
        write_table(frame, out / analysis_file(name))
        log.info("%s: %d rows over %d checkpoints -> %s", name, len(frame),
                 frame["step"].nunique(), out / analysis_file(name))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .config import shipped_config

    config = args.config or shipped_config("mws.toml")
    run_demo(config, Path(args.out), steps=args.steps, progress=not args.quiet)
    return 0


def cmd_convert(args) -> int:
    from .training.convert import convert_run

    written = convert_run(args.run)
    log.info("converted %d checkpoint(s) in %s", len(written), args.run)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plateau-lens", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help="on an error, also print its Python traceback (accepted anywhere "
                             "on the command line)")
    sub = parser.add_subparsers(dest="command", required=True)
    set_help = ("override any config field, e.g. --set train.lr=3e-4 --set model.d_model=128 "
                "(the value is read as TOML: numbers, true/false, \"strings\", [lists]; repeatable)")

    p = sub.add_parser("train", help="train a config into a new run directory")
    p.add_argument("config", help="TOML config, e.g. tasks/mws.toml")
    p.add_argument("--out",
                   help="run directory to create (absent, or a directory without config.json, "
                        "metrics.csv or checkpoints/), e.g. runs/mws; required unless --dry-run")
    p.add_argument("--dry-run", action="store_true",
                   help="build the model, print its size, parameter count and config; train nothing")
    p.add_argument("--set", action="append", metavar="TABLE.FIELD=VALUE", help=set_help)
    p.add_argument("--steps", type=int, help="shorthand for --set train.steps=N")
    p.add_argument("--seed", type=int, help="shorthand for --set train.seed=N")
    p.add_argument("--device", help="shorthand for --set train.device=...")
    p.add_argument("--precision", choices=typing.get_args(Precision),
                   help="shorthand for --set train.precision=...")
    p.add_argument("--compile", action="store_true", help="shorthand for --set train.compile=true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its newest checkpoint that verifies")
    p.add_argument("run")
    p.add_argument("--set", action="append", metavar="TABLE.FIELD=VALUE",
                   help="change train.steps, train.device, train.compile or train.trackers (e.g. train longer: "
                        "--set train.steps=20000); other fields are fixed for a run")
    p.add_argument("--allow-legacy-pickle", action="store_true", help=PICKLE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("analyze", help="run registered analyzers over a run's checkpoints")
    p.add_argument("run")
    p.add_argument("--analyzers", required=True, metavar="NAMES",
                   help="comma-separated analyzer names: shipped (e.g. attention_progress, "
                        "ablate_heads, ablation_sweep, repetition), registered by a plugin with "
                        "plateau_lens.register_analyzer, an entry point of group "
                        "plateau_lens.analyzers, or 'module:function'")
    p.add_argument("--steps", help="comma-separated checkpoint steps (default: all)")
    p.add_argument("--batch-size", type=int, default=256,
                   help="held-out batch the analyzers read (same for every checkpoint)")
    p.add_argument("--out", help="directory for <analyzer>.csv (default: RUN/analysis)")
    p.add_argument("--allow-legacy-pickle", action="store_true", help=PICKLE_HELP)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("demo", help="train MWS through its plateau, plot and analyse it")
    p.add_argument("--config", help="TOML config (default: the shipped tasks/mws.toml, "
                                    "wherever the command runs)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("convert", help="rewrite a legacy run's step_N.pt checkpoints as safetensors "
                                       "(unpickles them: only for runs you wrote yourself)")
    p.add_argument("run")
    p.set_defaults(func=cmd_convert)

    from .development.cli import add_report_parser
    from .llm.cli import add_llm_parser
    from .reproduce.cli import add_reproduce_parser
    from .sweep.cli import add_sweep_parser

    add_llm_parser(sub)
    add_reproduce_parser(sub)
    add_sweep_parser(sub)
    add_report_parser(sub)
    return parser


class StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a message comes (a test's
    capture or a redirect may have replaced the one there was at set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """plateau-lens messages (warnings, progress notes) to stderr, once."""
    if not log.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("plateau-lens: %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    args = build_parser().parse_args(argv)  # --help and bad flags: answered before torch loads
    from tqdm.contrib.logging import logging_redirect_tqdm

    setup_logging()

    def work() -> int:
        with logging_redirect_tqdm(loggers=[log]):
            return args.func(args)

    return report_errors(work, debug, interrupted=lambda: _resume_hint(args))


def report_errors(work, debug: bool = False, interrupted=lambda: "", prog: str = "plateau-lens") -> int:
    """Run ``work()`` and turn what it raises into one line on stderr and an exit status:
    every error of ours (``PlateauLensError``, and the ``ValueError``/``RuntimeError`` our
    validators raise) and every ``OSError`` as ``<prog>: error: <what> (<path>)``; exit
    2 for bad input, 3 for a diverged run, 4 for an operating-system failure (disk full,
    read-only, permissions). ``debug``: the traceback too. Any other exception is a bug and
    propagates with its traceback."""
    import traceback

    from .training import TrainingDiverged

    def say(text: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {text}", file=sys.stderr)
        return code

    try:
        return work()
    except TrainingDiverged as error:
        return say(str(error), EXIT_DIVERGED)
    except OSError as error:  # a missing or wrong-kind path: 2; the machine failing: 4
        return say(describe_os_error(error), os_error_exit_code(error))
    except (PlateauLensError, ValueError, RuntimeError) as error:
        return say(str(error) or type(error).__name__, EXIT_REFUSED)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prog}: interrupted{interrupted()}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _resume_hint(args: argparse.Namespace) -> str:
    """For an interrupted train / resume / demo: where its run stands and how to go on."""
    from .runs.layout import config_path, list_checkpoints

    run_dir = {"train": getattr(args, "out", None), "demo": getattr(args, "out", None),
               "resume": getattr(args, "run", None)}.get(args.command)
    if run_dir is None or not config_path(run_dir).is_file():
        return ""
    steps = list_checkpoints(run_dir)
    kept = f"keeps its checkpoints up to step {max(steps)}" if steps else "has no checkpoint yet"
    again = "re-run the same demo command" if args.command == "demo" else f"plateau-lens resume {run_dir}"
    return f": {run_dir} {kept}; go on with: {again}"


if __name__ == "__main__":
    sys.exit(main())
