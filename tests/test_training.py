"""Trainer: checkpoints, resume equality (also after SIGKILL), metrics, bad input."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from plateau_lens import CheckpointError, load_config, resume, train
from plateau_lens.runs.load import load_run
from plateau_lens.runs.checkpoint import load_checkpoint
from plateau_lens.runs.layout import checkpoint_path, list_checkpoints


def weights(run_dir, step):
    return load_checkpoint(checkpoint_path(run_dir, step))["model"]


def rewrite_stored_config(path, edit):
    """Re-save a checkpoint's weights with ``edit(config)`` as its stored config (checksum
    of the config text updated, as a writer of that config would have written it)."""
    import hashlib
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    config = json.loads(metadata["config"])
    edit(config)
    metadata["config"] = json.dumps(config, sort_keys=True)
    metadata["config_sha256"] = hashlib.sha256(metadata["config"].encode()).hexdigest()
    save_file(tensors, str(path), metadata=metadata)


def test_checkpoint_schedule_is_log_spaced_then_regular(small_lrmc_config):
    config = small_lrmc_config.replace(train={"steps": 100, "checkpoint_every": 20})
    assert config.train.checkpoint_steps() == [0, 1, 2, 4, 8, 16, 20, 40, 60, 80, 100]


def test_train_writes_metrics_and_checkpoints_that_round_trip(tmp_path, small_lrmc_config):
    from plateau_lens.training import Trainer

    with Trainer.start(small_lrmc_config, tmp_path / "run") as trainer:
        run_dir = trainer.run(progress=False)
        trained = {name: tensor.detach().clone() for name, tensor in trainer.network.state_dict().items()}
        batch = trainer.task.sample(4, torch.Generator().manual_seed(0))
        with torch.no_grad():
            trained_output = trainer.network(batch.inputs)
    run = load_run(run_dir)
    assert run.steps == [0, 1, 2, 4, 8, 12]
    assert list(run.metrics["step"]) == list(range(13))  # every step, the final checkpoint included
    for column in ["loss", "masked_mse", "observed_mse", "masked_abs_pred"]:
        assert run.metrics[column].notna().all()
    # checkpoint round trip: the loaded model computes what the training network did
    payload = load_checkpoint(run.checkpoints[12])
    assert payload["step"] == 12 and payload["config"] == small_lrmc_config.to_dict()
    assert {"optimizer", "rng", "scheduler", "metrics"} <= set(payload)
    assert payload["metrics"] == run.metrics.to_dict("records")  # every row so far travels along
    # the last checkpoint holds the training network's final weights, bit for bit, and the
    # network and model loaded from it compute what the training network computed
    assert payload["model"].keys() == trained.keys()
    for name, tensor in trained.items():
        assert torch.equal(tensor, payload["model"][name]), name
    network = run.network(12)
    with torch.no_grad():
        assert torch.equal(network(batch.inputs), trained_output)
        assert torch.allclose(run.model(12)(batch.inputs), trained_output, atol=1e-5)


def test_resume_continues_the_same_loss_curve(tmp_path, small_mws_config):
    full = train(small_mws_config, tmp_path / "full", progress=False)
    part = train(small_mws_config, tmp_path / "part", progress=False, stop_at=5)
    assert max(list_checkpoints(part)) == 4
    resume(part, progress=False)
    a, b = pd.read_csv(full / "metrics.csv"), pd.read_csv(part / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)
    for name, tensor in weights(full, 12).items():
        assert torch.equal(tensor, weights(part, 12)[name]), name


def test_killed_run_resumes_to_identical_result(tmp_path, small_lrmc_config):
    config = small_lrmc_config.replace(
        model={"d_model": 64, "n_layers": 2}, train={"steps": 60, "checkpoint_every": 10})
    full = train(config, tmp_path / "full", progress=False)
    config_path = tmp_path / "config.json"
    config_path.write_text(config.to_json())
    killed = tmp_path / "killed"
    # the same thread count as this process (conftest sets it; an inherited OMP_NUM_THREADS
    # may differ): float sums in another order would give other bits
    process = subprocess.Popen(
        [sys.executable, "-m", "plateau_lens.cli", "train", str(config_path), "--out",
         str(killed), "--quiet"], env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    deadline = time.time() + 120
    while time.time() < deadline and not any(s >= 20 for s in list_checkpoints(killed)):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reached = max(list_checkpoints(killed))
    assert 20 <= reached < 60, "the run was not killed mid-way"
    resume(killed, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(full / "metrics.csv"),
                                  pd.read_csv(killed / "metrics.csv"))
    for name, tensor in weights(full, 60).items():
        assert torch.equal(tensor, weights(killed, 60)[name]), name


def test_corrupt_checkpoint_is_reported_and_resume_falls_back(tmp_path, small_lrmc_config):
    run_dir = train(small_lrmc_config, tmp_path / "run", progress=False)
    last = list_checkpoints(run_dir)[12]
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(run_dir).network(12)
    eight = list_checkpoints(run_dir)[8]
    eight.write_bytes(eight.read_bytes()[: eight.stat().st_size // 2])  # cut inside the tensors
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(run_dir).network(8)  # analysis maps the file (mmap) instead of reading it
    eight.unlink()
    resume(run_dir, progress=False)  # restarts from step 4, rewrites steps 8 and 12
    assert load_checkpoint(eight)["step"] == 8 and load_checkpoint(last)["step"] == 12


def test_checkpoint_of_another_model_is_refused(tmp_path, small_lrmc_config):
    run_dir = train(small_lrmc_config, tmp_path / "run", progress=False)
    other = small_lrmc_config.replace(model={"d_model": 32})
    with pytest.raises(CheckpointError, match=r"another model: model.d_model: 16 != 32"):
        load_checkpoint(list_checkpoints(run_dir)[4], other.to_dict())


def test_checkpoint_written_before_a_field_existed_still_loads(tmp_path, small_lrmc_config):
    """A stored config that omits a field means its default (older checkpoints)."""
    run_dir = train(small_lrmc_config, tmp_path / "run", progress=False)
    path = list_checkpoints(run_dir)[4]

    def drop_fields(config):
        del config["model"]["pos_embedding"]
        del config["task"]["p_mask"]

    rewrite_stored_config(path, drop_fields)
    assert load_checkpoint(path, small_lrmc_config.to_dict())["step"] == 4
    changed = small_lrmc_config.replace(model={"pos_embedding": "row_column"})
    with pytest.raises(CheckpointError, match="model.pos_embedding: 'learned' != 'row_column'"):
        load_checkpoint(path, changed.to_dict())


def test_training_into_an_existing_run_is_refused(tmp_path, small_lrmc_config):
    train(small_lrmc_config, tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        train(small_lrmc_config, tmp_path / "run", progress=False)


def test_bad_train_config_fields():
    with pytest.raises(ValueError, match="lr must be > 0"):
        load_config({"task": {"name": "mws"}, "train": {"lr": 0}})
    with pytest.raises(ValueError, match=r"unknown \[train\] field"):
        load_config({"task": {"name": "mws"}, "train": {"epochs": 3}})
    with pytest.raises(ValueError, match="rank must be in"):
        load_config({"task": {"name": "lrmc", "rank": 9}})
    with pytest.raises(ValueError, match="task.name must be one of"):
        load_config({"task": {"name": "lmrc"}})


def test_cli_reports_bad_config_clearly(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[task]\nname = "lrmc"\np_mask = 1.5\n')
    result = subprocess.run([sys.executable, "-m", "plateau_lens.cli", "train", str(bad),
                             "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert result.returncode == 2 and "p_mask must be in [0, 1)" in result.stderr
    assert not (tmp_path / "x").exists()


def test_sequence_metrics_logged(tmp_path, small_mws_config):
    """Every generation metric has a column, filled at every logged step (their values are
    checked against a plain argmax loop in test_plateau_dynamics.py,
    test_log_is_taken_after_the_update_on_the_steps_batch_and_a_fresh_test_batch)."""
    run = load_run(train(small_mws_config, tmp_path / "run", progress=False))
    columns = ["accuracy", "repetition_frequency", "repetition_frequency_data"] + [
        f"accuracy_pos_{position}" for position in range(run.task.answer_length)]
    assert set(columns) <= set(run.metrics) and run.metrics[columns].notna().all().all()


class _DeviceTensor:
    """Stands in for a tensor that ``torch.load(map_location="cuda")`` left on a GPU: it has
    ``.cpu()`` but, like a CUDA tensor, no ``.numpy()`` of its own."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def cpu(self) -> torch.Tensor:
        return self.tensor.cpu()

    def numpy(self):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")


