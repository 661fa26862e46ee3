"""Fault injection: runs cannot be lost, mixed up or hijacked (issue 17).

Each test breaks something on purpose (a kill inside a write, an edited config, a bit flip,
a pickle payload, a second trainer, a diverging run, bad input) and asserts the exact
outcome: bytes on disk, the error and its message, the exit status.
"""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from plateau_lens import cli, load_config, resume, train
from plateau_lens.io import RunLock, RunLockedError, read_table
from plateau_lens.runs.load import load_run
from plateau_lens.runs.checkpoint import LEGACY_FORMAT, CheckpointError, CheckpointMismatch, load_checkpoint
from plateau_lens.runs.layout import checkpoint_path, list_checkpoints, state_path
from plateau_lens.training import Trainer, TrainingDiverged, train_or_resume
from plateau_lens.training.convert import convert_run

SMALL = {
    "task": {"name": "lrmc", "m": 4, "n": 4, "rank": 1, "p_mask": 0.3},
    "model": {"n_layers": 2, "n_heads": 2, "d_model": 16, "attention": "softmax", "act_fn": "gelu"},
    "train": {"steps": 12, "batch_size": 8, "lr": 1e-3, "log_every": 1, "checkpoint_every": 4},
}
STEPS = [0, 1, 2, 4, 8, 12]


def small_config(**train_fields):
    return load_config(SMALL).replace(train=train_fields) if train_fields else load_config(SMALL)


def snapshot(directory: Path, lock: bool = True) -> dict[str, bytes]:
    """Every file under ``directory`` (hidden ones too; ``lock=False``: not the lock file,
    whose PID a live trainer clears when it closes), by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*"))
            if p.is_file() and (lock or p.name != RunLock.FILE)}


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_same_run(a: Path, b: Path, step: int = 12) -> None:
    """Bit-identical weights, optimizer and scheduler state and metrics (the files differ
    only in the process-global RNG states they record when written by another process)."""
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    assert list_checkpoints(a).keys() == list_checkpoints(b).keys()
    one, two = load_checkpoint(checkpoint_path(a, step)), load_checkpoint(checkpoint_path(b, step))
    for name, tensor in one["model"].items():
        assert torch.equal(tensor, two["model"][name]), name
    for index, state in one["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, two["optimizer"]["state"][index][key]), (index, key)
    assert one["metrics"] == two["metrics"] and one["scheduler"] == two["scheduler"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted reference run (trained once for the module)."""
    return train(small_config(), tmp_path_factory.mktemp("full") / "run", progress=False)


def no_leftovers(run_dir: Path) -> None:
    names = [p.name for p in run_dir.rglob("*")]
    assert not [n for n in names if n.endswith(".tmp")], names
    states = {p.stem for p in (run_dir / "checkpoints").glob("step_????????.state")}
    weights = {p.stem for p in (run_dir / "checkpoints").glob("step_????????.safetensors")}
    assert states == weights  # no training state without its weights


