"""``plateau-lens`` command line: train, resume, analyze, demo, convert.

Exit status: 0 done; 2 refused before any work (a bad config or flag, a run another trainer
holds, a resume whose config disagrees with the run's checkpoints, an unreadable run, an
``--out`` holding files that are not a plateau-lens run); 3 training diverged (a non-finite
loss or weights; the last good checkpoint stays the resume point).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("plateau_lens")

EXIT_REFUSED = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
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
    from .training.trainer import CONFIG_FILE

    config = None
    if args.set:
        config = apply_overrides(load_config(Path(args.run) / CONFIG_FILE), args.set)
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
    from .run import load_run
    from .sweep.analyze import ANALYSIS_DIR

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
    out = Path(args.out) if args.out else run.path / ANALYSIS_DIR
    for name in names:
        frame = analyze_run(run, [name], steps=steps, batch_size=args.batch_size,
                            progress=not args.quiet)
        out.mkdir(parents=True, exist_ok=True)
        write_table(frame, out / f"{name}.csv")
        log.info("%s: %d rows over %d checkpoints -> %s", name, len(frame),
                 frame["step"].nunique(), out / f"{name}.csv")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .reproduce.common import config_path

    config = args.config or config_path("mws.toml")
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
    p.add_argument("--precision", choices=["fp32", "bf16"], help="shorthand for --set train.precision=...")
    p.add_argument("--compile", action="store_true", help="shorthand for --set train.compile=true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its newest checkpoint that verifies")
    p.add_argument("run")
    p.add_argument("--set", action="append", metavar="TABLE.FIELD=VALUE",
                   help="change train.steps, train.device or train.compile (e.g. train longer: "
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

    from .llm.cli import add_llm_parser
    from .reproduce.cli import add_reproduce_parser
    from .sweep.cli import add_sweep_parser

    add_llm_parser(sub)
    add_reproduce_parser(sub)
    add_sweep_parser(sub)
    return parser


def setup_logging() -> None:
    """plateau-lens messages (warnings, progress notes) to stderr, once."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("plateau-lens: %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and bad flags: answered before torch loads
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .training import TrainingDiverged

    setup_logging()
    try:
        with logging_redirect_tqdm(loggers=[log]):
            return args.func(args)
    except TrainingDiverged as error:
        print(f"plateau-lens: error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"plateau-lens: error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print(f"plateau-lens: interrupted{_resume_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _resume_hint(args: argparse.Namespace) -> str:
    """For an interrupted train / resume / demo: where its run stands and how to go on."""
    from .training.checkpoint import list_checkpoints

    run_dir = {"train": getattr(args, "out", None), "demo": getattr(args, "out", None),
               "resume": getattr(args, "run", None)}.get(args.command)
    if run_dir is None or not (Path(run_dir) / "config.json").is_file():
        return ""
    steps = list_checkpoints(run_dir)
    kept = f"keeps its checkpoints up to step {max(steps)}" if steps else "has no checkpoint yet"
    again = "re-run the same demo command" if args.command == "demo" else f"plateau-lens resume {run_dir}"
    return f": {run_dir} {kept}; go on with: {again}"


if __name__ == "__main__":
    sys.exit(main())
