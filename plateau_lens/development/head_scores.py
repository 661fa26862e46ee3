"""Head-type scores per head and checkpoint, and each head's onset.

Causal models (our GPT tasks, LLM checkpoint series): the three scores of TransformerLens'
``head_detector`` (after Olsson et al. 2022, *In-context learning and induction heads*, and
Elhage et al. 2021), on repeated random sequences ``r r`` (Olsson et al.'s "prefix matching"
test input):

* ``previous_token``: attention from query q to key q − 1;
* ``duplicate_token``: attention to earlier keys holding the same token as q;
* ``induction``: attention to keys k whose *previous* token equals q's token (the token after
  an earlier copy of the current one: prefix matching).

Score of a head = Σ_{q,k} |A_qk| D_qk / Σ_{q,k} |A_qk| per sequence, averaged over sequences,
with A = ``blocks.{l}.attn.hook_pattern`` and D the 0/1 detection pattern (exactly
``detect_head``'s ``"mul"`` measure, which uses A without the absolute value: identical for
softmax attention; |A| keeps the score in [0, 1] for the loss-plateau study's linear attention,
whose pattern can be negative).

Bidirectional encoders (LRMC's BERT) have no causal head types: :func:`head_scores` reports the
task-structured shares of :func:`~plateau_lens.analysis.attention_structure` (same row, same
column, ...) instead; tasks with an optimal attention mask also get
:func:`~plateau_lens.analysis.attention_progress`, in the same tidy rows.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch
from einops import rearrange
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from ..analysis.schema import record, tidy

HEAD_TYPES = ("previous_token", "duplicate_token", "induction")


def repeated_random_tokens(d_vocab: int, half_length: int, n_sequences: int = 16, seed: int = 0,
                           low: int = 0, prefix: Int[torch.Tensor, "n_prefix"] | None = None
                           ) -> Int[torch.Tensor, "batch seq"]:
    """``n_sequences`` rows of ``prefix + r + r`` with r uniform in [low, d_vocab) of length
    ``half_length`` (Olsson et al.'s repeated random tokens), from a fixed seed."""
    if half_length < 2 or n_sequences < 1 or not 0 <= low < d_vocab:
        raise ValueError(f"need half_length >= 2, n_sequences >= 1 and 0 <= low < d_vocab; got "
                         f"{half_length}, {n_sequences}, {low}, {d_vocab}")
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(low, d_vocab, (n_sequences, half_length), generator=generator)
    tokens = torch.cat([half, half], dim=1)
    if prefix is not None:
        tokens = torch.cat([prefix.expand(n_sequences, -1), tokens], dim=1)
    return tokens


def detection_patterns(tokens: Int[torch.Tensor, "batch seq"]
                       ) -> dict[str, Float[torch.Tensor, "batch query key"]]:
    """The 0/1 detection pattern D of each head type, per sequence (lower-triangular)."""
    batch, length = tokens.shape
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    previous = torch.zeros(length, length, dtype=torch.bool)
    previous[1:, :-1] = torch.eye(length - 1, dtype=torch.bool)
    same = rearrange(tokens, "b q -> b q 1") == rearrange(tokens, "b k -> b 1 k")
    duplicate = same & causal.tril(-1)
    induction = torch.zeros_like(duplicate)
    induction[:, :, 1:] = duplicate[:, :, :-1]  # key k scores when token k−1 duplicates q
    induction &= causal
    return {"previous_token": previous.expand(batch, -1, -1).double(),
            "duplicate_token": duplicate.double(), "induction": induction.double()}


@torch.no_grad()
def causal_head_scores(model, tokens: Int[torch.Tensor, "batch seq"]) -> pd.DataFrame:
    """The three head-type scores (module docstring) of every head on ``tokens``. ``model``: a
    PlateauModel, an LLM ``PretrainedModel`` or a TransformerBridge. Tidy rows, metric =
    the head type, hook = that layer's ``hook_pattern``."""
    bridge = getattr(model, "bridge", model)
    if tokens.ndim != 2 or tokens.shape[1] < 3:
        raise ValueError(f"tokens must be [batch, seq] with seq >= 3, got {tuple(tokens.shape)}")
    if bridge.cfg.n_ctx is not None and tokens.shape[1] > bridge.cfg.n_ctx:
        raise ValueError(f"tokens has {tokens.shape[1]} positions, the model takes at most "
                         f"{bridge.cfg.n_ctx}")
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(bridge.cfg.n_layers)]
    device = next(bridge.parameters()).device
    _, cache = bridge.run_with_cache(tokens.to(device), names_filter=lambda n: n in names)
    patterns = detection_patterns(tokens.cpu())
    records = []
    for name in names:
        magnitude = cache[name].double().abs().cpu()  # [batch head query key]
        total = magnitude.sum(dim=(-2, -1)).clamp(min=1e-300)
        for metric, detection in patterns.items():
            matched = torch.einsum("bhqk,bqk->bh", magnitude, detection)
            scores = (matched / total).mean(0)
            records += [record(metric, value, hook=name, head=head)
                        for head, value in enumerate(scores.tolist())]
    return tidy(records)