# ------------------------------------------------------------------ kill inside a write
KILLS = {  # run name: (the rename that completes an atomic write, which one), resume point
    "metrics": ("metrics.csv", 4, 2),      # inside the metrics write of step 4
    "state": (".state", 5, 4),             # inside the training-state write of step 8
    "weights": (".safetensors", 5, 4),     # between the two files of step 8: state renamed, weights not
}
KILL_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(int(sys.argv[2]))
from plateau_lens import train
real_replace = os.replace
for job in sys.argv[3:]:  # one forked child per kill (the import is paid once; no torch op ran yet)
    out, suffix, nth = job.rsplit(":", 2)
    pid = os.fork()
    if pid == 0:
        seen = [0]
        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith(suffix):
                seen[0] += 1
                if seen[0] == int(nth):
                    os.kill(os.getpid(), signal.SIGKILL)  # the temp file is written, not renamed
            return real_replace(src, dst, *args, **kwargs)
        os.replace = replace
        try:
            train(sys.argv[1], out, progress=False)
        finally:
            os._exit(1)  # not killed: reported below
    _, status = os.waitpid(pid, 0)
    print(out, "killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL else status)
"""


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    """Runs SIGKILLed inside one write each (a child process per run)."""
    root = tmp_path_factory.mktemp("killed")
    (root / "config.json").write_text(small_config().to_json())
    jobs = [f"{root / name}:{suffix}:{nth}" for name, (suffix, nth, _) in KILLS.items()]
    threads = str(torch.get_num_threads())  # other threads, other float sums, other bits
    result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(root / "config.json"), threads, *jobs],
                            env={**os.environ, "OMP_NUM_THREADS": threads}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [w for name in KILLS for w in (str(root / name), "killed")]
    return root


@pytest.mark.parametrize("name", list(KILLS))
def test_kill_inside_a_write_resumes_bit_identical(killed_runs, full_run, name):
    killed = killed_runs / name
    assert max(list_checkpoints(killed)) == KILLS[name][2]
    assert any(p.name.endswith(".tmp") for p in killed.rglob("*")), "no write was interrupted"
    resume(killed, progress=False)
    assert_same_run(full_run, killed)
    assert snapshot(killed).keys() == snapshot(full_run).keys()  # the same files, no more
    no_leftovers(killed)


# ------------------------------------------------------------------ config mismatch
def test_edited_config_on_resume_is_refused_and_nothing_changes(tmp_path, capsys):
    run_dir = train(small_config(), tmp_path / "run", progress=False, stop_at=5)
    config = json.loads((run_dir / "config.json").read_text())
    config["model"]["d_model"] = 32
    (run_dir / "config.json").write_text(json.dumps(config))
    before = snapshot(run_dir)
    with pytest.raises(CheckpointMismatch, match=r"step\(s\) \[0, 1, 2, 4\] .* model\.d_model: 16 != 32"):
        resume(run_dir, progress=False)
    assert snapshot(run_dir) == before
    code, err = run_cli(capsys, "resume", run_dir)
    assert code == 2 and "model.d_model: 16 != 32" in err and "nothing was changed" in err
    assert snapshot(run_dir) == before
    # a field that does not change any tensor's shape
    config["model"]["d_model"], config["train"]["lr"] = 16, 0.5
    (run_dir / "config.json").write_text(json.dumps(config))
    before = snapshot(run_dir)
    with pytest.raises(CheckpointMismatch, match=r"train\.lr: 0\.001 != 0\.5"):
        resume(run_dir, progress=False)
    assert snapshot(run_dir) == before


def test_resume_with_another_model_is_refused_and_nothing_changes(tmp_path):
    run_dir = train(small_config(), tmp_path / "run", progress=False, stop_at=5)
    before = snapshot(run_dir)
    other = small_config().replace(model={"d_model": 32})
    with pytest.raises(CheckpointMismatch, match=r"differs from the run's config.json.*model\.d_model: 16 != 32"):
        train_or_resume(other, run_dir, progress=False)
    with pytest.raises(CheckpointMismatch, match=r"train\.lr: 0\.001 != 0\.01"):
        resume(run_dir, progress=False, config=small_config(lr=1e-2))
    # another model's checkpoint dropped into the run
    foreign = train(other, tmp_path / "other", progress=False, stop_at=9)
    for path in (checkpoint_path(foreign, 8), state_path(checkpoint_path(foreign, 8))):
        (run_dir / "checkpoints" / path.name).write_bytes(path.read_bytes())
    before = snapshot(run_dir)
    with pytest.raises(CheckpointMismatch, match=r"step\(s\) \[8\] .* model\.d_model: 32 != 16"):
        resume(run_dir, progress=False)
    assert snapshot(run_dir) == before


def test_more_steps_on_resume_is_allowed(tmp_path, full_run):
    run_dir = train(small_config(steps=8), tmp_path / "run", progress=False)
    resume(run_dir, progress=False, config=small_config(steps=12))
    assert load_config(run_dir / "config.json").train.steps == 12
    assert max(list_checkpoints(run_dir)) == 12


# ------------------------------------------------------------------ pickle payloads
class Payload:
    """Unpickling calls open(marker, "w"): the file appears iff the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "payload_ran"
    run_dir = train(small_config(), tmp_path / "run", progress=False, stop_at=5)
    evil = {"format": LEGACY_FORMAT, "step": 16, "config": small_config().to_dict(),
            "model": Payload(marker)}
    legacy = run_dir / "checkpoints" / "step_00000016.pt"
    torch.save(evil, legacy)
    before = snapshot(run_dir)
    with pytest.raises(CheckpointError, match="legacy pickle checkpoint; convert"):
        resume(run_dir, progress=False)
    with pytest.raises(CheckpointError, match="legacy pickle"):
        load_run(run_dir).network(16)
    assert snapshot(run_dir) == before
    # in a config's [init] checkpoint: refused before anything is written
    config = small_config().replace(init={"checkpoint": str(legacy), "components": ["mlp"]})
    with pytest.raises(CheckpointError, match="legacy pickle"):
        train(config, tmp_path / "init_run", progress=False)
    assert not (tmp_path / "init_run").exists()
    # pickle bytes under a safetensors name: unreadable, skipped, never unpickled
    disguised = run_dir / "checkpoints" / "step_00000005.safetensors"
    disguised.write_bytes(legacy.read_bytes())
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(disguised)
    disguised.unlink()
    # a pickle in the training-state sidecar, with a matching checksum: weights_only refuses it
    weights = checkpoint_path(run_dir, 4)
    sidecar = state_path(weights)
    sidecar.write_bytes(legacy.read_bytes())
    rehash_state(weights)
    with pytest.raises(CheckpointError, match="not plain tensors and containers"):
        load_checkpoint(weights)
    assert not marker.exists()
    # control: the payload is live, opting in to pickle does run it
    load_checkpoint(legacy, allow_pickle=True)["model"].close()
    assert marker.exists()


def rehash_state(weights: Path) -> None:
    """Re-save ``weights`` with its sidecar's current sha256 (as if written together)."""
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    metadata["state_sha256"] = hashlib.sha256(state_path(weights).read_bytes()).hexdigest()
    save_file(tensors, str(weights), metadata=metadata)


def test_legacy_run_loads_only_on_opt_in_and_converts(tmp_path, full_run):
    """A run in the old format (pickled .pt files) of the same training: readable with
    allow_pickle, converted without loss, then resumable to the same result."""
    import random

    import numpy as np

    run_dir = tmp_path / "legacy"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text((full_run / "config.json").read_text())
    metrics = read_table(full_run / "metrics.csv")
    metrics[metrics["step"] < 8].to_csv(run_dir / "metrics.csv", index=False)
    for step in (0, 1, 2, 4, 8):
        new = load_checkpoint(checkpoint_path(full_run, step))
        rng = {"torch": new["rng"]["torch"], "numpy": np.random.get_state(), "python": random.getstate()}
        torch.save({"format": LEGACY_FORMAT, "step": step, "config": new["config"], "model": new["model"],
                    "optimizer": new["optimizer"], "scheduler": new["scheduler"], "rng": rng},
                   run_dir / "checkpoints" / f"step_{step:08d}.pt")
    with pytest.raises(CheckpointError, match="legacy pickle"):
        load_run(run_dir).network(8)
    with pytest.raises(CheckpointError, match="legacy pickle"):
        resume(run_dir, progress=False)
    legacy_weights = load_run(run_dir, allow_pickle=True).network(8).state_dict()
    assert len(convert_run(run_dir)) == 5
    converted = load_run(run_dir)
    assert all(p.suffix == ".safetensors" for p in converted.checkpoints.values())
    for name, tensor in converted.network(8).state_dict().items():
        assert torch.equal(tensor, legacy_weights[name]), name
    resume(run_dir, progress=False)
    assert_same_run(full_run, run_dir)


# ------------------------------------------------------------------ run lock
def test_second_trainer_is_refused_with_the_holders_pid(tmp_path, capsys):
    out = tmp_path / "run"
    holder = Trainer.start(small_config(), out)
    pid = f"PID {os.getpid()}"
    with pytest.raises(RunLockedError, match=pid):
        train(small_config(), out, progress=False)
    with pytest.raises(RunLockedError, match=pid):
        resume(out, progress=False)
    code, err = run_cli(capsys, "resume", out)
    assert code == 2 and pid in err
    holder.run(progress=False)
    holder.close()
    assert list(list_checkpoints(out)) == STEPS
    resume(out, progress=False)  # free again
    # the race: a second trainer reaches a fresh --out while the first holds it but has not
    # written config.json yet
    racing = tmp_path / "race"
    racing.mkdir()
    first = RunLock(racing).acquire()
    first.record_owner()
    with pytest.raises(RunLockedError, match=pid):
        train(small_config(), racing, progress=False)
    first.release()
    assert sorted(p.name for p in racing.iterdir()) == [".plateau-lens.lock"]


# ------------------------------------------------------------------ divergence
def test_nan_loss_stops_without_writing_a_nan_checkpoint(tmp_path, capsys):
    config = small_config(optimizer="sgd", lr=10.0)
    with pytest.raises(TrainingDiverged, match=r"the loss is nan at step 3 \(lr 10\).*last checkpoint is step 2"):
        train(config, tmp_path / "run", progress=False)
    assert list(list_checkpoints(tmp_path / "run")) == [0, 1, 2]
    for path in list_checkpoints(tmp_path / "run").values():
        assert all(torch.isfinite(t).all() for t in load_checkpoint(path)["model"].values())
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["step"]) == [0, 1, 2] and metrics.notna().all().all()
    (tmp_path / "config.json").write_text(config.to_json())
    code, err = run_cli(capsys, "train", tmp_path / "config.json", "--out", tmp_path / "cli", "--quiet")
    assert code == 3 and "training diverged: the loss is nan at step 3 (lr 10)" in err


