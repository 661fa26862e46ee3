"""Where one ``ablation_sweep`` spends its time, timed piece by piece inside the sweep.

    python benchmarks/sweep_breakdown.py [--run runs/bench_analysis] [--checkpoints 8] [--threads 1]

``perf_counter`` around each LayerNorm, each MLP step (fc_in, activation, fc_out) and each
step of the attention (Q/K/V projections, QKᵀ, the 1/√d_head scale, softmax, the pattern edit,
A·V, the z rearrangement, O), summed over the sweeps of the last checkpoints (the first two
warm up), and printed as ms per checkpoint and share of the sweep. ``torch.profiler``'s
per-operator table misattributed this (it put GELU at 20 % and copies at 16 %; timed directly
GELU is 10-15 % and the copy it meant, the bias broadcast inside ``addmm``, 1-2 %), hence direct timing. On one thread (the default) the sweep runs its
chunks inline, so the pieces add up to the sweep; on more, they overlap.

The attention is timed through a step-by-step copy of ``PlateauAttention``'s pattern path
(softmax, no causal mask, no attention bias: ``tasks/lrmc_cpu.toml``), first checked against
the real module on a random input: the script stops if they differ.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import einops
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from analysis_throughput import ensure_run  # noqa: E402
from plateau_lens import ablation_sweep, load_run  # noqa: E402
from plateau_lens.analysis import analysis_batch  # noqa: E402
from plateau_lens.models.layers import PlateauAttention  # noqa: E402

seconds: dict[str, float] = collections.defaultdict(float)
clock = time.perf_counter
original_attention = PlateauAttention.forward


def timed_attention(self, hidden_states, attention_mask=None, position_ids=None, pattern_fn=None, **kwargs):
    if self.kind != "softmax" or self.causal or self.attention_bias.multiplier is not None:
        raise SystemExit("sweep_breakdown times bidirectional softmax attention without attention bias")
    start = clock()
    q, k, v = (einops.rearrange(proj(hidden_states), "b p (h d) -> b h p d", h=self.n_heads)
               for proj in (self.q, self.k, self.v))
    after_qkv = clock()
    scores = q @ k.transpose(-2, -1)
    after_scores = clock()
    scores = scores / self.scale
    after_scale = clock()
    pattern = scores.softmax(dim=-1)
    after_softmax = clock()
    if pattern_fn is not None:
        pattern = pattern_fn(pattern)
    after_edit = clock()
    z = pattern @ v
    after_av = clock()
    z = einops.rearrange(z, "... h p d -> ... p (h d)").contiguous()
    after_rearrange = clock()
    out = self.o(z)
    end = clock()
    for name, begin, finish in (("attention: Q, K, V linears", start, after_qkv),
                                ("attention: QKᵀ", after_qkv, after_scores),
                                ("attention: 1/√d_head scale", after_scores, after_scale),
                                ("attention: softmax", after_scale, after_softmax),
                                ("attention: pattern edit", after_softmax, after_edit),
                                ("attention: A·V", after_edit, after_av),
                                ("attention: z rearrangement", after_av, after_rearrange),
                                ("attention: O linear", after_rearrange, end)):
        seconds[name] += finish - begin
    return out, pattern


def check_timed_attention(attention, d_model: int) -> None:
    """The timed copy must compute what ``PlateauAttention`` computes (random input, the
    pattern path with an edit that changes nothing)."""
    hidden = torch.randn(4, 16, d_model, generator=torch.Generator().manual_seed(0))
    ours, _ = timed_attention(attention, hidden, pattern_fn=lambda pattern: pattern)
    reference, _ = original_attention(attention, hidden, pattern_fn=lambda pattern: pattern)
    if not torch.allclose(ours, reference, rtol=1e-5, atol=1e-6):
        raise SystemExit("the timed copy of PlateauAttention no longer computes what it does")


def time_module(module, name: str) -> None:
    forward = module.forward

    def wrapped(*args, **kwargs):
        begin = clock()
        result = forward(*args, **kwargs)
        seconds[name] += clock() - begin
        return result

    module.forward = wrapped


def time_mlp(mlp) -> None:
    for part, name in ((mlp.fc_in, "MLP: fc_in"), (mlp.fc_out, "MLP: fc_out")):
        time_module(part, name)
    activation = mlp.act

    def act(x):
        begin = clock()
        result = activation(x)
        seconds["MLP: activation"] += clock() - begin
        return result

    mlp.act = act


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/bench_analysis")
    parser.add_argument("--config", default=str(HERE.parent / "tasks" / "lrmc_cpu.toml"))
    parser.add_argument("--checkpoints", type=int, default=8, help="the first 2 warm up")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.checkpoints < 3:
        parser.error(f"--checkpoints must be at least 3 (2 warm up), got {args.checkpoints}")
    torch.set_num_threads(args.threads)
    run = load_run(ensure_run(Path(args.run), args.config, args.checkpoints))
    batch = analysis_batch(run, args.batch_size)
    models = [run.model(step) for step in run.steps[: args.checkpoints]]
    check_timed_attention(models[0].network.layers[0].attn, run.config.model.d_model)
    PlateauAttention.forward = timed_attention
    for model in models:
        for block in model.network.layers:
            time_module(block.ln1, "LayerNorms")
            time_module(block.ln2, "LayerNorms")
            time_mlp(block.mlp)
    for model in models[:2]:
        ablation_sweep(model, batch, progress=False)
    seconds.clear()
    start = clock()
    for model in models[2:]:
        ablation_sweep(model, batch, progress=False)
    measured = len(models) - 2
    total = (clock() - start) / measured * 1000
    print(f"ablation_sweep: {total:.0f} ms per checkpoint over {measured} checkpoints, batch "
          f"{args.batch_size}, {args.threads} thread(s)")
    named = 0.0
    for name, value in sorted(seconds.items()):
        ms = value / measured * 1000
        named += ms
        print(f"  {name:>28}: {ms:6.0f} ms {ms / total:6.1%}")
    print(f"  {'the rest':>28}: {total - named:6.0f} ms {(total - named) / total:6.1%}  "
          "(residual adds, embedding, read-out, metrics, Python)")


if __name__ == "__main__":
    main()
