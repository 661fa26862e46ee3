"""Experiment trackers (plateau_lens.tracking): a short MWS run logged to TensorBoard, W&B
(offline), MLflow (local file store) and trackio (local), read back with each library's own
reader and compared with metrics.csv; failures before and during training."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plateau_lens import load_config
from plateau_lens.config import ConfigError
from plateau_lens.tracking import TRACKERS, Tracker, TrackerError, Tracking
from plateau_lens.training import train
from plateau_lens.runs.layout import list_checkpoints
from plateau_lens.transition import detect_transition

from wandb_records import offline_run_file, read_run

REPO = Path(__file__).resolve().parents[1]
ALL = ["tensorboard", "wandb", "mlflow", "trackio"]
TINY = """
[task]
name = "mws"
n_inputs = 6
[model]
n_layers = 1
n_heads = 1
d_model = 16
[train]
steps = 12
batch_size = 8
eval_batch_size = 4
lr = 1e-3
log_every = 2
checkpoint_every = 6
"""


def tracker_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WANDB_", "MLFLOW_", "TRACKIO_"))}
    return env | {"PYTHONPATH": str(REPO), "TRACKIO_DIR": str(tmp / "trackio"),
                  "WANDB_SILENT": "true"}


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One CLI training run with all four trackers (``--set train.trackers=[...]``), output
    to a file as in CI."""
    tmp = tmp_path_factory.mktemp("tracked")
    (tmp / "tiny.toml").write_text(TINY)
    run_dir = tmp / "run"
    with open(tmp / "output.txt", "w") as output:
        done = subprocess.run(
            [sys.executable, "-m", "plateau_lens.cli", "train", str(tmp / "tiny.toml"), "--out",
             str(run_dir), "--set", f"train.trackers={json.dumps(ALL)}"],
            stdout=output, stderr=subprocess.STDOUT, env=tracker_env(tmp), cwd=tmp, timeout=600)
    assert done.returncode == 0, (tmp / "output.txt").read_text()[-3000:]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    return tmp, run_dir, metrics


def metric_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if c != "step" and metrics[c].notna().any()]


def expected(metrics: pd.DataFrame, column: str) -> list[tuple[int, float]]:
    rows = metrics[["step", column]].dropna()
    return [(int(s), float(v)) for s, v in zip(rows["step"], rows[column])]


# ------------------------------------------------------------------ read back, each library
def test_tensorboard_holds_every_metric_at_its_step(tracked_run):
    from tensorboard.backend.event_processing import event_accumulator

    _, run_dir, metrics = tracked_run
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0})
    events.Reload()
    columns = metric_columns(metrics)
    assert {"loss", "lr"} <= set(columns)
    for column in columns:
        logged = [(e.step, e.value) for e in events.Scalars(column)]
        # TensorBoard stores float32: equal to the CSV's value rounded to float32
        assert logged == [(s, float(np.float32(v))) for s, v in expected(metrics, column)], column
    assert "figures/loss_curve" in events.Tags()["images"]
    texts = {tag: events.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
             for tag in events.Tags()["tensors"]}
    config = json.loads((run_dir / "config.json").read_text())
    assert json.dumps(config, indent=2, sort_keys=True) in texts["config/text_summary"]
    for step, path in list_checkpoints(run_dir).items():
        assert f"| {step} | {path.resolve()} |" in texts["checkpoints/text_summary"]


def test_mlflow_store_holds_every_metric_the_config_and_the_checkpoints(tracked_run, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    _, run_dir, metrics = tracked_run
    client = MlflowClient((run_dir / "mlruns").as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.run_name == "run" and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    for column in metric_columns(metrics):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, column))
        assert history == expected(metrics, column), column
    config = json.loads((run_dir / "config.json").read_text())
    assert runs[0].data.params["train.lr"] == str(config["train"]["lr"])
    assert runs[0].data.params["model.d_model"] == str(config["model"]["d_model"])
    folder = Path(client.download_artifacts(run_id, "", str(run_dir.parent / "mlflow_artifacts")))
    assert json.loads((folder / "config.json").read_text()) == config
    assert json.loads((folder / "checkpoints.json").read_text()) == {
        str(s): str(p.resolve()) for s, p in list_checkpoints(run_dir).items()}
    assert (folder / "figures" / "loss_curve.png").stat().st_size > 1000


