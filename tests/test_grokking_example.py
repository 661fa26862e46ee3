"""examples/grokking (issue 33): the modular-addition task, Nanda et al. 2023's progress
measures against independent computations (numpy FFTs, a hand-built model whose logits are
exactly one frequency), and the example's training run from a temporary directory with only
examples/grokking on PYTHONPATH (nothing of it inside plateau_lens/)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "grokking"


@pytest.fixture(scope="module")
def grokking():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import grokking.progress as progress
        import grokking.task as task
        yield task, progress
    finally:
        sys.path.remove(str(EXAMPLE))


def test_example_lives_outside_the_package():
    assert not list((REPO / "plateau_lens").rglob("*grokking*"))
    text = "\n".join(path.read_text() for path in (REPO / "plateau_lens").rglob("*.py"))
    assert "import grokking" not in text and "from grokking" not in text


def test_task_split_and_answers(grokking):
    task_module, _ = grokking
    task = task_module.ModularAddition()
    train, test = task.dataset("train"), task.dataset("test")
    assert (len(train), len(test)) == (3830, 113 ** 2 - 3830)  # round(0.3 · 12 769)
    pairs = {tuple(row) for row in train.tokens[:, :2].tolist()}
    assert pairs.isdisjoint(tuple(row) for row in test.tokens[:, :2].tolist())
    for batch in (train, test):
        a, b, equals, c = batch.tokens.T
        assert torch.equal(c, (a + b) % 113) and bool((equals == 113).all())
    logits = torch.randn(len(test), 3, 113, generator=torch.Generator().manual_seed(0))
    by_hand = -logits[:, -1].double().log_softmax(-1)[torch.arange(len(test)), test.tokens[:, 3]].mean()
    assert task.loss(logits, test).item() == pytest.approx(by_hand.item(), rel=1e-6)
    with pytest.raises(ValueError, match="task.train_fraction"):
        task_module.ModularAddition(train_fraction=1.5)


def _keep_bins_numpy(logits: np.ndarray, p: int, keys: list[int], keep: bool) -> np.ndarray:
    """Independent: per output c, the 2-D DFT over (a, b) of L[(a, b), c]; the span of
    cos(w_k(a+b)), sin(w_k(a+b)) is the bins (k, k) and (−k, −k). ``keep``: keep those bins
    and (0, 0) (restricted); else zero those bins (excluded)."""
    grid = logits.reshape(p, p, -1)
    spectrum = np.fft.fft2(grid, axes=(0, 1))
    mask = np.zeros((p, p), dtype=bool)
    for k in keys:
        mask[k, k] = mask[p - k, p - k] = True
    if keep:
        mask[0, 0] = True
        spectrum = spectrum * mask[:, :, None]
    else:
        spectrum = spectrum * ~mask[:, :, None]
    return np.fft.ifft2(spectrum, axes=(0, 1)).real.reshape(p * p, -1)


def test_restricted_and_excluded_logits_match_a_2d_fft(grokking):
    _, progress = grokking
    p, keys = 11, [2, 5]
    logits = torch.randn(p * p, p, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    restricted = progress.restricted_logits(logits, p, keys).numpy()
    excluded = progress.excluded_logits(logits, p, keys).numpy()
    np.testing.assert_allclose(restricted, _keep_bins_numpy(logits.numpy(), p, keys, True), atol=1e-10)
    np.testing.assert_allclose(excluded, _keep_bins_numpy(logits.numpy(), p, keys, False), atol=1e-10)


def test_embedding_frequency_norms_match_numpy_rfft(grokking):
    """With unit-norm cos/sin rows, the energy at frequency k is 2|rfft_k|²/p per column."""
    _, progress = grokking
    p = 13
    W_E = torch.randn(p, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    spectrum = np.fft.rfft(W_E.numpy(), axis=0)
    expected = (2 * np.abs(spectrum[1:]) ** 2 / p).sum(-1)
    np.testing.assert_allclose(progress.embedding_frequency_norms(W_E).numpy(), expected, rtol=1e-10)


def _wave(k: int, p: int, x: torch.Tensor) -> torch.Tensor:
    return torch.cos(2 * math.pi * k * x / p)


class OneFrequency(nn.Module):
    """A hand-built "model": answer logits s·cos(w_k(a + b − c)) + t·cos(w_m(a − c)) (the
    second term lies outside every cos/sin(w(a + b)) direction, and makes train and test
    losses differ) and an embedding made of frequency k alone (rows (cos w_k x, sin w_k x, 0, 0))."""

    def __init__(self, p: int, k: int, m: int, s: float, t: float):
        super().__init__()
        x = torch.arange(p + 1, dtype=torch.float64)
        weight = torch.zeros(p + 1, 4, dtype=torch.float64)
        weight[:, 0], weight[:, 1] = _wave(k, p, x), torch.sin(2 * math.pi * k * x / p)
        self.tok_embed = nn.Embedding.from_pretrained(weight)
        self.p, self.k, self.m, self.s, self.t = p, k, m, s, t

    def terms(self, ids):
        a, b = ids[:, 0, None].double(), ids[:, 1, None].double()
        c = torch.arange(self.p, dtype=torch.float64)[None]
        return self.s * _wave(self.k, self.p, a + b - c), self.t * _wave(self.m, self.p, a - c)

    def forward(self, ids):
        key, other = self.terms(ids)
        return (key + other)[:, None, :].expand(-1, 3, -1)


def _cross_entropy(logits, answers) -> float:
    return -logits.log_softmax(-1)[torch.arange(len(answers)), answers].mean().item()


def test_progress_measures_on_a_one_frequency_model(grokking):
    """Keys = {k}: the restricted logits are the key term alone (loss over all pairs by
    hand), the excluded logits the other term alone (loss over the training pairs by hand),
    all the embedding's energy is in k. Keys = {another}: the restricted logits are constant
    (loss log p) and the excluded logits the model's own (its train loss)."""
    task_module, progress = grokking
    p, k = 13, 3
    task = task_module.ModularAddition(p=p, train_fraction=0.5)
    model = OneFrequency(p, k, m=2, s=6.0, t=2.0)
    assert progress.key_frequencies(model.tok_embed.weight[:p], n_key=1) == [k]
    grid, train = task.full_dataset(), task.dataset("train")
    key_term, _ = model.terms(grid.inputs)
    _, other_term = model.terms(train.inputs)
    measures = progress.progress_measures(model, task, [k])
    assert measures["restricted_loss"] == pytest.approx(_cross_entropy(key_term, grid.tokens[:, 3]), rel=1e-9)
    assert measures["excluded_loss"] == pytest.approx(_cross_entropy(other_term, train.tokens[:, 3]), rel=1e-9)
    assert measures["key_energy_fraction"] == pytest.approx(1.0)
    train_loss = _cross_entropy(model(train.inputs)[:, -1], train.tokens[:, 3])
    assert measures["train_loss"] == pytest.approx(train_loss, rel=1e-9)
    assert measures["test_loss"] != pytest.approx(train_loss, rel=1e-3)
    other = progress.progress_measures(model, task, [k + 1])
    assert other["restricted_loss"] == pytest.approx(math.log(p), rel=1e-9)
    assert other["excluded_loss"] == pytest.approx(train_loss, rel=1e-9)


