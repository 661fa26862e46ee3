"""Reliability, second round (issue 36): no silent restart, no out-of-memory on a big number,
every operating-system failure a clear message, no plausible number from an impossible input.

One section per numbered item of the issue; each test states the exact outcome: the exit
status, the message (what it names), the bytes on disk before and after.
"""

import contextlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
import torch

from perturbed import perturbed_model, sample
from plateau_lens import (
    ModelConfig, ablate_heads, cli, load_config, make_task, patch_between_models, repetition,
    representation_collapse, train,
)
from plateau_lens.errors import EXIT_ENVIRONMENT, EXIT_REFUSED, InputError, PlateauLensError
from plateau_lens.io import RunLock
from plateau_lens.llm.generation import generation_metrics
from plateau_lens.llm.prompts import load_prompts
from plateau_lens.runs.load import load_run
from plateau_lens.script_utils import run_script
from plateau_lens.tasks.base import SequenceBatch
from plateau_lens.training import Trainer
from plateau_lens.runs.checkpoint import load_checkpoint
from plateau_lens.runs.layout import list_checkpoints

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "task": {"name": "lrmc", "m": 4, "n": 4, "rank": 1, "p_mask": 0.3},
    "model": {"n_layers": 2, "n_heads": 2, "d_model": 16, "attention": "softmax", "act_fn": "gelu"},
    "train": {"steps": 12, "batch_size": 8, "lr": 1e-3, "log_every": 1, "checkpoint_every": 4},
}
MWS = make_task("mws", n_inputs=5)
MWS_CONFIG = ModelConfig(n_layers=2, n_heads=2, d_model=16, attention="softmax")


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (hidden ones too), by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    """The error line, after checking it is the only output besides log lines (no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("plateau-lens: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 12-step run (checkpoints 0, 1, 2, 4, 8, 12), copied per test."""
    return train(load_config(SMALL), tmp_path_factory.mktemp("trained") / "run", progress=False)