def default_tokens(model, n_sequences: int = 16, seed: int = 0) -> Int[torch.Tensor, "batch seq"]:
    """Repeated random tokens that fit ``model``: half the context (at most 32 tokens) twice,
    over the task's vocabulary (an LLM: its whole vocabulary, after a BOS where it has one)."""
    bridge = getattr(model, "bridge", model)
    task = getattr(model, "task", None)
    n_positions = task.n_positions if task is not None else min(bridge.cfg.n_ctx or 64, 64)
    d_vocab = task.d_vocab if task is not None else bridge.cfg.d_vocab
    tokenizer = getattr(bridge, "tokenizer", None)
    bos = getattr(tokenizer, "bos_token_id", None) if task is None else None
    prefix = None if bos is None else torch.tensor([bos])
    half = min(32, (n_positions - (prefix is not None)) // 2)
    return repeated_random_tokens(d_vocab, half, n_sequences, seed, prefix=prefix)


def head_scores(model, batch=None, tokens: torch.Tensor | None = None) -> pd.DataFrame:
    """The head scores that apply to ``model``: causal models get :func:`causal_head_scores` on
    ``tokens`` (default :func:`default_tokens`) plus attention progress where their task has
    an optimal mask; bidirectional encoders get ``attention_structure`` on ``batch`` (needed
    then). Tidy rows (:mod:`plateau_lens.analysis.schema`)."""
    from ..analysis import attention_progress, attention_structure

    task = getattr(model, "task", None)
    if task is not None and task.attention_dir == "bidirectional":
        if batch is None:
            raise ValueError("head_scores on a bidirectional encoder reads attention_structure "
                             "on a task batch: pass batch=")
        return attention_structure(model, batch)
    frames = [causal_head_scores(model, default_tokens(model) if tokens is None else tokens)]
    if task is not None and batch is not None and task.optimal_attention() is not None:
        frames.append(attention_progress(model, batch))
    return pd.concat(frames, ignore_index=True)


def head_scores_over_checkpoints(models: Iterable[tuple[int, object]], batch=None,
                                 tokens: torch.Tensor | None = None, progress: bool = True,
                                 total: int | None = None) -> pd.DataFrame:
    """:func:`head_scores` of every ``(step, model)``, with ``step`` in front (the same tokens
    at every checkpoint)."""
    frames = []
    for step, model in tqdm(models, total=total, desc="head scores", disable=not progress):
        if tokens is None and getattr(getattr(model, "task", None), "attention_dir", "causal") == "causal":
            tokens = default_tokens(model)
        frame = head_scores(model, batch, tokens)
        frame.insert(0, "step", step)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def head_curves(scores: pd.DataFrame) -> pd.DataFrame:
    """Per head and metric, the curve over steps as onset rows (``measure`` = "induction
    L1H0", ...)."""
    measure = (scores["metric"] + " L" + scores["layer"].astype(str) + "H"
               + scores["head"].astype(str))
    return pd.DataFrame({"measure": measure, "step": scores["step"], "value": scores["value"]})


def plot_head_scores(scores: pd.DataFrame, transition=None, title: str = "",
                     onsets: pd.DataFrame | None = None):
    """One panel per metric: each head's score against the step (one line per layer·head), the
    loss's drop as a dashed line. With ``onsets`` (an :func:`~.onsets.onset_table` of
    :func:`head_curves`), each panel marks the onset of its head whose score rises most (largest
    ``change``) by a dotted line in that head's colour, or says that no head's score rises."""
    import seaborn as sns
    from matplotlib.figure import Figure

    from ..plots import step_axis

    metrics = list(dict.fromkeys(scores["metric"]))
    figure = Figure(figsize=(4.2 * len(metrics), 3.8), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    frame = scores.assign(head_label="L" + scores["layer"].astype(str) + "H"
                          + scores["head"].astype(str))
    labels = list(dict.fromkeys(frame["head_label"]))
    palette = dict(zip(labels, sns.color_palette("husl", len(labels))))
    for axis, metric in zip(axes, metrics):
        sns.lineplot(frame[frame["metric"] == metric], x="step", y="value", hue="head_label",
                     palette=palette, ax=axis, legend=axis is axes[-1])
        if transition is not None:
            axis.axvline(transition.drop_step, color="black", ls="--", lw=1, label="loss drop")
        rising = None if onsets is None else onsets[
            onsets["measure"].str.startswith(metric + " ") & onsets["onset_step"].notna()]
        if rising is not None and len(rising) and rising["change"].astype(float).max() <= 0:
            axis.annotate(f"no head's score rises (largest change "
                          f"{rising['change'].astype(float).max():+.4f})", (0.02, 0.97),
                          xycoords="axes fraction", va="top", fontsize=7)
        elif rising is not None and len(rising):
            top = rising.loc[rising["change"].astype(float).idxmax()]
            head = top["measure"].split(" ", 1)[1]
            axis.axvline(float(top["onset_step"]), color=palette.get(head, "grey"), ls=":", lw=1.5)
            axis.annotate(f"onset {head}: step {int(top['onset_step'])}\n(change "
                          f"{float(top['change']):+.3f})", (0.02, 0.97), xycoords="axes fraction",
                          va="top", fontsize=7)
        axis.set_title(metric.replace("_", " "))
        step_axis(axis, frame["step"], "training step")
        axis.set_ylabel("score (share of attention)")
    if axes[-1].get_legend() is not None:
        axes[-1].legend(title="head", fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    if title:
        figure.suptitle(title)
    return figure
