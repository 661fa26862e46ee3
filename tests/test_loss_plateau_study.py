"""The loss-plateau study's reproductions: the optimizers (Muon, AdamW) and the study's configs
against independent computations; the registry entries (issue 19) for the runs, tables and
figures they write (tables against the runs' own logs; the analyzers behind the numbers are
checked against references in their own test files)."""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from plateau_lens import load_config, load_run
from plateau_lens.reproduce import Context, REGISTRY, get
from plateau_lens.training.optimizers import (MuonWithAuxAdamW, build_optimizer, lr_factor,
                                              orthogonalize)

TASKS = Path(__file__).resolve().parents[1] / "tasks"


# ------------------------------------------------------------------------------ Muon
def test_orthogonalized_update_has_nearly_equal_singular_values():
    """Hand example: a 48×16 gradient U diag(1 … 0.01) Vᵀ, singular values spread over two
    decades; the Newton-Schulz output keeps the singular vectors and flattens the spectrum
    (the quintic coefficients land in roughly [0.7, 1.2], not exactly at 1)."""
    generator = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(48, 16, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    gradient = u @ torch.diag(torch.logspace(0, -2, 16)) @ v.T
    singular = torch.linalg.svdvals(orthogonalize(gradient).float())
    assert singular.min() > 0.65 and singular.max() < 1.2
    assert singular.max() / singular.min() < 1.8  # from 100
    # the same directions: U Vᵀ up to that spread
    assert torch.allclose(orthogonalize(gradient).float(), u @ v.T, atol=0.15)


def test_muon_step_of_a_2d_parameter_is_lr_times_scaled_orthogonal_update():
    """One step from zero momentum: Nesterov direction g + 0.95·g, orthogonalized, times
    √max(1, rows/cols) = 2 for a 64×16 weight: p₀ − p₁ = lr · 2 · NS(1.95 g)."""
    generator = torch.Generator().manual_seed(1)
    weight = torch.nn.Parameter(torch.randn(64, 16, generator=generator))
    start = weight.detach().clone()
    weight.grad = torch.randn(64, 16, generator=generator)
    optimizer = MuonWithAuxAdamW([{"params": [weight], "use_muon": True, "lr": 0.02,
                                   "weight_decay": 0.0}])
    optimizer.step()
    update = (start - weight.detach()) / (0.02 * 2)
    singular = torch.linalg.svdvals(update)
    assert singular.min() > 0.6 and singular.max() < 1.25
    assert torch.allclose(update, newton_schulz5(1.95 * weight.grad), atol=1e-5)  # float32 p ± 0.04·u


def newton_schulz5(gradient: torch.Tensor) -> torch.Tensor:
    """Keller Jordan's ``zeropower_via_newtonschulz5`` (the Muon repository), written out:
    five quintic iterations with (a, b, c) = (3.4445, −4.7750, 2.0315) in bfloat16 on the
    wide orientation, from X = G / (‖G‖_F + 1e-7)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = gradient.bfloat16()
    tall = gradient.size(0) > gradient.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).float()


def test_muon_matches_torch_optim_muon_over_several_steps():
    """torch.optim.Muon (torch >= 2.9; an independent implementation of Keller Jordan's
    Muon: momentum 0.95, Nesterov, the same quintic Newton-Schulz in bfloat16, "original"
    √max(1, A/B) scaling) gives the same weights after 4 steps, up to bfloat16 rounding."""
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("torch.optim.Muon needs torch >= 2.9")
    generator = torch.Generator().manual_seed(2)
    ours = torch.nn.Parameter(torch.randn(32, 8, generator=generator))
    theirs = torch.nn.Parameter(ours.detach().clone())
    mine = MuonWithAuxAdamW([{"params": [ours], "use_muon": True, "lr": 0.02, "weight_decay": 0.1}])
    reference = torch.optim.Muon([theirs], lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True)
    for _ in range(4):
        grad = torch.randn(32, 8, generator=generator)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        mine.step()
        reference.step()
    assert torch.allclose(ours, theirs, atol=2e-3)
    assert not torch.allclose(ours, torch.zeros_like(ours))


def test_muon_aux_part_is_adamw_with_betas_0_9_0_95():
    """The non-Muon groups: AdamW with the muon package's defaults, checked against
    torch.optim.AdamW(betas=(0.9, 0.95), eps=1e-10)."""
    generator = torch.Generator().manual_seed(3)
    ours = torch.nn.Parameter(torch.randn(7, generator=generator))
    theirs = torch.nn.Parameter(ours.detach().clone())
    mine = MuonWithAuxAdamW([{"params": [ours], "use_muon": False, "lr": 1e-2, "weight_decay": 0.3}])
    reference = torch.optim.AdamW([theirs], lr=1e-2, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.3)
    for _ in range(5):
        grad = torch.randn(7, generator=generator)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        mine.step()
        reference.step()
    assert torch.allclose(ours, theirs, atol=1e-6)
    with pytest.raises(ValueError, match="2-D parameters only"):
        MuonWithAuxAdamW([{"params": [ours], "use_muon": True}])


def small_network(n_layers=1):
    from plateau_lens import ModelConfig, build_model, make_task

    return build_model((make_task("mws", n_inputs=4), ModelConfig(n_layers=n_layers, d_model=16))).network


def test_muon_and_adamw_parameter_groups_by_name():
    """Muon: the 2-D weights inside the blocks (the study's hidden_weights); AdamW: the rest.
    AdamW's decay: linear-layer weights (attention, MLP, unembedding), not biases, LayerNorms
    or embeddings (the study's configure_optimizers). Names written out by hand."""
    network = small_network()
    names = {id(p): n for n, p in network.named_parameters()}
    config = load_config({"task": {"name": "mws", "n_inputs": 4},
                          "train": {"optimizer": "muon", "muon_lr": 0.05, "lr": 3e-4}})
    muon = build_optimizer(network, config.train, torch.device("cpu"))
    groups = {g["use_muon"]: sorted(names[id(p)] for p in g["params"]) for g in muon.param_groups}
    assert groups[True] == sorted(f"layers.0.{m}.weight" for m in
                                  ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.fc_in", "mlp.fc_out"))
    assert "tok_embed.weight" in groups[False] and "head.weight" in groups[False]
    assert "ln_out.weight" in groups[False]  # trained (the authors' groups leave ln_f out)
    assert [g["lr"] for g in muon.param_groups] == [0.05, 3e-4]
    adamw = build_optimizer(network, config.replace(train={"optimizer": "adamw",
                                                           "weight_decay": 0.1}).train,
                            torch.device("cpu"))
    decayed = sorted(names[id(p)] for g in adamw.param_groups if g["weight_decay"] for p in g["params"])
    assert decayed == sorted(groups[True] + ["head.weight"])
    assert isinstance(adamw, torch.optim.AdamW)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        config.replace(train={"weight_decay": -1})
    with pytest.raises(ValueError, match="optimizer must be one of"):
        config.replace(train={"optimizer": "lion"})


def test_warm_up_factor_is_s_over_w():
    """transformers' get_linear_schedule_with_warmup / the study's linear_warmup: s / W."""
    assert [lr_factor(s, "constant", 4, 100) for s in range(6)] == [0, 0.25, 0.5, 0.75, 1, 1]
    assert lr_factor(52, "cosine", 4, 100) == pytest.approx(0.5)
    assert lr_factor(100, "cosine", 4, 100) == pytest.approx(0.0)


def test_muon_trains_and_resumes_bit_for_bit(tmp_path, small_mws_config):
    """The Muon optimizer's state goes through the checkpoint: a resumed run equals an
    uninterrupted one."""
    from plateau_lens import resume, train
    from plateau_lens.runs.checkpoint import load_checkpoint
    from plateau_lens.runs.layout import checkpoint_path

    config = small_mws_config.replace(train={"optimizer": "muon", "steps": 6, "checkpoint_every": 3})
    full = train(config, tmp_path / "full", progress=False)
    part = train(config, tmp_path / "part", progress=False, stop_at=4)
    resume(part, progress=False)
    a = load_checkpoint(checkpoint_path(full, 6))["model"]
    b = load_checkpoint(checkpoint_path(part, 6))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_csv(full / "metrics.csv"), pd.read_csv(part / "metrics.csv"))


# ------------------------------------------------------------------- the study's configs
STUDY_CONFIGS = {
    # file: (task name, layers, steps, grad clip, attention, optimizer) from the authors' configs
    "mws.toml": ("mws", 1, 400, 0.0, "linear", "adam"),
    "prefix_sum.toml": ("prefix_sum", 1, 1000, 0.0, "linear", "adam"),
    "repeat_1.toml": ("repeat", 1, 200, 0.0, "linear", "adam"),
    "repeat_2.toml": ("repeat", 1, 200, 0.0, "linear", "adam"),
    "repeat_4.toml": ("repeat", 1, 200, 0.0, "linear", "adam"),
    "addition.toml": ("addition", 1, 10000, 0.0, "linear", "adam"),
    "permutation.toml": ("permutation", 2, 2000, 0.0, "linear", "adam"),
    "histogram.toml": ("histogram", 2, 5000, 1.0, "linear", "adam"),
    "copy.toml": ("copy", 1, 100, 0.0, "linear", "adam"),
    "reverse.toml": ("reverse", 1, 100, 0.0, "linear", "adam"),
    "mws_concat.toml": ("concat_mws", 1, 5000, 0.0, "linear", "adam"),
    "mws_softmax.toml": ("mws", 1, 2000, 0.0, "softmax", "adam"),
    "mws_sgd.toml": ("mws", 1, 400, 0.0, "linear", "sgd"),
    "mws_muon.toml": ("mws", 1, 1000, 0.0, "linear", "muon"),
    "mws_lr_schedule.toml": ("mws", 1, 400, 0.0, "linear", "adam"),
    "mws_adamw.toml": ("mws", 1, 400, 0.0, "linear", "adamw"),
    "mws_bias_0_2.toml": ("mws", 1, 2000, 0.0, "linear", "adam"),
    "mws_bias_10_t75.toml": ("mws", 1, 400, 0.0, "linear", "adam"),
}


@pytest.mark.parametrize("name", sorted(STUDY_CONFIGS))
def test_study_configs_have_the_studys_settings(name):
    task, layers, steps, clip, attention, optimizer = STUDY_CONFIGS[name]
    config = load_config(TASKS / name)
    assert (config.task["name"], config.model.n_layers, config.train.steps, config.train.grad_clip,
            config.model.attention, config.train.optimizer) == STUDY_CONFIGS[name]
    assert (config.model.d_model, config.model.n_heads, config.train.batch_size,
            config.train.eval_batch_size in (64, 256)) == (256, 1, 256, True)
    if optimizer != "muon":
        assert config.train.lr == 1e-4


def test_bias_configs():
    for c, start, name in [(0.2, 0, "0_2"), (0.5, 0, "0_5"), (2.5, 0, "2_5"), (10, 0, "10"),
                           (10, 25, "10_t25"), (10, 50, "10_t50"), (10, 75, "10_t75"),
                           (10, 100, "10_t100")]:
        train = load_config(TASKS / f"mws_bias_{name}.toml").train
        assert (train.attention_bias, train.attention_bias_start) == (c, start)
    schedule = load_config(TASKS / "mws_lr_schedule.toml").train
    assert (schedule.schedule, schedule.warmup_steps) == ("cosine", 200)


# ------------------------------------------------------------------ the registry entries
ISSUE_FIGURES = [2, 3, 4, 43, 5, 6, 11, 12, 7, 21, 22, 8, 23, 24, 25, 9, 10, 13, 14, 15, 16, 17,
                 18, 19, 20, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42]


def covered_figures() -> set[int]:
    import re

    figures = set()
    for entry in REGISTRY.values():
        if entry.study != "loss-plateau":
            continue
        for low, high in re.findall(r"(\d+)(?:-(\d+))?", entry.figure):
            figures |= set(range(int(low), int(high or low) + 1))
    return figures


def test_every_figure_of_the_issue_has_an_entry_with_existing_configs():
    assert set(ISSUE_FIGURES) <= covered_figures()
    for entry in REGISTRY.values():
        for config in entry.config.split(", "):
            if config.startswith("tasks/"):
                path = config.split(" with ")[0]  # "tasks/x.toml with d_model 64/128" names a base
                assert (TASKS.parent / path).is_file(), (entry.id, config)


TINY = {"[model]": "[model]\nd_model = 16\nd_mlp = 32\n", "batch_size = 256": "batch_size = 8",
        "eval_batch_size = 64": "eval_batch_size = 4"}


def tiny_configs(tmp_path, names):
    """The study's configs shrunk (d_model 16, batch 8, 4 test samples), for a cheap run of
    the entries' machinery; their [model] tables keep every other field."""
    import re

    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in names:
        text = (TASKS / name).read_text()
        text = re.sub(r"\nd_model = \d+\nd_mlp = \d+", "", text)
        for old, new in TINY.items():
            text = text.replace(old, new)
        (folder / name).write_text(text)
    return folder


def test_dynamics_entry_writes_figure_table_and_summary(tmp_path, monkeypatch):
    from plateau_lens.config import shipped

    monkeypatch.setattr(shipped, "SHIPPED_CONFIGS", tiny_configs(tmp_path, ["repeat_1.toml", "repeat_2.toml",
                                                                     "repeat_4.toml"]))
    out = tmp_path / "out"
    written = get("lp-fig7-repeat").run(Context(out=out, steps=4, progress=False))
    assert written["figure"].is_file() and written["figure"].stat().st_size > 10_000
    table = pd.read_csv(written["table"])
    assert set(table["run"]) == {"repeat-1", "repeat-2", "repeat-4"}
    assert {"loss", "accuracy", "repetition_frequency", "cosine_similarity"} <= set(table)
    summary = pd.read_csv(written["summary"]).set_index("run")
    assert list(summary.index) == ["repeat-1", "repeat-2", "repeat-4"]
    assert (summary["steps"] == 4).all()
    for name in ("repeat-1", "repeat-2", "repeat-4"):  # the table is each run's own log
        logged = load_run(out / "runs" / name.replace("-", "_")).metrics
        rows = table[table["run"] == name]
        for column in ("step", "loss", "accuracy", "repetition_frequency", "cosine_similarity"):
            assert rows[column].tolist() == pytest.approx(logged[column].tolist()), (name, column)
    # a reduced batch into the same --out trains its own runs beside the full-size ones
    get("lp-fig7-repeat").run(Context(out=out, steps=4, batch_size=4, progress=False))
    runs = sorted(path.name for path in (out / "runs").iterdir())
    assert runs == ["repeat_1", "repeat_1_b4", "repeat_2", "repeat_2_b4", "repeat_4", "repeat_4_b4"]
    assert load_run(out / "runs" / "repeat_2_b4").config.train.batch_size == 4


# ------------------------------------------------------------------------ LLM entries
def test_llm_entries_on_local_checkpoints_and_without_them(tmp_path):
    pytest.importorskip("transformers")
    from test_llm import save_model

    local = tmp_path / "ckpts"
    for step in (0, 1):
        save_model(local / "pythia-14m" / f"step{step}", "neox", seed=step)
    (local / "prompts.txt").write_text("what is the sun\nwhy do plant cells need water\n")
    written = get("lp-fig8-pythia").run(Context(out=tmp_path / "out", local_dir=local, progress=False))
    results = pd.read_csv(written["table"])
    assert list(results["step"]) == [0, 1] and set(results["model"]) == {"pythia-14m"}
    # (generation_metrics itself is checked against the study's transformers recipe in test_llm.py)
    assert results["repetition_frequency"].notna().all()
    assert written["figure"].is_file()
    with pytest.raises(ValueError, match="--local-dir"):
        get("lp-fig25-olmo").run(Context(out=tmp_path / "olmo"))
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        get("lp-fig25-olmo").run(Context(out=tmp_path / "olmo", local_dir=local))
