"""Train the grokking run: ``python -m grokking.train --out runs/grokking`` from
``examples/grokking`` (or with it on ``PYTHONPATH``); ``--steps`` overrides ``train.steps``,
``--config`` another TOML. A run directory that holds a run is resumed."""

from __future__ import annotations

import argparse
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "grokking.toml"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m grokking.train", description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="run directory")
    parser.add_argument("--config", type=Path, default=CONFIG, help="TOML config (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from plateau_lens.config import load_config
    from plateau_lens.training.trainer import train_or_resume

    config = load_config(args.config)
    if args.steps is not None:
        config = config.replace(train={"steps": args.steps})
    return train_or_resume(config, args.out, progress=not args.no_progress)


if __name__ == "__main__":
    main()