def test_rng_states_loaded_onto_a_gpu_restore(tmp_path):
    """Resuming with --device cuda loads the RNG states onto the GPU (found on an H200:
    resume failed in np.random.set_state); restoring them must copy them to the CPU first and
    give back numpy's exact stream."""
    import numpy as np

    from plateau_lens.runs.checkpoint import restore_rng_states, rng_states

    saved = rng_states()
    expected = np.random.rand(3)
    on_device = {**saved, "torch": _DeviceTensor(saved["torch"]),
                 "numpy": {**saved["numpy"], "keys": _DeviceTensor(saved["numpy"]["keys"])}}
    np.random.rand(5)
    restore_rng_states(on_device)
    assert np.array_equal(np.random.rand(3), expected)


@pytest.mark.parametrize("config_name", ["small_lrmc_config", "small_mws_config"])
def test_compiled_training_logs_what_eager_training_logs(tmp_path, config_name, request):
    """train.compile = true (the fast mode) trains and logs: its metrics (the task's, and for
    MWS greedy generation through the compiled network) equal eager training's to float32
    rounding of the compiled kernels. It used to crash at the first log: a compiled module has
    no truth value, and the evaluation wrote ``forward or model.bridge``."""
    config = request.getfixturevalue(config_name).replace(train={"steps": 2, "log_every": 1})
    eager = pd.read_csv(train(config, tmp_path / "eager", progress=False) / "metrics.csv")
    compiled_config = config.replace(train={"compile": True})
    compiled = pd.read_csv(train(compiled_config, tmp_path / "compiled", progress=False) / "metrics.csv")
    assert list(compiled["step"]) == list(eager["step"]) and len(eager) >= 2
    pd.testing.assert_frame_equal(compiled, eager, check_exact=False, rtol=1e-4, atol=1e-6)


