"""Essential dynamics (Hoogland et al. 2024, *The developmental landscape of in-context
learning*, arXiv 2402.02364, section 4 / appendix "essential dynamics").

Hoogland et al. stack a model's outputs on a fixed set of inputs at every checkpoint into one
vector f(w_t), run PCA across checkpoints, smooth the trajectory of the top components and read
candidate stage boundaries off its geometry (cusps of the osculating-circle evolute = sharp
turns of the smoothed path). What this module implements, exactly:

* features f(w_t): per-token next-token cross-entropy on a fixed batch (causal tasks and LLM
  series: ``batch × positions`` values), or the read-out's predictions (LRMC: ``batch × m·n``
  values); :func:`checkpoint_features`.
* PCA (``sklearn.decomposition.PCA``, centred across checkpoints, not scaled) to
  ``n_components``; scores s_t ∈ ℝ^k.
* smoothing: a Gaussian filter over the checkpoint index (σ = ``smoothing`` checkpoints,
  ``scipy.ndimage.gaussian_filter1d``, mode "nearest");
* velocity v_t = ds̃/dt by ``numpy.gradient`` against the step (uneven spacing handled);
* **turning points**: local maxima (``scipy.signal.find_peaks``) of the turning angle
  θ_t = ∠(v_{t−w}, v_{t+w}) above ``min_turn_degrees`` (w = ``window`` checkpoints). For a sharp
  turn this is where the curvature peaks (a vertex of the path, i.e. a cusp of its evolute);
  unlike Hoogland et al. we do not compute the evolute itself, only the direction change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from tqdm.auto import tqdm


@dataclass(frozen=True)
class EssentialDynamics:
    """``trajectory``: tidy rows (step, component, score, smoothed); ``explained``: each
    component's explained-variance ratio; ``turning_points``: step and turning angle (degrees)
    of each candidate stage boundary; ``angles``: θ_t of every checkpoint (NaN at the ends)."""

    trajectory: pd.DataFrame
    explained: pd.DataFrame
    turning_points: pd.DataFrame
    angles: pd.DataFrame


@torch.no_grad()
def model_features(model, batch) -> Float[torch.Tensor, "feature"]:
    """One checkpoint's output vector f(w) on ``batch``: per-token cross-entropy for a sequence
    batch (``batch.tokens``) or a token tensor (LLM), the predictions for a matrix batch."""
    if isinstance(batch, torch.Tensor):  # LLM token ids [batch, pos]
        logits = model(batch)
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].float().flatten(0, 1), batch[:, 1:].flatten(), reduction="none")
    network = getattr(model, "network", None) or model
    output = network(batch.inputs)
    if hasattr(batch, "targets"):  # SequenceBatch: next-token cross-entropy of every position
        return torch.nn.functional.cross_entropy(
            output.float().flatten(0, 1), batch.targets.flatten(), reduction="none")
    return output.float().flatten()


def checkpoint_features(models: Iterable[tuple[int, object]], batch, progress: bool = True,
                        total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, features)`` with ``features[t]`` = :func:`model_features` of checkpoint t
    (``models``: ``(step, model)`` pairs such as ``run.models()``)."""
    steps, rows = [], []
    for step, model in tqdm(models, total=total, desc="essential dynamics", disable=not progress):
        steps.append(step)
        rows.append(model_features(model, batch).double().cpu().numpy())
    return np.asarray(steps), np.stack(rows)