def test_deferred_nan_check_stops_before_the_next_checkpoint(tmp_path):
    """Off the CPU the loss is checked at logged steps and before each checkpoint only."""
    trainer = Trainer.start(small_config(optimizer="sgd", lr=10.0, log_every=5), tmp_path / "run")
    trainer.check_every_step = False  # as on a GPU
    with pytest.raises(TrainingDiverged, match=r"the loss became non-finite before step 4 .*last checkpoint is step 2"):
        trainer.run(progress=False)
    trainer.close()
    assert list(list_checkpoints(tmp_path / "run")) == [0, 1, 2]


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    trainer = Trainer.start(small_config(), tmp_path / "run")
    trainer.run(stop_at=3, progress=False)
    before = snapshot(tmp_path / "run", lock=False)
    with torch.no_grad():
        next(trainer.network.parameters())[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"weights \['.*'\] are not finite after step 3"):
        trainer.save()
    trainer.close()
    assert snapshot(tmp_path / "run", lock=False) == before


# ------------------------------------------------------------------ corruption
def flip_bit_in_tensor_data(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    position = start + (len(data) - start) // 2
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def test_bit_flip_is_detected_and_resume_falls_back(tmp_path, caplog):
    run_dir = train(small_config(), tmp_path / "run", progress=False)
    newest = checkpoint_path(run_dir, 12)
    intact = snapshot(run_dir)
    flip_bit_in_tensor_data(newest)
    with pytest.raises(CheckpointError, match="its weights fail their checksum"):
        load_checkpoint(newest)
    with pytest.raises(CheckpointError, match="its weights fail their checksum"):
        load_run(run_dir).network(12)
    with caplog.at_level(logging.WARNING, logger="plateau_lens"):
        resume(run_dir, progress=False)
    assert "skipping unreadable checkpoint" in caplog.text and "step_00000012" in caplog.text
    assert snapshot(run_dir) == intact  # step 12 retrained from step 8, bit for bit
    # the training state of the newest checkpoint damaged instead
    sidecar = state_path(newest)
    sidecar.write_bytes(sidecar.read_bytes()[:-100])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="plateau_lens"):
        resume(run_dir, progress=False)
    assert "training state step_00000012.state fails its checksum" in caplog.text
    assert snapshot(run_dir) == intact


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_lost_metrics_are_rebuilt_from_the_checkpoints(tmp_path, caplog, damage):
    run_dir = train(small_config(), tmp_path / "run", progress=False, stop_at=9)
    metrics = run_dir / "metrics.csv"
    original = metrics.read_bytes()
    if damage == "truncate":
        metrics.write_bytes(original[: len(original) // 2])
    elif damage == "garbage":
        metrics.write_bytes(b"\x00\xffnot,a\ncsv\x01" * 50)
    else:
        metrics.unlink()
    with caplog.at_level(logging.WARNING, logger="plateau_lens"):
        Trainer.resume(run_dir).close()
    assert "rebuilt from checkpoint step 8 (9 rows)" in caplog.text  # rows 0-8: step 8 has its own
    assert metrics.read_bytes() == original


def test_stray_and_leftover_files(tmp_path, full_run):
    run_dir = train(small_config(), tmp_path / "run", progress=False, stop_at=5)
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "step_backup.pt").write_bytes(b"a user's file")
    (checkpoints / "notes.txt").write_text("mine")
    (checkpoints / "step_12.safetensors").write_bytes(b"not eight digits")
    (checkpoints / ".step_00000008.safetensors.k2j4.tmp").write_bytes(b"half a write")
    (checkpoints / "step_00000008.state").write_bytes(b"a sidecar whose weights never came")
    (run_dir / ".metrics.csv.x81q.tmp").write_bytes(b"half a table")
    assert list(list_checkpoints(run_dir)) == [0, 1, 2, 4]
    assert load_run(run_dir).steps == [0, 1, 2, 4]
    resume(run_dir, progress=False)
    assert_same_run(full_run, run_dir)
    no_leftovers(run_dir)
    assert (checkpoints / "step_backup.pt").read_bytes() == b"a user's file"  # not ours: kept
    assert (checkpoints / "notes.txt").is_file()


# ------------------------------------------------------------------ input
BAD_INPUT = [
    ('[train]\nlr = "1e-3"', "train.lr must be > 0 (a finite number), got '1e-3' (a string)"),
    ('[train]\ngrad_clip = "1.0"', "train.grad_clip must be >= 0 (a finite number; 0 = off), got '1.0' (a string)"),
    ("[train]\ngrad_clip = nan", "train.grad_clip must be >= 0 (a finite number; 0 = off), got nan"),
    ("[train]\nlr = inf", "train.lr must be > 0 (a finite number), got inf"),
    ("[train]\nattention_bias = inf", "train.attention_bias (c) must be > 0 (a finite number), got inf"),
    ('[train]\ncompile = "no"', "train.compile must be true or false, got 'no' (a string)"),
    ('[train]\ncheckpoint_log_spaced = "no"', "train.checkpoint_log_spaced must be true or false, got 'no' (a string)"),
    ("[train]\nsteps = 1e4", "train.steps must be in [1, 10000000000] (an integer), got 10000.0 (a float)"),
    ("[model]\nlayer_norm_eps = -1", "model.layer_norm_eps must be in (0, 1) (a finite number), got -1"),
    ('[model]\ninit_std = "0.02"', "model.init_std must be > 0 (a finite number), got '0.02' (a string)"),
    ("[model]\ninit_std = inf", "model.init_std must be > 0 (a finite number), got inf"),
    ('[init]\ncheckpoint = "x"\ncomponents = "attn"',
     "init.components must be a list of component names from ["),
    ('[task]\np_mask = "0.3"', "task.p_mask must be a finite number, got '0.3' (a string)"),
    ("[task]\nfactor_scale = inf", "task.factor_scale must be a finite number, got inf"),
    ("[task]\nrank = 9", "task.rank must be in [1, 4], got 9"),
]
HEAD = '[task]\nname = "lrmc"\nm = 4\nn = 4\n'


def merge_toml(extra: str) -> str:
    """A small lrmc config (were a check lost, a short run) with ``extra``'s table lines put
    in their table, replacing a default of the same key."""
    tables = {"task": HEAD[len("[task]\n"):], "model": "d_model = 16\n", "train": "steps = 2\nbatch_size = 4\n",
              "init": ""}
    section, lines = extra.split("]\n", 1)
    section = section.lstrip("[")
    keys = {line.split("=")[0].strip() for line in lines.splitlines()}
    kept = [line for line in tables[section].splitlines() if line.split("=")[0].strip() not in keys]
    tables[section] = "".join(line + "\n" for line in kept + lines.splitlines())
    return "".join(f"[{name}]\n{body}" for name, body in tables.items() if body)


@pytest.mark.parametrize("extra,message", BAD_INPUT)
def test_bad_config_values_are_refused_before_any_work(tmp_path, capsys, extra, message):
    path = tmp_path / "bad.toml"
    path.write_text(merge_toml(extra))
    code, err = run_cli(capsys, "train", path, "--out", tmp_path / "out")
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("toml,message", [
    ('task = "mws"\n', "task must be a table with a 'name' field (e.g. [task] name = \"mws\"), got 'mws' (a string)"),
    ('[task]\nname = "mws"\nseparator = -1\n', "task.separator must be >= 0 (an integer), got -1"),
    ('[task]\nname = "mws"\n[train]\nlr = "x"\nsteps = 0\n',
     "2 config problems:"),
])
def test_bad_tables_are_refused(tmp_path, capsys, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    code, err = run_cli(capsys, "train", path, "--out", tmp_path / "out")
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_set_overrides_any_field_with_the_same_checks(tmp_path, capsys):
    from plateau_lens.config import apply_overrides

    config = apply_overrides(small_config(), ["train.lr=3e-4", "model.d_model=32", "train.device=cpu",
                                              'init.freeze_at_init=["ln1"]', "task.p_mask=0.5"])
    assert (config.train.lr, config.model.d_model, config.init.freeze_at_init, config.task["p_mask"]) == \
        (3e-4, 32, ("ln1",), 0.5)
    path = tmp_path / "c.toml"
    path.write_text(HEAD)
    for flag, message in [("train.lr=\"1e-3\"", "train.lr must be > 0 (a finite number), got '1e-3'"),
                          ("train.compile=no", "train.compile must be true or false, got 'no'"),
                          ("train.epochs=3", "unknown [train] field(s) ['epochs']"),
                          ("lr=3", "--set expects <table>.<field>=<value>")]:
        code, err = run_cli(capsys, "train", path, "--out", tmp_path / "out", "--set", flag)
        assert code == 2 and message in err, (flag, err)
    code, err = run_cli(capsys, "resume", tmp_path / "nothing", "--set", "train.steps=3")
    assert code == 2 and f"{tmp_path / 'nothing' / 'config.json'} does not exist" in err, err
    assert not (tmp_path / "out").exists()


def test_out_holding_the_users_files_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "experiment"}')
    (out / "metrics.csv").write_text("epoch,acc\n1,0.5\n")
    before = snapshot(out)
    path = tmp_path / "c.toml"
    path.write_text(HEAD)
    code, err = run_cli(capsys, "train", path, "--out", out, "--quiet")
    assert code == 2 and "holds config.json, metrics.csv but is not a plateau-lens run" in err
    assert snapshot(out) == before and sorted(os.listdir(out)) == ["config.json", "metrics.csv"]
    with pytest.raises(FileNotFoundError, match="not a plateau-lens run"):
        resume(out)
    assert snapshot(out) == before