def test_ctrl_c_stops_training_with_a_resume_hint_and_loses_no_checkpoint(tmp_path, small_lrmc_config):
    """Ctrl-C (SIGINT) during `plateau-lens train`: exit 130, no traceback, a message naming the
    newest checkpoint and the resume command; that checkpoint verifies and resuming goes on
    from it. The run is far longer than the test waits (with 400 steps it once finished
    before the signal arrived, on a loaded machine)."""
    steps = 100_000
    config = small_lrmc_config.replace(
        model={"d_model": 64, "n_layers": 2}, train={"steps": steps, "checkpoint_every": 10})
    config_path = tmp_path / "config.json"
    config_path.write_text(config.to_json())
    run_dir = tmp_path / "interrupted"
    # SIGINT at its default in the child: a shell starts background jobs with SIGINT ignored,
    # the child inherits that, and Python then installs no KeyboardInterrupt handler (a suite
    # run with `make test &` hung here: the child trained on)
    process = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "plateau_lens.cli", "train", str(config_path),
         "--out", str(run_dir), "--quiet"], stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while (time.time() < deadline and process.poll() is None
           and not any(s >= 20 for s in list_checkpoints(run_dir))):
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1]  # still training
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hangs
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        pytest.fail("no exit 60 s after SIGINT; the child's stacks:\n" + process.communicate()[1][-6000:])
    kept = max(list_checkpoints(run_dir))
    assert process.returncode == 130, stderr
    assert 20 <= kept < steps, "the run was not interrupted mid-way"
    assert "Traceback" not in stderr, stderr
    assert (f"plateau-lens: interrupted: {run_dir} keeps its checkpoints up to step {kept}; "
            f"go on with: plateau-lens resume {run_dir}") in stderr, stderr
    assert int(load_checkpoint(checkpoint_path(run_dir, kept))["step"]) == kept  # intact, verifies
    resume(run_dir, progress=False, stop_at=kept + 20)
    assert max(list_checkpoints(run_dir)) == kept + 20


def test_bf16_training_runs_in_bf16_and_follows_fp32(tmp_path, small_lrmc_config):
    """train.precision = "bf16" (autocast) takes effect, i.e. the losses differ from fp32's in
    their low bits, and follows fp32's curve over 12 steps to rel 2e-2 (measured: 0.85 %)."""
    config = small_lrmc_config.replace(model={"d_model": 64})
    fp32 = pd.read_csv(train(config, tmp_path / "fp32", progress=False) / "metrics.csv")
    bf16 = pd.read_csv(train(config.replace(train={"precision": "bf16"}), tmp_path / "bf16",
                             progress=False) / "metrics.csv")
    assert list(bf16["step"]) == list(fp32["step"]) and len(fp32) >= 12
    assert (bf16["loss"] != fp32["loss"]).all()
    pd.testing.assert_series_equal(bf16["loss"], fp32["loss"], check_exact=False, rtol=2e-2)


def test_a_model_that_does_not_fit_its_task_is_refused_when_a_run_is_made_but_old_runs_load(
        tmp_path, small_lrmc_config, capsys, monkeypatch):
    """mask_embedding = "zero" without the token encoding did nothing and was accepted; it is
    refused by train (nothing written), --dry-run and a sweep file, naming the field. A run
    saved before the check (config.json with it) still loads and resumes: building a saved run
    checks only what building needs."""
    from plateau_lens.cli import main
    from plateau_lens.sweep import load_sweep

    bad = small_lrmc_config.replace(model={"mask_embedding": "zero"})  # lrmc: real encoding
    expected = "model.mask_embedding='zero' needs a task with the token encoding"
    with pytest.raises(ValueError, match=expected):
        train(bad, tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    config_path = tmp_path / "bad.json"
    config_path.write_text(bad.to_json())
    assert main(["train", str(config_path), "--dry-run"]) == 2
    assert expected in capsys.readouterr().err
    (tmp_path / "sweep.toml").write_text('base = "bad.json"\n[grid]\ntrain.seed = [0, 1]\n')
    with pytest.raises(ValueError, match=f"run seed=0.*{expected}"):
        load_sweep(tmp_path / "sweep.toml")

    with monkeypatch.context() as before_the_check:  # a run written by a version without it
        before_the_check.setattr("plateau_lens.training.trainer.check_model_for_task", lambda *a: None)
        old = train(bad.replace(train={"steps": 4}), tmp_path / "old", progress=False)
    resume(old, progress=False, config=bad.replace(train={"steps": 8}))
    assert load_run(old).steps[-1] == 8
    assert load_run(old).config.model.mask_embedding == "zero"
    load_run(old).model(8)