def essential_dynamics(steps, features: Float[np.ndarray, "checkpoint feature"],
                       n_components: int = 3, smoothing: float = 2.0, window: int = 2,
                       min_turn_degrees: float = 30.0) -> EssentialDynamics:
    """PCA of ``features`` across checkpoints, the smoothed trajectory and its turning points
    (see the module docstring for each step). ``steps`` must be strictly increasing."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks
    from sklearn.decomposition import PCA

    steps = np.asarray(steps)
    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or len(steps) != len(features):
        raise ValueError(f"features must be [checkpoint, feature] with one row per step; got "
                         f"{features.shape} for {len(steps)} steps")
    if np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be strictly increasing")
    if not 1 <= n_components <= min(features.shape):
        raise ValueError(f"n_components must be in [1, {min(features.shape)}] (checkpoints × "
                         f"features {features.shape}), got {n_components}")
    if smoothing < 0 or window < 1:
        raise ValueError(f"smoothing must be >= 0 and window >= 1, got {smoothing}, {window}")
    if len(steps) < 2 * window + 1:
        raise ValueError(f"turning points need at least {2 * window + 1} checkpoints "
                         f"(window {window}), got {len(steps)}")
    pca = PCA(n_components=n_components, svd_solver="full")
    scores = pca.fit_transform(features)
    smoothed = gaussian_filter1d(scores, smoothing, axis=0, mode="nearest") if smoothing else scores
    velocity = np.gradient(smoothed, steps.astype(float), axis=0)
    angles = np.full(len(steps), np.nan)
    before, after = velocity[:-2 * window], velocity[2 * window:]
    norms = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    cosine = np.einsum("tk,tk->t", before, after) / np.where(norms > 0, norms, np.inf)
    angles[window:-window] = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    peaks, _ = find_peaks(np.nan_to_num(angles, nan=0.0), height=min_turn_degrees,
                          distance=window)
    components = [f"PC{i + 1}" for i in range(n_components)]
    trajectory = pd.DataFrame({
        "step": np.repeat(steps, n_components),
        "component": np.tile(components, len(steps)),
        "score": scores.ravel(), "smoothed": smoothed.ravel()})
    explained = pd.DataFrame({"component": components,
                              "explained_variance_ratio": pca.explained_variance_ratio_})
    turning = pd.DataFrame({"step": steps[peaks], "turn_degrees": angles[peaks]})
    return EssentialDynamics(trajectory, explained, turning,
                             pd.DataFrame({"step": steps, "turn_degrees": angles}))


def component_curves(result: EssentialDynamics) -> pd.DataFrame:
    """The smoothed components as onset curves (``measure`` = "ED PC1", …; ``step``, ``value``)."""
    frame = result.trajectory
    return pd.DataFrame({"measure": "ED " + frame["component"], "step": frame["step"],
                         "value": frame["smoothed"]})


def plot_essential_dynamics(result: EssentialDynamics, transition=None, title: str = ""):
    """Left: PC1 vs PC2 (smoothed path; checkpoints coloured by step, colourbar), turning points
    (red crosses) and the checkpoint nearest the loss's drop (black star). Right: each smoothed
    component against the step, the turning points and the drop as vertical lines."""
    from matplotlib.figure import Figure

    wide = result.trajectory.pivot(index="step", columns="component", values="smoothed")
    steps = wide.index.to_numpy()
    explained = dict(zip(result.explained["component"], result.explained["explained_variance_ratio"]))
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    path, curves = figure.subplots(1, 2)
    second = "PC2" if "PC2" in wide else "PC1"
    path.plot(wide["PC1"], wide[second], color="0.6", lw=1, zorder=1, label="smoothed path")
    points = path.scatter(wide["PC1"], wide[second], c=steps, cmap="viridis", s=18, zorder=2)
    figure.colorbar(points, ax=path, label="training step")
    turning = result.turning_points["step"].to_numpy()
    if len(turning):
        path.scatter(wide.loc[turning, "PC1"], wide.loc[turning, second], marker="x", s=80,
                     color="red", zorder=3, label="turning point")
    if transition is not None:
        nearest = steps[np.abs(steps - transition.drop_step).argmin()]
        path.scatter([wide.loc[nearest, "PC1"]], [wide.loc[nearest, second]], marker="*", s=160,
                     color="black", zorder=4, label=f"loss drop (step {transition.drop_step})")
    path.set_xlabel(f"PC1 ({explained['PC1']:.0%} of variance)")
    path.set_ylabel(f"{second} ({explained[second]:.0%} of variance)")
    path.legend(loc="best", fontsize=8)
    path.set_title("essential dynamics: trajectory in the top components")
    for component in wide.columns:
        curves.plot(steps, wide[component], label=f"{component} ({explained[component]:.0%})")
    for i, step in enumerate(turning):
        curves.axvline(step, color="red", ls=":", lw=1, label="turning point" if i == 0 else None)
    if transition is not None:
        curves.axvline(transition.drop_step, color="black", ls="--", lw=1, label="loss drop")
    from ..plots import step_axis

    step_axis(curves, steps, "training step")
    curves.set_ylabel("component score (smoothed, output units)")
    curves.legend(loc="best", fontsize=8)
    curves.set_title("components against the step")
    if title:
        figure.suptitle(title)
    return figure
