"""Time to the transition: wall time until the detected drop, plateau-lens vs the study-style
reference, trained side by side on the same batches.

    python benchmarks/time_to_transition.py [--config tasks/lrmc.toml] [--device cuda]
        [--precision bf16] [--compile] [--reference-precision fp32] [--steps 20000]
        [--log-every 50] [--time-limit 1800] [--out runs/time_to_transition]

Each implementation (``reference_loop.py``: the native network, or a `transformers` BERT /
GPT-2 in the study's style) trains in its own subprocess from seed-0 batches, one fresh batch
and one Adam step per step, and logs the config's loss (LRMC: masked MSE of the training
batch) every ``--log-every`` steps with the wall time since the first step. Logging reads the
loss from the device, so a GPU waits there; nothing else is synchronised. ``--time-limit``
(seconds per implementation) stops a run early. ``detect_transition`` then finds each curve's
plateau and drop; the script prints the drop step and the wall time to it for both and their
ratio, and writes ``curves.csv`` (step, seconds, loss per implementation) and
``time_to_transition.png`` (loss vs step and vs wall time, drops marked) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reference_loop import IMPLEMENTATIONS, training_step


def loss_name(task) -> str:
    return "masked_mse" if hasattr(task, "m") else "loss"  # LRMC: the study's masked MSE


def train_curve(impl: str, config_path: str, device: str, precision: str, compile_: bool,
                steps: int, log_every: int, time_limit: float, threads: int | None = None) -> dict:
    """Train ``impl`` for ``steps`` steps (or until ``time_limit`` seconds); the logged
    ``step``, ``seconds`` and loss lists."""
    import torch

    from plateau_lens import load_config

    if threads:
        torch.set_num_threads(threads)
    config = load_config(config_path)
    task = config.make_task()
    step = training_step(impl, config, device, precision, compile_)
    curve: dict[str, list] = {"step": [], "seconds": [], "loss": []}
    start = time.perf_counter()
    for index in range(steps):
        output, batch, loss = step(index)
        if index % log_every == 0 or index == steps - 1:
            # waits for the device: the time below includes the step
            value = task.metrics(output.detach().float(), batch)[loss_name(task)].item()
            curve["step"].append(index)
            curve["seconds"].append(time.perf_counter() - start)
            curve["loss"].append(value)
            if curve["seconds"][-1] > time_limit:
                break
    return curve


def seconds_at(curve: pd.DataFrame, step: int) -> float:
    """Wall time at ``step``, interpolated between logged points."""
    return float(np.interp(step, curve["step"], curve["seconds"]))


def summarise(curves: pd.DataFrame, loss: str) -> pd.DataFrame:
    """One row per implementation: the detected plateau and drop, and the wall time to it."""
    from plateau_lens import detect_transition
    from plateau_lens.transition import MIN_POINTS

    rows = []
    for impl, curve in curves.groupby("implementation", sort=False):
        transition = (detect_transition(curve.rename(columns={"loss": loss}), loss)
                      if len(curve) >= MIN_POINTS else None)
        row = {"implementation": impl, "steps": int(curve["step"].max()),
               "seconds": float(curve["seconds"].max()),
               "steps_per_s": float(curve["step"].max() / curve["seconds"].max())}
        if transition is not None:
            row.update(plateau_end=transition.plateau_end, drop_step=transition.drop_step,
                       drop_end=transition.drop_end, plateau_loss=transition.plateau_loss,
                       final_loss=transition.final_loss,
                       seconds_to_drop=seconds_at(curve, transition.drop_step))
        rows.append(row)
    return pd.DataFrame(rows)


def figure(curves: pd.DataFrame, summary: pd.DataFrame, loss: str, title: str):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for axis, x in zip(axes, ("step", "seconds")):
        sns.lineplot(data=curves, x=x, y="loss", hue="implementation", ax=axis)
        axis.set_yscale("log")
        axis.set_xlabel("step" if x == "step" else "wall time (s)")
        axis.set_ylabel(loss)
        for colour, (_, row) in zip(sns.color_palette(), summary.iterrows()):
            if pd.notna(row.get("drop_step")):
                axis.axvline(row["drop_step"] if x == "step" else row["seconds_to_drop"],
                             color=colour, ls="--", lw=1)
    axes[0].set_title("loss vs step (dashed: detected drop)")
    axes[1].set_title("loss vs wall time")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "tasks" / "lrmc.toml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="compile plateau-lens' network")
    parser.add_argument("--reference-precision", default="fp32", choices=["fp32", "bf16"],
                        help="numerics of the reference (default fp32: the study's own)")
    parser.add_argument("--steps", type=int, help="steps per implementation (default: the config's)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--time-limit", type=float, default=float("inf"),
                        help="seconds per implementation before it stops early")
    parser.add_argument("--threads", type=int, help="torch threads per implementation")
    parser.add_argument("--out", default="runs/time_to_transition")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_curve(**json.loads(args.child))))
        return
    from plateau_lens import load_config
    from plateau_lens.plots import save
    from plateau_lens.io import write_table

    config = load_config(args.config)  # a bad path or config fails here, before any training
    steps = config.train.steps if args.steps is None else args.steps
    for flag, value in (("--steps", steps), ("--log-every", args.log_every)):
        if value < 1:
            raise SystemExit(f"{flag} must be >= 1, got {value}")
    loss = loss_name(config.make_task())
    frames = []
    for impl in IMPLEMENTATIONS:
        ours = impl == "plateau-lens"
        spec = {"impl": impl, "config_path": args.config, "device": args.device,
                "precision": args.precision if ours else args.reference_precision,
                "compile_": args.compile and ours, "steps": steps, "log_every": args.log_every,
                "time_limit": args.time_limit, "threads": args.threads}
        print(f"training {impl} ({spec['precision']}{' + compile' if spec['compile_'] else ''}, "
              f"{steps} steps, {args.device}) ...", flush=True)
        output = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                capture_output=True, text=True, check=True).stdout
        frames.append(pd.DataFrame(json.loads(output.strip().splitlines()[-1])).assign(implementation=impl))
    curves = pd.concat(frames, ignore_index=True)
    summary = summarise(curves, loss)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(curves, out / "curves.csv")
    title = f"{Path(args.config).name} on {args.device}: time to the transition"
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if "seconds_to_drop" in summary and summary["seconds_to_drop"].notna().all():
        reference, ours = summary.set_index("implementation")["seconds_to_drop"][list(IMPLEMENTATIONS)]
        print(f"wall time to the drop: reference {reference:.1f} s, plateau-lens {ours:.1f} s, "
              f"ratio {reference / ours:.2f}x")
    else:
        print("no drop detected for at least one implementation: train longer (--steps)")
    print("wrote", out / "curves.csv", "and", save(figure(curves, summary, loss, title),
                                                   out / "time_to_transition.png"))


if __name__ == "__main__":
    main()
