"""plateau-lens sweep: sweep-file validation, and a 4-run sweep on a local Ray with 2 workers
that is interrupted (Ctrl-C), killed (kill -9) and re-run: every run trained once, a failing
point recorded with its error, sweep.csv, figures and the sweep-wide analysis table."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from plateau_lens import load_config, load_run
from plateau_lens.cli import main
from plateau_lens.sweep import load_sweep
from plateau_lens.sweep.rundir import is_locked, read_status
from plateau_lens.runs.layout import list_checkpoints

TINY = """
[task]
name = "mws"
n_inputs = 8
[model]
d_model = 128
[train]
steps = 200
batch_size = 64
eval_batch_size = 32
lr = 5e-4
log_every = 5
checkpoint_every = 25
"""
STEPS = 200


def write_sweep(folder: Path, body: str, base: str = TINY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.toml").write_text(base)
    path = folder / "sweep.toml"
    path.write_text('base = "tiny.toml"\n' + body)
    return path


# ------------------------------------------------------------------ sweep files (no Ray)
def test_grid_times_zip_gives_named_points_with_their_configs(tmp_path):
    path = write_sweep(tmp_path, """
[set]
train.steps = 50
[grid]
train.attention_bias = [0.2, 10]
"train.seed" = [0, 1, 2]
[[zip]]
model.d_model = [64, 128]
model.d_mlp = [256, 512]
""")
    sweep = load_sweep(path)
    assert sweep.fields == ("train.attention_bias", "train.seed", "model.d_model", "model.d_mlp")
    assert len(sweep.points) == 2 * 3 * 2
    point = sweep.points[-1]
    assert point.name == "attention_bias=10__seed=2__d_model=128__d_mlp=512"
    config = point.config
    assert (config.train.attention_bias, config.train.seed, config.train.steps) == (10, 2, 50)
    assert (config.model.d_model, config.model.d_mlp) == (128, 512)
    assert config.task["n_inputs"] == 8  # the rest comes from the base config
    assert len({p.name for p in sweep.points}) == len(sweep.points)


HUGE_GRID = (f"[grid]\ntrain.seed = {list(range(101))}\n"
             f"train.batch_size = {list(range(1, 101))}\n")
"""10100 points: past MAX_POINTS (10 000)."""


def test_a_grid_past_max_points_is_refused_before_any_point_is_built(tmp_path, monkeypatch):
    """The count is checked on the lists' lengths: no point's config is validated first."""
    import plateau_lens.sweep.spec as spec

    built = []
    monkeypatch.setattr(spec, "apply", lambda *args, **kwargs: built.append(args) or args[0])
    with pytest.raises(spec.SweepError, match=r"10100 runs .*more than the 10000"):
        load_sweep(write_sweep(tmp_path, HUGE_GRID))
    assert len(built) == 1  # only the [set] table was applied, no point


@pytest.mark.parametrize("body, expected", [
    ("[grid]\ntrain.sed = [0, 1]\n", ["train.sed", "allowed", "seed"]),
    ("[grid]\nmodel.d_modl = [64]\n", ["model.d_modl", "allowed", "d_model"]),
    ("[grid]\ntask.n_input = [4]\n", ["task.n_input", "allowed", "n_inputs"]),
    ("[grid]\noptim.lr = [1e-3]\n", ["optim.lr", "section", "train"]),
    ("[grid]\ntrain.seed = []\n", ["train.seed", "empty list"]),
    ("[grid]\ntrain.seed = 3\n", ["train.seed", "must be a list", "[set]"]),
    ("[[zip]]\nmodel.d_model = [64, 128]\nmodel.d_mlp = [256]\n",
     ["same length", "model.d_model has 2", "model.d_mlp has 1"]),
    ("[grid]\ntrain.attention_bias = [0.5, 0]\n", ["attention_bias", "must be > 0", "got 0"]),
    ("[grid]\ntrain.optimizer = ['adam', 'lion']\n", ["optimizer", "adam", "sgd", "lion"]),
    ("[set]\ntrain.seed = 1\n[grid]\ntrain.seed = [0, 1]\n", ["train.seed", "twice"]),
    ("[grdi]\ntrain.seed = [0]\n", ["grdi", "allowed", "grid"]),
    ("[set]\ntrain.steps = 10\n", ["nothing to sweep"]),
    (HUGE_GRID, ["10100 runs", "[grid] train.seed: 101", "[grid] train.batch_size: 100", "10000"]),
])
def test_bad_sweep_file_is_refused_naming_the_field_and_nothing_is_written(tmp_path, capsys, body,
                                                                           expected):
    path = write_sweep(tmp_path, body)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    for text in expected:
        assert text in error, (text, error)
    assert not out.exists()


LRMC_TINY = """
[task]
name = "lrmc"
m = 3
n = 3
rank = 1
[model]
d_model = 16
"""


GPT_TINY = LRMC_TINY.replace('name = "lrmc"', 'name = "lrmc_gpt"')


@pytest.mark.parametrize("base, analyzers, expected", [
    (TINY, "attention_progress,attention_structure",
     "--analyze attention_structure: defined for matrix-completion tasks (lrmc, lrmc_gpt), not task "
     "'mws' (run seed=0); allowed for this task: attention_progress, ablation_sweep, repetition, "
     "representation_collapse"),
    (TINY, "copying_test", "--analyze copying_test: defined for matrix-completion tasks with a value "
                           "read-out (lrmc; not lrmc_gpt), not task 'mws'"),
    (GPT_TINY, "attention_structure,copying_test",
     "--analyze copying_test: defined for matrix-completion tasks with a value read-out (lrmc; not "
     "lrmc_gpt), not task 'lrmc_gpt'"),
    (LRMC_TINY, "repetition", "--analyze repetition: defined for tasks with answers to generate"),
    (LRMC_TINY, "ablation_sweep,attention_progress",
     "--analyze attention_progress: needs an optimal attention mask, and task 'lrmc' defines none "
     "(run seed=0); allowed for this task: attention_structure, ablation_sweep, copying_test, "
     "representation_collapse"),
])
def test_analyzers_that_cannot_run_on_the_sweep_s_task_are_refused_before_any_work(
        tmp_path, capsys, base, analyzers, expected):
    """It used to train every run, then fail the analysis (and skip the analyzers after the
    failing one)."""
    path = write_sweep(tmp_path, "[grid]\ntrain.seed = [0, 1]\n", base=base)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--analyze", analyzers]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_gpus_per_run_beyond_the_local_gpus_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """It used to start Ray and wait forever with every run pending."""
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")  # without the check the runs would wait forever

    monkeypatch.setattr("plateau_lens.sweep.engine.start_ray", no_ray)
    path = write_sweep(tmp_path, "[grid]\ntrain.seed = [0, 1]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--gpus-per-run", "1"]) == 2
    assert "--gpus-per-run 1: this machine has 0 GPU(s) for a local Ray" in capsys.readouterr().err
    assert not out.exists()


def test_missing_base_config_is_refused(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text('base = "../nope.toml"\n[grid]\ntrain.seed = [0]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "base config '../nope.toml' does not exist" in error and "relative to" in error
    assert not (tmp_path / "out").exists()


def test_changing_a_run_s_config_is_refused_naming_the_run(tmp_path, capsys):
    path = write_sweep(tmp_path, "[grid]\ntrain.seed = [0, 1]\n")
    out = tmp_path / "out"
    run_dir = out / "runs" / "seed=1"
    run_dir.mkdir(parents=True)
    before = load_config(tmp_path / "tiny.toml").replace(train={"seed": 1, "steps": 300})
    (run_dir / "config.json").write_text(before.to_json())  # as `train` writes it
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "run seed=1" in error and "train.steps: 300 in the run, 200 in the sweep file" in error
    assert sorted(p.name for p in out.rglob("*")) == ["config.json", "runs", "seed=1"]


def test_without_ray_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    path = write_sweep(tmp_path, "[grid]\ntrain.seed = [0]\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert 'pip install "plateau-lens[sweep]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------- a real sweep on a local Ray
FAILING = str(Path("missing") / "reference.pt")
SWEEP = f"""
[[zip]]
train.seed = [0, 1, 2, 3, 4]
init.checkpoint = ["", "", "", "", "{FAILING}"]
init.components = [[], [], [], [], ["embed"]]
"""


def start_driver(path: Path, out: Path, *extra: str) -> subprocess.Popen:
    """The sweep command in its own process group, as a terminal would run it."""
    return subprocess.Popen(  # -X faulthandler: a hung driver dumps its stacks on SIGABRT
        [sys.executable, "-X", "faulthandler", "-m", "plateau_lens.cli", "sweep", str(path),
         "--out", str(out),
         "--workers", "2", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def finish(driver: subprocess.Popen, seconds: float) -> str:
    """The driver's output once it exits; if it hangs, its Python stacks in the failure."""
    try:
        return driver.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        driver.send_signal(signal.SIGABRT)
        output = driver.communicate()[0]
        raise AssertionError(f"the sweep did not exit within {seconds} s:\n{output}") from None