@pytest.fixture
def run_copy(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


# --------------------------------------------------------------- 1. no silent restart
def test_resume_without_checkpoints_is_refused_and_nothing_changes(run_copy, capsys):
    shutil.rmtree(run_copy / "checkpoints")
    before = snapshot(run_copy)
    code, err = run_cli(capsys, "resume", run_copy, "--quiet")
    line = one_line_error(err)
    assert code == EXIT_REFUSED
    assert "records training up to step 12 (13 rows)" in line and "holds no checkpoint" in line
    assert "start over on purpose" in line and "nothing was changed" in line
    assert snapshot(run_copy) == before


def test_resume_with_its_later_checkpoints_missing_is_refused(run_copy, capsys):
    for step in (8, 12):
        for path in (run_copy / "checkpoints").glob(f"step_{step:08d}.*"):
            path.unlink()
    before = snapshot(run_copy)
    code, err = run_cli(capsys, "resume", run_copy, "--quiet")
    assert code == EXIT_REFUSED
    assert "newest checkpoint" in err and "step 4" in err and "steps 5-12" in err
    assert snapshot(run_copy) == before


def test_resume_to_fewer_steps_than_reached_is_refused(run_copy, capsys):
    before = snapshot(run_copy)
    code, err = run_cli(capsys, "resume", run_copy, "--set", "train.steps=5", "--quiet")
    assert code == EXIT_REFUSED
    assert "train.steps = 5 is below step 12" in one_line_error(err)
    assert snapshot(run_copy) == before  # config.json still says 12


def test_interrupted_before_any_history_still_resumes(tmp_path):
    """A run killed after writing its config, before its first checkpoint, has no history to
    lose: it resumes from step 0 (the refusal is only for a history without checkpoints)."""
    config = load_config(SMALL).replace(train={"steps": 2})
    trainer = Trainer.start(config, tmp_path / "run")
    trainer.close()
    assert not list_checkpoints(tmp_path / "run")
    with Trainer.resume(tmp_path / "run") as resumed:
        resumed.run(progress=False)
    assert sorted(list_checkpoints(tmp_path / "run")) == [0, 1, 2]


# ------------------------------------------------------------- 2. bounds before any work
@pytest.mark.parametrize("override,names", [
    ("train.steps=1000000000000", "train.steps must be in [1, 10000000000]"),
    ("task.separator=1000000000000", "vocabulary of 1000000000001 tokens (from task.separator = "),
    ("model.d_model=1000000", "model.d_model = 1000000"),
    ("train.batch_size=1000000", "train.batch_size = 1000000"),
    ("train.log_every=1", "raise train.log_every to >= 3"),
])
def test_sizes_beyond_the_machine_are_refused_before_any_work(tmp_path, capsys, override, names):
    argv = ["train", REPO / "tasks" / "mws.toml", "--out", tmp_path / "out", "--quiet",
            "--set", override]
    if override.startswith("train.log_every"):
        argv += ["--set", "train.steps=2000001", "--set", "train.checkpoint_every=100000"]
    code, err = run_cli(capsys, *argv)
    assert code == EXIT_REFUSED
    assert names in one_line_error(err)
    assert not (tmp_path / "out").exists()


def test_a_model_beyond_memory_is_refused_when_the_config_is_read():
    """Before any model is built (also for --dry-run and analysis), not only by the trainer."""
    with pytest.raises(PlateauLensError, match=r"model.d_model = 1000000.* this machine has"):
        load_config({**SMALL, "model": {**SMALL["model"], "d_model": 10**6}})


def test_probe_script_sizes_are_bounded(capsys):
    from plateau_lens.script_utils import run_arguments

    for flag, value in (("--batch-size", "10000000000"), ("--every", "0")):
        with pytest.raises(SystemExit) as exited:
            run_arguments("a probe").parse_args(["run", flag, value])
        assert exited.value.code == EXIT_REFUSED
        assert f"argument {flag}: must be an integer in [1, " in capsys.readouterr().err


def test_trainer_memory_does_not_grow_with_the_step_count(tmp_path):
    """Building a trainer for 10**10 steps allocates what one for 10 steps does (the old
    checkpoint-step set held every checkpoint step: 100 000 ints here)."""
    def allocated(steps: int, checkpoint_every: int) -> int:
        config = load_config(SMALL).replace(train={
            "steps": steps, "checkpoint_every": checkpoint_every, "log_every": max(1, steps // 1000)})
        tracemalloc.start()
        trainer = Trainer(config, tmp_path / f"run{steps}")
        assert trainer.config.train.is_checkpoint_step(steps)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    allocated(10, 5)  # warm caches (imports, compiled kernels)
    small, huge = allocated(10, 5), allocated(10**10, 10**5)
    assert huge - small < 1_000_000, (small, huge)


# --------------------------------------------- 3. operating-system failures: one line, exit code
@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str):
    """A tmpfs at ``where`` (``options``: e.g. ``size=160k`` or ``ro``), unmounted after;
    skips the test where this process may not mount."""
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_is_one_line_exit_4_and_the_run_resumes(tmp_path, capsys):
    (tmp_path / "config.json").write_text(load_config(SMALL).to_json())
    with mounted_tmpfs(tmp_path / "small", "size=160k") as small:
        out = small / "run"
        code, err = run_cli(capsys, "train", tmp_path / "config.json", "--out", out, "--quiet")
        line = one_line_error(err)
        assert code == EXIT_ENVIRONMENT
        assert "No space left on device" in line and str(out) in line and "free some space" in line
        kept = list_checkpoints(out)
        assert kept and max(kept) < 12
        assert not list(out.rglob("*.tmp"))  # no half-written file left
        for path in kept.values():  # every checkpoint that is there verifies
            load_checkpoint(path)
        subprocess.run(["mount", "-o", "remount,size=8m", str(small)], check=True)
        code, err = run_cli(capsys, "resume", out, "--quiet")
        assert code == 0, err
        assert sorted(list_checkpoints(out)) == [0, 1, 2, 4, 8, 12]


def test_read_only_out_and_run_are_one_line_exit_4_files_unchanged(tmp_path, capsys, trained):
    (tmp_path / "config.json").write_text(load_config(SMALL).to_json())
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as read_only:
        code, err = run_cli(capsys, "train", tmp_path / "config.json", "--out", read_only / "run", "--quiet")
        line = one_line_error(err)
        assert code == EXIT_ENVIRONMENT
        assert "Read-only file system" in line and str(read_only / "run") in line
    # a run on a read-only mount: a bind mount of a copy, remounted read-only
    run_dir = Path(shutil.copytree(trained, tmp_path / "run"))
    before = snapshot(run_dir)
    view = tmp_path / "view"
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(run_dir), str(view)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        code, err = run_cli(capsys, "resume", view, "--set", "train.steps=16", "--quiet")
        line = one_line_error(err)
        assert code == EXIT_ENVIRONMENT
        assert "Read-only file system" in line and str(view) in line
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("what", ["metrics.csv", RunLock.FILE])
def test_a_directory_where_a_run_file_belongs_is_one_line(run_copy, capsys, what):
    target = run_copy / what
    target.unlink()
    target.mkdir()
    before = snapshot(run_copy)
    code, err = run_cli(capsys, "resume", run_copy, "--set", "train.steps=16", "--quiet")
    line = one_line_error(err)
    assert code == EXIT_REFUSED
    assert str(target) in line
    assert snapshot(run_copy) == before


def test_debug_adds_the_traceback(tmp_path, capsys):
    missing = tmp_path / "absent.toml"
    code, err = run_cli(capsys, "train", missing, "--out", tmp_path / "o")
    assert code == EXIT_REFUSED and "Traceback" not in err
    assert f"config file {missing} does not exist" in one_line_error(err)
    code, err = run_cli(capsys, "--debug", "train", missing, "--out", tmp_path / "o")
    assert code == EXIT_REFUSED and "Traceback" in err and "FileNotFoundError" in err
    code, err = run_cli(capsys, "train", missing, "--out", tmp_path / "o", "--debug")  # anywhere
    assert code == EXIT_REFUSED and "Traceback" in err


def test_probe_script_refusal_is_one_line(tmp_path, capsys, monkeypatch):
    """The probe scripts' shared entry (``run_script``), run in-process on probes/ablation.py."""
    spec = importlib.util.spec_from_file_location("probe_ablation", REPO / "probes" / "ablation.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    argv = [str(REPO / "probes" / "ablation.py"), str(tmp_path / "no_run")]
    monkeypatch.setattr(sys, "argv", argv)
    assert run_script(probe.main) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"ablation.py: error: {tmp_path / 'no_run'} is not a plateau-lens run" in err
    monkeypatch.setattr(sys, "argv", argv + ["--debug"])
    assert run_script(probe.main) == EXIT_REFUSED
    assert "Traceback" in capsys.readouterr().err


# ------------------------------------------------- 4. impossible inputs give no number
@pytest.fixture(scope="module")
def mws_model():
    return perturbed_model(MWS, MWS_CONFIG)


def test_repeated_positions_are_refused(mws_model):
    batch = sample(MWS, 4)
    with pytest.raises(InputError, match=r"positions must be distinct positions, got \[3\]"):
        representation_collapse(mws_model, batch, positions=[3, 3])
    with pytest.raises(InputError, match=r"positions must be integer positions in \[0, 9\]"):
        representation_collapse(mws_model, batch, positions=[3, 99])
    # control: distinct positions give a number below 1 (the states differ)
    frame = representation_collapse(mws_model, batch, positions=[3, 4], sites=["pre_lm_h"])
    assert frame["value"].between(-1, 1 - 1e-6).all()


def test_patching_between_models_of_different_tasks_is_refused():
    real = make_task("lrmc", m=3, n=4, rank=1, encoding="real")
    tokens = make_task("lrmc", m=3, n=4, rank=1, encoding="tokens")
    config = ModelConfig(n_layers=1, n_heads=2, d_model=16, attention="softmax")
    source, target = perturbed_model(real, config), perturbed_model(tokens, config)
    with pytest.raises(InputError, match=r"different tasks \(encoding: 'real' != 'tokens'\)"):
        patch_between_models(source, target, sample(tokens, 4), progress=False)


def test_non_finite_weights_are_refused(mws_model):
    broken = perturbed_model(MWS, MWS_CONFIG)
    with torch.no_grad():
        next(broken.network.parameters()).fill_(float("nan"))
    batch = sample(MWS, 4)
    for analyzer in (repetition, representation_collapse, lambda m, b: ablate_heads(m, b, "all")):
        with pytest.raises(InputError, match="non-finite weights"):
            analyzer(broken, batch)
    assert repetition(mws_model, batch)["value"].notna().all()  # control


def test_truncated_metrics_are_rebuilt_from_the_checkpoint(run_copy, caplog):
    original = pd.read_csv(run_copy / "metrics.csv")
    text = (run_copy / "metrics.csv").read_text()
    (run_copy / "metrics.csv").write_text(text[: len(text) * 2 // 3])  # cut inside a row
    with caplog.at_level(logging.WARNING, logger="plateau_lens"):
        metrics = load_run(run_copy).metrics
    assert "truncated or damaged" in caplog.text
    pd.testing.assert_frame_equal(metrics, original, check_exact=True)


def test_truncated_metrics_without_a_checkpoint_are_refused(run_copy):
    shutil.rmtree(run_copy / "checkpoints")
    (run_copy / "metrics.csv").write_bytes(b"\xff\xfe" + b"\x00" * 40)
    with pytest.raises(InputError, match="metrics.csv is unreadable"):
        load_run(run_copy).metrics


def test_empty_prompts_are_refused():
    with pytest.raises(InputError, match="prompts must be a non-empty list"):
        generation_metrics(None, [])  # refused before the model is touched


# ------------------------------------------------ 5. messages that say what to fix
def residuals_of_another_batch(model):
    from plateau_lens.analysis.fastpath.clean_pass import hook_activations

    other = sample(MWS, 7, seed=1)
    return {0: hook_activations(model, other.inputs, ["blocks.0.hook_resid_pre"])["blocks.0.hook_resid_pre"]}


BAD_ANALYZER_CALLS = {  # name: (call on (model, batch), the message it must raise)
    "float heads": (lambda m, b: ablate_heads(m, b, 1.0),
                    r"heads must be 'all', a layer index .* got 1.0 \(float\)"),
    "float tokens": (lambda m, b: repetition(m, SequenceBatch(b.tokens.float(), b.prompt_length)),
                     r"batch inputs must be integer token ids .* got torch.float32"),
    "1-D tokens": (lambda m, b: repetition(m, SequenceBatch(b.tokens[0], b.prompt_length)),
                   r"batch inputs must be a \[batch, positions\] tensor"),
    "prompt_length": (lambda m, b: repetition(m, SequenceBatch(b.tokens, 3)),
                      r"batch.prompt_length is 3 but task 'mws' has prompts of 6"),
    "residuals of another batch": (
        lambda m, b: ablate_heads(m, b, [(0, 1)], residuals=residuals_of_another_batch(m)),
        r"residuals\[0\] must be .* on this batch"),
}


@pytest.mark.parametrize("case", list(BAD_ANALYZER_CALLS))
def test_analyzer_arguments_are_named(mws_model, case):
    call, message = BAD_ANALYZER_CALLS[case]
    with pytest.raises(InputError, match=message):
        call(mws_model, sample(MWS, 4))


def test_run_model_step_must_be_an_integer(trained):
    with pytest.raises(InputError, match=r"step must be an integer checkpoint step, got '12' \(str\)"):
        load_run(trained).model("12")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_run_model_device_must_exist(trained):
    with pytest.raises(InputError, match="CUDA is not available on this machine"):
        load_run(trained).model(12, device="cuda")


def test_config_directory_is_named(tmp_path, capsys):
    code, err = run_cli(capsys, "train", tmp_path, "--dry-run")
    assert code == EXIT_REFUSED
    assert f"config {tmp_path} is a directory, not a config file" in one_line_error(err)


def test_prompt_files_are_named(tmp_path, caplog):
    binary = tmp_path / "prompts.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xff")
    with pytest.raises(InputError, match=f"prompt file {binary} is not UTF-8 text"):
        load_prompts(binary, 2)
    short = tmp_path / "two.txt"
    short.write_text("one\ntwo\n")
    with caplog.at_level(logging.WARNING, logger="plateau_lens"):
        assert load_prompts(short, 5) == ["one", "two"]
    assert "asked for 5 prompts but file" in caplog.text and "has only 2" in caplog.text


def test_our_errors_share_one_base():
    from plateau_lens.config import ConfigError
    from plateau_lens.runs.checkpoint import CheckpointError
    from plateau_lens.training import TrainingDiverged
    from plateau_lens.io import RunLockedError

    for error in (ConfigError, CheckpointError, TrainingDiverged, RunLockedError, InputError):
        assert issubclass(error, PlateauLensError), error
    assert issubclass(InputError, ValueError)  # `except ValueError` keeps working