def test_wandb_offline_run_holds_every_metric_the_config_and_the_checkpoints(tracked_run):
    _, run_dir, metrics = tracked_run
    logged = read_run(offline_run_file(run_dir))
    for column in metric_columns(metrics):
        history = [(step, values[column]) for step, values in logged["history"] if column in values]
        assert history == expected(metrics, column), column
    config = json.loads((run_dir / "config.json").read_text())
    assert {k: logged["config"][k] for k in config} == config
    assert logged["run"].display_name == "run"
    assert logged["summary"]["checkpoints"] == {
        str(s): str(p.resolve()) for s, p in list_checkpoints(run_dir).items()}
    figures = [values for _, values in logged["history"] if "figures/loss_curve/_type" in values]
    assert len(figures) == 1 and figures[0]["figures/loss_curve/_type"] == "image-file"


READ_TRACKIO = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
print(json.dumps({"logs": SQLiteStorage.get_logs("plateau-lens", "run"),
                  "config": SQLiteStorage.get_run_config("plateau-lens", "run")}, default=str))
"""


def test_trackio_store_holds_every_metric_and_the_config(tracked_run):
    tmp, run_dir, metrics = tracked_run
    done = subprocess.run([sys.executable, "-c", READ_TRACKIO], capture_output=True, text=True,
                          env=tracker_env(tmp), timeout=300)  # TRACKIO_DIR is read at import
    assert done.returncode == 0, done.stderr[-2000:]
    stored = json.loads(done.stdout.strip().splitlines()[-1])
    for column in metric_columns(metrics):
        history = [(row["step"], row[column]) for row in stored["logs"] if column in row]
        assert history == expected(metrics, column), column
    config = json.loads((run_dir / "config.json").read_text())
    assert {k: stored["config"][k] for k in config} == config
    assert any("figures/loss_curve" in row for row in stored["logs"])
    assert any("checkpoints" in row for row in stored["logs"])


# ------------------------------------------------------------------ the transition, groups
def plateau_rows() -> list[dict]:
    """A loss curve with a plateau at 1 and a sudden drop to 0.01 near step 120."""
    steps = np.arange(0, 202, 2)
    loss = 0.01 + 0.99 / (1 + np.exp((steps - 120) / 2.0)) + 0.3 * np.exp(-steps / 5.0)
    return [{"step": int(s), "lr": 1e-3, "loss": float(v)} for s, v in zip(steps, loss)]


def test_the_detected_transition_is_logged(tmp_path, monkeypatch, caplog):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing import event_accumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "curve"
    run_dir.mkdir()
    rows = plateau_rows()
    transition = detect_transition(pd.DataFrame(rows))
    assert transition is not None
    tracking = Tracking(["tensorboard", "mlflow", "wandb"], run_dir, {"task": {"name": "mws"}})
    tracking.start()
    for row in rows:
        tracking.log_row(row)
    tracking.finish(pd.DataFrame(rows))
    values = transition.to_dict()

    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    for key in ("plateau_start", "plateau_end", "drop_step", "drop_end"):
        assert events.Scalars(f"transition/{key}")[0].value == values[key]
    client = MlflowClient((run_dir / "mlruns").as_uri())
    run_id = client.search_runs([e.experiment_id for e in client.search_experiments()])[0].info.run_id
    for key in ("plateau_start", "plateau_end", "drop_step", "drop_end", "plateau_loss", "final_loss"):
        assert client.get_metric_history(run_id, f"transition.{key}")[0].value == pytest.approx(values[key])
    summary = read_run(offline_run_file(run_dir))["summary"]
    # seen once in a full suite on a loaded machine: no "transition" in the W&B summary (not
    # reproduced alone); say what the summary held and what the session logged
    assert "transition" in summary, (sorted(summary), [r.getMessage() for r in caplog.records])
    assert summary["transition"] == pytest.approx({k: float(v) for k, v in values.items()})


SWEEP = """base = "tiny.toml"
[set]
train.steps = 4
train.trackers = ["mlflow"]
[grid]
train.seed = [0, 1]
"""


def test_a_sweep_logs_each_run_into_one_group_named_after_it(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from plateau_lens.sweep.spec import load_sweep

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "lr_study.toml").write_text(SWEEP)
    sweep = load_sweep(tmp_path / "lr_study.toml")
    assert [p.config.train.tracker_group for p in sweep.points] == ["lr_study", "lr_study"]
    for point in sweep.points:
        train(point.config, tmp_path / "out" / point.name, progress=False)
    client = MlflowClient(store.as_uri())
    experiment = client.get_experiment_by_name("lr_study")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(p.name for p in sweep.points)
    assert {r.data.tags["group"] for r in runs} == {"lr_study"}


# ------------------------------------------------------------------ failures
class FlakyTracker(Tracker):
    """Raises on its second metrics row: a tracker whose server went away mid-run."""

    name = "flaky"
    calls = 0

    def __init__(self, info):
        super().__init__(info)

    def log_metrics(self, step, values):
        FlakyTracker.calls += 1
        if FlakyTracker.calls == 2:
            raise ConnectionError("the tracking server went away")


def test_a_tracker_failing_mid_run_leaves_a_complete_run(tmp_path, small_mws_config, monkeypatch, caplog):
    from safetensors.torch import load_file

    monkeypatch.setitem(TRACKERS, "flaky", FlakyTracker)
    FlakyTracker.calls = 0
    plain = train(small_mws_config, tmp_path / "plain", progress=False)
    tracked_config = small_mws_config.replace(train={"trackers": ["flaky", "tensorboard"]})
    with caplog.at_level(logging.WARNING, logger="plateau_lens"):
        tracked = train(tracked_config, tmp_path / "tracked", progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "'flaky'" in warnings[0] and "training goes on" in warnings[0]
    assert FlakyTracker.calls == 2  # dropped after it failed
    assert (tracked / "metrics.csv").read_text() == (plain / "metrics.csv").read_text()
    plain_checkpoints, tracked_checkpoints = list_checkpoints(plain), list_checkpoints(tracked)
    assert sorted(plain_checkpoints) == sorted(tracked_checkpoints) == small_mws_config.train.checkpoint_steps()
    for step in plain_checkpoints:
        a, b = load_file(plain_checkpoints[step]), load_file(tracked_checkpoints[step])
        assert all((a[k] == b[k]).all() for k in a)
    # the healthy tracker logged every row
    from tensorboard.backend.event_processing import event_accumulator

    events = event_accumulator.EventAccumulator(str(tracked / "tensorboard"))
    events.Reload()
    metrics = pd.read_csv(tracked / "metrics.csv")
    assert [e.step for e in events.Scalars("loss")] == metrics["step"].tolist()


def test_wandb_online_without_an_account_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from plateau_lens.cli import main

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "run"
    code = main(["train", str(tmp_path / "tiny.toml"), "--out", str(out), "--quiet",
                 "--set", 'train.trackers=["tensorboard", "wandb"]'])
    assert code == 2
    error = capsys.readouterr().err
    assert "WANDB_MODE=online needs an account" in error and "train.trackers" in error
    assert not out.exists()


def test_an_unusable_mlflow_store_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://host/store")
    config = load_config({"task": {"name": "mws", "n_inputs": 6}, "model": {"d_model": 16},
                          "train": {"steps": 2, "batch_size": 4, "trackers": ["mlflow"]}})
    with pytest.raises(TrackerError, match="MLFLOW_TRACKING_URI 'nosuchscheme://host/store'"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("trackers, words", [
    (["tensorbored"], "unknown tracker(s) ['tensorbored']; allowed: ['mlflow', 'tensorboard', 'trackio', 'wandb']"),
    (["wandb", "wandb"], "lists ['wandb'] more than once"),
    ("tensorboard", "train.trackers"),
])
def test_bad_trackers_field_is_refused_naming_it(trackers, words):
    with pytest.raises(ConfigError) as error:
        load_config({"task": {"name": "mws"}, "train": {"trackers": trackers}})
    assert "train.trackers" in str(error.value) and words in str(error.value)
