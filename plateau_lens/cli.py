"""``plateau-lens`` command line: train, resume, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import load_config


def _overrides(args) -> dict:
    train = {}
    for key in ("steps", "seed", "device", "precision"):
        value = getattr(args, key, None)
        if value is not None:
            train[key] = value
    if getattr(args, "compile", False):
        train["compile"] = True
    return train


def dry_run(config):
    """Build the config's model and print what it is, without training or writing; returns
    the network."""
    from .models.build import build_network

    task = config.make_task()
    network = build_network(task, config.model, config.train.seed)
    n_parameters = sum(p.numel() for p in network.parameters())
    model = config.model
    print(f"task: {task.name} ({task.n_positions} positions, vocabulary {task.d_vocab}, "
          f"{task.attention_dir})")
    print(f"model: architecture={model.architecture}, {model.n_layers} layers, {model.n_heads} "
          f"heads, d_model {model.d_model}, d_mlp {model.resolved_d_mlp}, "
          f"{network.cfg.n_ctx} positions, attention={model.attention}")
    print(f"parameters: {n_parameters:,}".replace(",", " "))
    return network


def cmd_train(args) -> int:
    from .training import train

    config = load_config(args.config)
    overrides = _overrides(args)
    if overrides:
        config = config.replace(train=overrides)
    if args.dry_run:
        dry_run(config)
        return 0
    if args.out is None:
        raise ValueError("train needs --out DIR (or --dry-run)")
    out = train(config, args.out, progress=not args.quiet)
    print(f"run written to {out}")
    return 0


def cmd_resume(args) -> int:
    from .training import resume

    out = resume(args.run, progress=not args.quiet)
    print(f"run {out} finished")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.config, Path(args.out), steps=args.steps, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plateau-lens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a config into a run directory")
    p.add_argument("config", help="TOML config, e.g. tasks/mws.toml")
    p.add_argument("--out", help="run directory to create, e.g. runs/mws (required unless --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="build the model, print its size and parameter count, train nothing")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--precision", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    p.add_argument("run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("demo", help="train MWS through its plateau, plot and analyse it")
    p.add_argument("--config", default="tasks/mws.toml")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    from .llm.cli import add_llm_parser
    from .reproduce.cli import add_reproduce_parser

    add_llm_parser(sub)
    add_reproduce_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"plateau-lens: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
