"""Rewrite a legacy run (``checkpoints/step_N.pt``, pickles) in the safetensors format.

    plateau-lens convert RUN_DIR        (or: python -m plateau_lens.training.convert RUN_DIR)

Reading the ``.pt`` files unpickles them, which runs any code they hold: convert only runs
you wrote yourself. Each ``step_N.pt`` gets a ``step_N.safetensors`` + ``step_N.state`` beside
it (the metrics rows before step N taken from ``metrics.csv``); the ``.pt`` files are left in
place and are ignored once converted (delete them when you are satisfied).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


from ..io import RunLock, read_table
from ..runs.layout import LEGACY_FORM, WEIGHTS_SUFFIX, checkpoint_dir, legacy_checkpoints, metrics_path
from ..runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

log = logging.getLogger("plateau_lens")


def convert_run(run_dir: str | Path) -> list[Path]:
    """Write the new-format checkpoint of every legacy one not yet converted; returns them."""
    run_dir = Path(run_dir)
    legacy = legacy_checkpoints(run_dir)
    if not legacy:
        raise FileNotFoundError(f"{checkpoint_dir(run_dir)} holds no legacy {LEGACY_FORM} checkpoints")
    metrics = metrics_path(run_dir)
    frame = read_table(metrics) if metrics.is_file() else None
    written = []
    with RunLock(run_dir) as lock:
        lock.record_owner()
        for path in legacy:
            target = path.with_suffix(WEIGHTS_SUFFIX)
            if target.exists():
                continue
            payload = load_checkpoint(path, allow_pickle=True)
            step = int(payload["step"])
            if frame is not None and "step" in frame:
                rows = frame[frame["step"] < step].to_dict("records")
            elif step == 0:
                rows = []
            else:
                raise CheckpointError(f"{metrics} is missing or has no 'step' column: the "
                                      f"metrics of step {step} cannot be carried over")
            save_checkpoint(target, step=step, config=payload["config"], model=payload["model"],
                            optimizer=payload.get("optimizer"), scheduler=payload.get("scheduler"),
                            metrics=rows, rng=payload["rng"])
            load_checkpoint(target)  # verify what was written
            written.append(target)
            log.info("converted %s -> %s", path.name, target.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plateau_lens.training.convert",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    args = parser.parse_args(argv)
    try:
        written = convert_run(args.run)
    except (ValueError, FileNotFoundError, RuntimeError) as error:  # as plateau-lens convert
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"converted {len(written)} checkpoint(s) in {args.run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