def test_example_trains_from_a_temp_dir(tmp_path, grokking):
    """``python -m grokking.train`` with examples/grokking on PYTHONPATH only (the repository
    root for plateau_lens, as an installed package would be), a small p; then the progress
    measures over its checkpoints."""
    config = tmp_path / "small.toml"
    text = (EXAMPLE / "grokking.toml").read_text()
    text = text.replace("p = 113", "p = 11").replace("d_model = 128", "d_model = 32") \
               .replace("d_mlp = 512", "d_mlp = 64").replace("checkpoint_every = 100", "checkpoint_every = 2")
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(REPO)])}
    script = ("import sys; from grokking.train import main; "
              "main(sys.argv[1:]); "
              "from grokking.progress import progress_over_run; "
              "frame, keys = progress_over_run(sys.argv[2], n_key=2); "
              "frame.to_csv('progress.csv', index=False); print('keys', keys)")
    # then, in a fresh process that never imported grokking: the registered analyzers by name
    analyze = ("import sys; from plateau_lens import analyze_run, load_run; "
               "table = analyze_run(load_run(sys.argv[1]), ['grokking_progress', "
               "'grokking_fourier_embedding'], progress=False); "
               "table.to_csv('analyzers.csv', index=False)")
    result = subprocess.run([sys.executable, "-c", script, "--out", str(tmp_path / "run"),
                             "--config", str(config), "--steps", "4", "--no-progress"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["step"]) == [0, 2, 4]  # row 0 (log_every 10) and every checkpoint's row
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(metrics)
    progress = pd.read_csv(tmp_path / "progress.csv")
    assert list(progress["step"]) == [0, 2, 4]
    assert progress[["restricted_loss", "excluded_loss"]].notna().all().all()
    result = subprocess.run([sys.executable, "-c", analyze, str(tmp_path / "run")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "analyzers.csv")
    assert set(table["analyzer"]) == {"grokking_progress", "grokking_fourier_embedding"}
    assert sorted(table.loc[table["analyzer"] == "grokking_fourier_embedding", "frequency"].unique()) == [1, 2, 3, 4, 5]
    final = table[(table["analyzer"] == "grokking_progress") & (table["step"] == 4)].set_index("metric")["value"]
    assert final["train_loss"] == pytest.approx(metrics_after_update(tmp_path / "run"), rel=1e-4)


def metrics_after_update(run_dir: Path) -> float:
    """train_loss of the last metrics row (step 3 is not logged at log_every 10: recompute
    checkpoint 4's train loss by hand instead, from the saved network)."""
    from plateau_lens import load_run

    run = load_run(run_dir)
    task, network = run.task, run.network(4)
    train = task.dataset("train")
    with torch.no_grad():
        logits = network(train.inputs)[:, -1].double()
    return _cross_entropy(logits, train.tokens[:, 3])


def _ramp(steps: np.ndarray, start: float, stop: float, before: float, after: float) -> np.ndarray:
    """``before`` until ``start``, linear to ``after`` at ``stop``, then flat (a curve with
    known change points)."""
    return np.interp(steps, [steps[0], start, stop, steps[-1]], [before, before, after, after])


@pytest.fixture(scope="module")
def analyze_module(grokking):
    sys.path.insert(0, str(EXAMPLE))
    try:
        import grokking.analyze as analyze
        yield analyze
    finally:
        sys.path.remove(str(EXAMPLE))


def test_onsets_date_each_measure_and_its_lead_on_the_test_loss(analyze_module):
    """Hand-built curves with known breaks (test loss drops over 6000-7000; the measures move
    at 2000, 3000, 8000 and 6000): onsets within the fit's resolution (2 % of the span), leads
    = test-loss onset (or the transition's plateau_end) minus the measure's onset."""
    steps = np.arange(0, 10_001, 100)
    progress = pd.DataFrame({
        "step": steps,
        "key_energy_fraction": _ramp(steps, 2000, 3000, 0.1, 0.9),
        "restricted_loss": _ramp(steps, 3000, 4000, 5.0, 1.0),
        "excluded_loss": _ramp(steps, 8000, 9000, 0.5, 4.0),
        "sum_squared_weights": _ramp(steps, 6000, 7500, 3000.0, 800.0),
        "test_loss": _ramp(steps, 6000, 7000, 5.0, 0.1),
    })
    true_onset = {"key_energy_fraction": 2000, "restricted_loss": 3000, "excluded_loss": 8000,
                  "sum_squared_weights": 6000, "test_loss": 6000}
    table = analyze_module.onsets(progress, None).set_index("measure")
    assert list(table.index) == [*analyze_module.MEASURES, "test_loss"]
    for measure, onset in true_onset.items():
        assert abs(table.loc[measure, "onset_step"] - onset) <= 200, (measure, table.loc[measure])
        lead = table.loc["test_loss", "onset_step"] - table.loc[measure, "onset_step"]
        assert table.loc[measure, "lead_vs_test_loss"] == lead
    assert table["lead_vs_transition"].isna().all()
    assert table.loc["restricted_loss", "change"] == pytest.approx(-4.0)
    moves = table["moves_before_test_loss"]
    assert [moves[m] for m in analyze_module.MEASURES] == [True, True, False, False]
    assert pd.isna(moves["test_loss"])

    early = progress.assign(excluded_loss=np.where(steps < 1000, 3.0, progress["excluded_loss"]))
    early.loc[early["step"] < 500, "excluded_loss"] = 0.0  # a jump in the memorisation phase
    assert abs(analyze_module.onsets(early, None, start=1000).set_index("measure")
               .loc["excluded_loss", "onset_step"] - 8000) <= 200  # the window starts at 1000
    assert analyze_module.onsets(early, None).set_index("measure").loc["excluded_loss", "onset_step"] < 2000

    with_transition = analyze_module.onsets(progress, {"plateau_end": 6500}).set_index("measure")
    assert (with_transition["lead_vs_transition"] == 6500 - with_transition["onset_step"]).all()
    assert with_transition.loc["sum_squared_weights", "moves_before_test_loss"] == True  # noqa: E712 6000 < 6500


def test_summary_steps_and_the_pasteable_report(analyze_module, tmp_path):
    """From a hand-written metrics.csv: train accuracy reaches 1.0 at 300; test accuracy is
    exactly 0.9 at 700 (not past it) and 0.95 at 800; the test loss sits at 5, then drops at
    600-700 to 0.05. The report prints those steps and the transition's."""
    steps = np.arange(0, 1001, 10)
    metrics = pd.DataFrame({
        "step": steps,
        "train_loss": _ramp(steps, 0, 300, 4.0, 0.01),
        "train_accuracy": np.where(steps >= 300, 1.0, 0.5),
        "test_loss": _ramp(steps, 600, 700, 5.0, 0.05),
        "test_accuracy": np.select([steps >= 800, steps >= 700], [0.95, 0.9], 0.01),
    })
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    summary = analyze_module.summarise(tmp_path)
    assert summary["train_accuracy_1_step"] == 300 and summary["test_accuracy_0.9_step"] == 800
    assert summary["last_logged_step"] == 1000
    transition = summary["transition"]
    assert 600 <= transition["plateau_end"] <= 650 and 600 <= transition["drop_step"] <= 700
    summary["key_frequencies"] = [14, 35]
    onset_rows = analyze_module.onsets(pd.DataFrame({
        "step": steps, "restricted_loss": _ramp(steps, 400, 500, 5.0, 1.0),
        "test_loss": metrics["test_loss"]}), transition)
    report = analyze_module.markdown_report(summary, onset_rows).splitlines()
    assert report[2].startswith("| train accuracy reaches 1.0 | step 300 |")
    assert report[3].startswith("| test accuracy passes 0.9 | step 800 |")
    assert report[4].startswith(f"| `detect_transition` on the test loss | plateau "
                                f"{transition['plateau_start']}–{transition['plateau_end']} ")
    assert report[5].startswith("| key frequencies (final embedding) | 14, 35 |")
    restricted = next(line for line in report if line.startswith("| restricted_loss |"))
    onset = int(onset_rows.set_index("measure").loc["restricted_loss", "onset_step"])
    assert abs(onset - 400) <= 20
    assert restricted.endswith(f"| {transition['plateau_end'] - onset} | yes |")

    metrics.assign(test_accuracy=0.02).to_csv(tmp_path / "metrics.csv", index=False)
    summary = analyze_module.summarise(tmp_path) | {"key_frequencies": []}
    report = analyze_module.markdown_report(summary, onset_rows).splitlines()
    assert report[3] == ("| test accuracy passes 0.9 | not reached within 1000 steps (final 0.020) "
                         "| ~10k epochs |")


def test_grokking_reproduction_entry_is_listed_and_runs(analyze_module, tmp_path, monkeypatch, capsys):
    """examples/grokking registers its run as a reproduction entry (found by the command line
    through examples/grokking/pyproject.toml's entry point; here imported as that entry point
    would): registered under its own study, and `reproduce ID --steps 1` trains (its config
    shrunk to p = 11) and analyses, reporting that one step is too short to judge."""
    import importlib

    import plateau_lens.reproduce as reproduce
    from plateau_lens.cli import main

    registry, studies = reproduce.REGISTRY, reproduce.STUDIES
    saved = dict(registry), dict(studies)
    sys.path.insert(0, str(EXAMPLE))
    try:
        module = importlib.reload(importlib.import_module("grokking.reproduce"))
        entry = reproduce.get("grokking-modular-addition")
        assert entry.run is module.grokking_modular_addition and "Nanda" in studies[entry.study]
        monkeypatch.chdir(tmp_path)
        small = tmp_path / "small.toml"  # the entry's config at p = 11 (a fast test)
        small.write_text((EXAMPLE / "grokking.toml").read_text().replace("p = 113", "p = 11")
                         .replace("d_model = 128", "d_model = 32").replace("d_mlp = 512", "d_mlp = 64"))
        monkeypatch.setattr(module, "CONFIG", small)
        assert main(["reproduce", "grokking-modular-addition", "--out", "out", "--steps", "1",
                     "--quiet"]) == 0
        printed = capsys.readouterr().out
        assert "| test accuracy passes 0.9 | not reached within 1 steps" in printed
        assert ("| `detect_transition` on the test loss | not computed: need at least 8 logged "
                "points to find a transition, got 2 |") in printed
        metrics = pd.read_csv(tmp_path / "out" / "runs" / "grokking" / "metrics.csv")
        assert list(metrics["step"]) == [0, 1]
        assert (tmp_path / "out" / "grokking.png").is_file()
        assert list(pd.read_csv(tmp_path / "out" / "progress.csv")["step"]) == [0, 1]
    finally:
        sys.path.remove(str(EXAMPLE))
        registry.clear(), registry.update(saved[0])
        studies.clear(), studies.update(saved[1])
    toml = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points."plateau_lens.reproduce"]\ngrokking = "grokking.reproduce"' in toml