def statuses(out: Path) -> dict[str, dict]:
    return {d.name: read_status(d) for d in sorted((out / "runs").glob("*")) if d.is_dir()}


def newest(run_dir: Path) -> int:
    return max(list_checkpoints(run_dir), default=-1)


def wait_for(condition, seconds: float, what: str, process=None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep exited ({process.returncode}) before {what}:\n"
                                 f"{process.stdout.read()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Running (a zombie that only waits to be reaped does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def open_sessions(out: Path) -> dict[str, list[int]]:
    return {name: [s["pid"] for s in status["sessions"] if s["end_step"] is None]
            for name, status in statuses(out).items()}


def test_interrupted_and_killed_sweep_resumes_and_trains_every_run_once(tmp_path):
    path = write_sweep(tmp_path, SWEEP)
    out = tmp_path / "out"
    good = [f"seed={s}__checkpoint=empty__components=none" for s in range(4)]
    failing = f"seed=4__checkpoint={FAILING.replace('/', '-')}__components=embed"

    # 1. Ctrl-C (SIGINT to the command's process group) once the first checkpoints are written
    driver = start_driver(path, out)
    wait_for(lambda: max(newest(out / "runs" / n) for n in good) >= 25, 240, "a checkpoint", driver)
    os.killpg(driver.pid, signal.SIGINT)
    output = finish(driver, 60)
    assert driver.returncode == 130, output
    assert "interrupted" in output and "re-run the same command" in output
    frame = pd.read_csv(out / "sweep.csv")
    assert set(frame["status"]) <= {"unfinished", "pending"} and "unfinished" in set(frame["status"])
    after_interrupt = {n: newest(out / "runs" / n) for n in good}

    # 2. kill -9 the driver once one run has finished and another is part-way (at most half
    # way: the orphaned workers take a moment to die and may train a few more steps)
    driver = start_driver(path, out)
    def one_done_one_partway():
        steps = [newest(out / "runs" / n) for n in good]
        return STEPS in steps and any(0 < s <= STEPS // 2 for s in steps)
    wait_for(one_done_one_partway, 240, "one finished and one part-way run", driver)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # the killed driver's workers stop training: their processes end and free the run locks
    pids = [pid for pids in open_sessions(out).values() for pid in pids]
    wait_for(lambda: not any(alive(pid) for pid in pids), 60, "the orphaned workers to exit")
    wait_for(lambda: not any(is_locked(out / "runs" / n) for n in good), 60, "the run locks")
    killed_at = {n: newest(out / "runs" / n) for n in good}
    finished_before = [n for n in good if killed_at[n] == STEPS]
    assert finished_before and any(0 < killed_at[n] < STEPS for n in good)
    sessions_before = {n: len(s["sessions"]) for n, s in statuses(out).items()}

    # 3. the same command again, now also analysing every checkpoint of every run
    driver = start_driver(path, out, "--analyze", "attention_progress")
    output = finish(driver, 400)
    assert driver.returncode == 1, output  # a run failed
    assert f"failed: {failing}: CheckpointError" in output

    # every run finished exactly once: no session after the one that reached the last step,
    # each resume started at the newest checkpoint the previous session left (nothing redone,
    # nothing lost), and finished runs were not touched again
    status = statuses(out)
    for name in good:
        sessions = status[name]["sessions"]
        assert status[name]["status"] == "finished"
        assert [s["end_step"] for s in sessions].count(STEPS) == 1
        assert sessions[-1]["end_step"] == STEPS
        starts = [s["start_step"] for s in sessions]
        assert starts == sorted(starts) and starts[0] == 0
        new = sessions[sessions_before[name]:]
        if name in finished_before:
            assert new == []
        else:
            assert [s["start_step"] for s in new] == [max(killed_at[name], 0)]
        if after_interrupt[name] > 0:  # resumed after Ctrl-C from where it stopped
            assert starts[1] == after_interrupt[name]
        run = load_run(out / "runs" / name)
        # logged once each, no gap: every log_every step, every checkpoint step, the last step
        train = run.config.train
        expected = sorted(set(range(0, STEPS + 1, train.log_every)) | set(train.checkpoint_steps()))
        assert list(run.metrics["step"]) == expected

    # the failing point: tried, retried once, recorded with its error; the others went on
    fail_sessions = status[failing]["sessions"]
    assert status[failing]["status"] == "failed"
    assert "CheckpointError" in status[failing]["error"] and "does not exist" in status[failing]["error"]
    assert [s["attempt"] for s in fail_sessions[-2:]] == [1, 2]
    log = (out / "runs" / failing / "sweep.log").read_text()
    assert "driver: train attempt 1 failed" in log and "driver: failed after 2 attempts" in log

    # sweep.csv: a row per run with its parameters, status and transition
    frame = pd.read_csv(out / "sweep.csv").set_index("run")
    assert sorted(frame.index) == sorted(good + [failing])
    assert list(frame.columns[:3]) == ["train.seed", "init.checkpoint", "init.components"]
    done = frame.loc[good]
    assert (done["status"] == "finished").all() and (done["step"] == STEPS).all()
    for column in ["plateau_start", "plateau_end", "drop_step", "final_loss", "final_accuracy",
                   "steps_per_s", "wall_time_s"]:
        assert done[column].notna().all(), column
    assert (done["plateau_start"] < done["plateau_end"]).all()
    assert (done["plateau_end"] <= done["drop_step"]).all() and (done["drop_step"] < STEPS).all()
    assert (done["final_accuracy"] > 0.9).all()
    assert frame.loc[failing, "status"] == "failed"
    assert "does not exist" in frame.loc[failing, "error"]
    for field in ["init.checkpoint", "init.components"]:
        for kind in ["plateau_length_vs", "loss_curves_by"]:
            assert (out / "figures" / f"{kind}_{field}.png").stat().st_size > 10_000

    # --summarize rebuilds the same table from the run directories alone
    written = pd.read_csv(out / "sweep.csv")
    (out / "sweep.csv").unlink()
    assert main(["sweep", "--summarize", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "sweep.csv"), written)

    # one tidy analysis table: every checkpoint of every finished run
    analysis = pd.read_csv(out / "analysis.csv")
    assert set(analysis["analyzer"]) == {"attention_progress"}
    for name in good:
        steps = sorted(analysis.loc[analysis["run"] == name, "step"].unique())
        assert steps == load_run(out / "runs" / name).steps
    assert analysis["train.seed"].notna().all()
    assert json.loads((out / "sweep.json").read_text())["fields"][0] == "train.seed"


def test_a_run_held_by_a_live_process_is_not_trained_a_second_time(tmp_path):
    """The lock a (killed sweep's) worker holds keeps a new worker out until it lets go."""
    from plateau_lens.sweep.rundir import RunBusyError, RunLock
    from plateau_lens.sweep.worker import train_point

    config = load_config(write_sweep(tmp_path, "") and tmp_path / "tiny.toml")
    run_dir = tmp_path / "run"
    with RunLock(run_dir):
        began = time.monotonic()
        with pytest.raises(RunBusyError, match=f"locked by pid {os.getpid()}"):
            train_point(str(run_dir), config.replace(train={"steps": 4}).to_dict(), threads=1,
                        lock_timeout=1.0)
        assert time.monotonic() - began >= 1.0
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "sweep_status.json").exists()
    train_point(str(run_dir), config.replace(train={"steps": 4}).to_dict(), threads=1)
    sessions = read_status(run_dir)["sessions"]
    assert [(s["start_step"], s["end_step"]) for s in sessions] == [(0, 4)]


def test_summary_of_a_run_that_has_only_its_step_0_checkpoint(tmp_path):
    """A run just started has only checkpoint 0 and its row: sweep.csv lists it as pending,
    with no transition and checkpoint 0's loss as its latest."""
    from plateau_lens import train
    from plateau_lens.sweep import summarize
    from plateau_lens.sweep.rundir import write_point

    config = load_config(write_sweep(tmp_path, "") and tmp_path / "tiny.toml")
    run_dir = tmp_path / "out" / "runs" / "seed=0"
    train(config, run_dir, progress=False, stop_at=0)
    write_point(run_dir, "seed=0", {"train.seed": 0})
    row = summarize(tmp_path / "out").iloc[0]
    assert (row["run"], row["train.seed"], row["status"], row["step"]) == ("seed=0", 0, "pending", 0)
    assert pd.isna(row["plateau_length"])
    assert row["final_loss"] == pd.read_csv(run_dir / "metrics.csv").set_index("step").loc[0, "loss"]


def test_a_failing_analyzer_does_not_stop_the_ones_after_it(tmp_path, monkeypatch):
    """analyze_point runs every analyzer: the failing one is logged with its traceback and
    named (with its error) in the error raised at the end; the retry runs only it."""
    from plateau_lens import train
    from plateau_lens.sweep import analyze
    from plateau_lens.sweep.worker import AnalysisError, analyze_point

    config = load_config(write_sweep(tmp_path, "") and tmp_path / "tiny.toml")
    run_dir = tmp_path / "runs" / "seed=0"
    train(config.replace(train={"steps": 10, "checkpoint_every": 5, "log_every": 5}), run_dir,
          progress=False)
    real = analyze.analyzer_function

    def broken(model, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(analyze, "analyzer_function",
                        lambda name: broken if name == "attention_progress" else real(name))
    with pytest.raises(AnalysisError, match=r"^attention_progress: RuntimeError: boom$"):
        analyze_point(str(run_dir), ["attention_progress", "repetition"], threads=1)
    table = pd.read_csv(run_dir / "analysis" / "repetition.csv")
    steps = load_run(run_dir).steps
    assert sorted(table["step"].unique()) == steps and len(steps) > 2
    assert not (run_dir / "analysis" / "attention_progress.csv").exists()
    log = (run_dir / "sweep.log").read_text()
    assert "analysis attention_progress failed: RuntimeError: boom" in log and "Traceback" in log

    monkeypatch.setattr(analyze, "analyzer_function", real)
    analyze_point(str(run_dir), ["attention_progress", "repetition"], threads=1)
    log = (run_dir / "sweep.log").read_text()
    assert log.count("analysis repetition:") == 1 and log.count("analysis attention_progress:") == 1


READY_SWEEPS = sorted((Path(__file__).resolve().parents[1] / "tasks" / "sweeps").glob("*.toml"))


@pytest.mark.parametrize("path", READY_SWEEPS, ids=lambda path: path.stem)
def test_ready_sweep_files_validate_and_name_distinct_runs(path):
    """Each shipped sweep file passes the checks a `plateau-lens sweep` runs before any work
    (fields, values, base config) and gives every point its own run directory."""
    sweep = load_sweep(path)
    names = [point.name for point in sweep.points]
    assert len(names) >= 2 and len(set(names)) == len(names)


def test_mws_configs_sweep_changes_one_thing_per_point():
    """tasks/sweeps/mws_configs.toml: the base MWS and four one-change variants (window 3,
    2 layers, 2 heads, d_model 128), each for both seeds."""
    sweep = load_sweep(Path(__file__).resolve().parents[1] / "tasks" / "sweeps" / "mws_configs.toml")
    base = load_config(Path(__file__).resolve().parents[1] / "tasks" / "mws.toml")
    changes = []
    for point in sweep.points:
        config = point.config
        changed = tuple(sorted(
            name for name, ours, theirs in (
                ("window", config.task["window"], base.task["window"]),
                ("n_layers", config.model.n_layers, base.model.n_layers),
                ("n_heads", config.model.n_heads, base.model.n_heads),
                ("d_model", config.model.d_model, base.model.d_model))
            if ours != theirs))
        changes.append((changed, config.train.seed))
    assert sorted(changes) == sorted((changed, seed) for seed in (0, 1) for changed in
                                     [(), ("window",), ("n_layers",), ("n_heads",), ("d_model",)])


def test_plateau_length_figure_names_a_group_that_never_dropped():
    """A group whose runs all finished without a detected drop is drawn as triangles only;
    the legend must still name it (it had no entry: tasks/sweeps/mws_configs.toml's window 3)."""
    import matplotlib.pyplot as plt

    from plateau_lens.sweep.figures import plateau_length_figure

    frame = pd.DataFrame({
        "model.n_layers": [1, 1, 2, 1],
        "task.window": [2, 2, 2, 3],
        "plateau_length": [170.0, 200.0, 150.0, float("nan")],
        "status": ["finished"] * 4,
        "steps": [400] * 4,
    })
    figure = plateau_length_figure(frame, "model.n_layers", ["task.window"])
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    plt.close(figure)
    assert sorted(labels) == ["window=2", "window=3 (no drop)"]
