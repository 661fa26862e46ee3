"""Tasks and analyzers from outside the package (issue 33): a plugin written into a temporary
directory outside the repository, on PYTHONPATH only (tests/plugin_fixture.py), is trained,
resumed, loaded, analysed and swept through the command line; its module being unimportable
is a clear refusal (exit 2) that leaves the run directory byte for byte as it was."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from plateau_lens import load_config, register_analyzer, register_task
from plateau_lens.cli import main
from plateau_lens.tasks import TASKS, CAPABILITIES, capabilities_of, make_task
from plateau_lens.tasks.protocol import PROMISED_MEMBERS, optional_member
from plateau_lens.tasks.registry import TaskImportError

from plugin_fixture import (ANALYZER, BROKEN_FIGURE_SOURCE, CLASS, ENTRY_POINT_NAME, FIGURE_ENTRY,
                            FIGURE_STUDY, MODULE, TASK_NAME, plugin_env, write_figure_plugin,
                            write_plugin)

REPO = Path(__file__).resolve().parents[1]
PATH_NAME = f"{MODULE}:{CLASS}"
CONFIG = f"""
[task]
name = "{PATH_NAME}"
n_inputs = 3
[model]
d_model = 32
n_layers = 1
n_heads = 2
[train]
steps = 4
batch_size = 32
eval_batch_size = 16
lr = 3e-3
log_every = 2
checkpoint_every = 2
"""


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = write_plugin(tmp_path_factory.mktemp("outside") / "plugin")
    assert REPO not in folder.parents
    return folder


@pytest.fixture
def plugin_on_path(plugin_dir, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(plugin_dir))
    return plugin_dir


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``plateau-lens ARGS`` in a fresh process (nothing of the plugin imported beforehand)."""
    return subprocess.run([sys.executable, "-m", "plateau_lens.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def tree_bytes(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------ the contract (in-process)
def test_shipped_tasks_declare_what_they_offer():
    """Each declared capability is backed by the members it promises, and a task that offers
    those members declares it (the declaration replaced attribute sniffing, so the two must
    agree on every shipped task and encoding)."""
    promised = {"matrix": ("m", "n", "rank"), "value_readout": ("predictions",),
                "answers": ("prompt_length", "answer_length", "answer_rows"),
                "collapse_pairs": ("collapse_pairs",),
                "attention_masks": ("attention_progress_masks",),
                "matrix_sequence": ("entry_of_position",)}
    assert {c: tuple(m) for c, m in PROMISED_MEMBERS.items() if c != "finite_data"} == promised
    for name in TASKS:
        for settings in ({}, {"encoding": "tokens"}) if name in ("lrmc", "lrmc_mixed") else ({},):
            task = make_task(name, **settings)
            declared = capabilities_of(task)
            assert declared <= set(CAPABILITIES), (name, declared)
            for capability, members in promised.items():
                offers = all(hasattr(task, m) for m in members)
                assert (capability in declared) == offers, (name, settings, capability)
            encoding = getattr(task, "encoding", None)
            assert ("real_inputs" in declared) == (encoding == "real"), (name, settings)
            assert ("mask_token" in declared) == (encoding == "tokens"), (name, settings)
            study_logs_entropy = name in ("prefix_sum", "addition")  # the loss-plateau study's scripts
            assert ("output_entropy" in declared) == study_logs_entropy, (name, settings)


def test_a_declared_capability_needs_its_members_and_optional_members_have_documented_defaults(
        plugin_on_path):
    """Registering a task that declares a capability without the members it promises is a
    TypeError naming both; an optional member the task lacks reads as its documented default."""
    import labtasks

    lacking = dataclasses.make_dataclass(
        "Lacking", [], bases=(labtasks.CumulativeSumMod,), frozen=True,
        namespace={"capabilities": frozenset({"answers", "collapse_pairs", "matrix_sequence"})})
    with pytest.raises(TypeError, match=r"declares capabilities without the members they promise: "
                                        r"'collapse_pairs' needs \['collapse_pairs'\]; "
                                        r"'matrix_sequence' needs \['entry_of_position'\]"):
        register_task("lacking")(lacking)
    task = labtasks.CumulativeSumMod()
    assert optional_member(task, "token_vocabulary") is None
    assert optional_member(task, "factor_distribution") == "uniform"
    assert optional_member(make_task("mws"), "token_vocabulary") == make_task("mws").d_vocab
    with pytest.raises(KeyError, match="'collapse_pairs' is not an optional task member"):
        optional_member(task, "collapse_pairs")


def test_register_task_from_python_then_a_config_builds_it(plugin_on_path):
    import labtasks

    config = load_config({"task": {"name": TASK_NAME, "n_inputs": 2, "modulus": 3}})
    assert config.task == {"name": TASK_NAME, "source": PATH_NAME, "n_inputs": 2, "modulus": 3}
    task = config.make_task()
    assert isinstance(task, labtasks.CumulativeSumMod) and (task.n_inputs, task.modulus) == (2, 3)
    batch = task.sample(5, torch.Generator().manual_seed(0))
    digits, answers = batch.tokens[:, :2], batch.answers  # the task's own data, by hand
    assert torch.equal(answers, torch.stack([digits[:, 0] % 3, (digits[:, 0] + digits[:, 1]) % 3], 1))
    with pytest.raises(ValueError, match=r"unknown \[task\] field\(s\) \['width'\] for task 'cumsum_mod'"):
        load_config({"task": {"name": TASK_NAME, "width": 3}})
    with pytest.raises(ValueError, match="task.modulus must be an integer >= 2, got 1"):
        load_config({"task": {"name": TASK_NAME, "modulus": 1}})


def test_bad_task_classes_and_names_are_refused_with_what_is_missing():
    @dataclasses.dataclass(frozen=True)
    class NoLoss:
        size: int = 2
        name = "no_loss"

    with pytest.raises(TypeError, match=r"lacks \[.*'loss'.*\] of the task contract"):
        register_task("no_loss")(NoLoss)
    with pytest.raises(TypeError, match="a task is a dataclass"):
        register_task("plain")(type("Plain", (), {}))
    shipped = TASKS["mws"]
    with pytest.raises(ValueError, match="'mws' is already registered"):
        register_task("mws")(dataclasses.make_dataclass("Other", [], bases=(shipped,), frozen=True))
    bad = dataclasses.make_dataclass("Bad", [], bases=(shipped,), frozen=True,
                                     namespace={"capabilities": frozenset({"flying"})})
    with pytest.raises(TypeError, match=r"unknown capabilities \['flying'\]; allowed: \['answers'"):
        register_task("bad_capability")(bad)
    with pytest.raises(ValueError, match="task.name must be one of .*'mws'.* or a 'module:ClassName' "
                                         "path, got 'nonesuch'"):
        load_config({"task": {"name": "nonesuch"}})
    with pytest.raises(ValueError, match="task.name: cannot import task module 'no_such_module_xyz'"):
        load_config({"task": {"name": "no_such_module_xyz:Task"}})


def test_entry_point_task_is_found_from_the_dist_info_beside_the_module(plugin_on_path):
    config = load_config({"task": {"name": ENTRY_POINT_NAME, "n_inputs": 2}})
    assert config.task["source"] == PATH_NAME
    assert type(config.make_task()).__name__ == CLASS


def test_analyze_run_refuses_an_analyzer_whose_needs_the_task_lacks(small_lrmc_config, tmp_path):
    """Before any checkpoint is read: the registered analyzer needs 'answers'; lrmc has none."""
    from plateau_lens import analyze_run, load_run, train

    calls = []

    @register_analyzer("needs_answers_probe", needs={"answers"}, replace=True)
    def needs_answers(model, batch):
        calls.append(1)
        return pd.DataFrame({"metric": ["x"], "value": [0.0]})

    run = load_run(train(small_lrmc_config.replace(train={"steps": 1}), tmp_path / "r", progress=False))
    with pytest.raises(ValueError, match="analyzer needs_answers_probe: defined for tasks with answers "
                                         "to generate .*not task 'lrmc'"):
        analyze_run(run, ["needs_answers_probe"], progress=False)
    assert not calls
    with pytest.raises(ValueError, match="needs \\['wings'\\] are not task capabilities"):
        register_analyzer("winged", needs={"wings"})


# ------------------------------------------------------------------ through the command line
@pytest.fixture(scope="module")
def cli_run(plugin_dir, tmp_path_factory) -> Path:
    """A plugin run trained to step 4 by the CLI in a process that sees the plugin only on
    PYTHONPATH; returns the folder holding ``run``."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "task.toml").write_text(CONFIG)
    done = cli(["train", "task.toml", "--out", "run", "--quiet"], plugin_env(plugin_dir, REPO), folder)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((folder / "run" / "config.json").read_text())["task"]
    assert recorded == {"name": PATH_NAME, "n_inputs": 3}
    return folder


@pytest.fixture
def plugin_not_imported(monkeypatch):
    """This process as a fresh one would be: the plugin module not imported (a run naming it
    must import it again)."""
    monkeypatch.delitem(sys.modules, MODULE, raising=False)


LOAD_CHECK = r"""
import json, sys
import torch
assert "labtasks" not in sys.modules
from plateau_lens import load_run
from plateau_lens.analysis import analysis_batch
run = load_run("run")
batch = analysis_batch(run, 64)
rows = {}
for step in run.steps:
    model = run.model(step)
    with torch.no_grad():
        logits = model.network(batch.inputs).double()
    answers = batch.answers
    part = logits[:, run.task.answer_rows().start:]
    correct = part.gather(-1, answers[..., None])[..., 0]
    other = part.clone()
    other.scatter_(-1, answers[..., None], float("-inf"))
    margin = (correct - other.max(-1).values).mean().item()
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()).item()
    rows[step] = [margin, loss]
print(json.dumps({"module": type(run.task).__module__, "steps": run.steps, "rows": rows}))
"""
"""In a fresh process that never imported the plugin: load_run imports it from the run's
config; per checkpoint, the answer margin and the loss from the native network's logits."""


def test_plugin_task_trains_resumes_loads_and_is_analysed_through_the_cli(
        plugin_dir, cli_run, plugin_not_imported, plugin_on_path, monkeypatch):
    monkeypatch.chdir(cli_run)
    assert main(["resume", "run", "--set", "train.steps=8", "--quiet"]) == 0
    assert MODULE in sys.modules  # the run's config imported it
    monkeypatch.delitem(sys.modules, MODULE)
    assert main(["analyze", "run", "--analyzers", f"{ANALYZER},ablate_heads", "--batch-size", "64",
                 "--quiet"]) == 0
    done = subprocess.run([sys.executable, "-c", LOAD_CHECK], env=plugin_env(plugin_dir, REPO),
                          cwd=cli_run, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["module"] == MODULE and loaded["steps"] == [0, 1, 2, 4, 6, 8]
    expected = {int(step): values for step, values in loaded["rows"].items()}

    margin = pd.read_csv(cli_run / "run" / "analysis" / f"{ANALYZER}.csv")
    assert list(margin["step"]) == loaded["steps"]
    for step, value in zip(margin["step"], margin["value"]):
        assert value == pytest.approx(expected[step][0], abs=1e-5), step
    assert margin["value"].nunique() == len(margin)  # each row read its own step's weights
    ablation = pd.read_csv(cli_run / "run" / "analysis" / "ablate_heads.csv")
    clean = ablation[(ablation["condition"] == "clean") & (ablation["metric"] == "loss")]
    assert list(clean["step"]) == loaded["steps"]
    for step, value in zip(clean["step"], clean["value"]):
        assert value == pytest.approx(expected[step][1], rel=1e-4), step
    ablated = ablation[(ablation["condition"] == "ablated") & (ablation["metric"] == "loss")]
    assert (ablated["value"].to_numpy() != clean["value"].to_numpy()).any()


def test_entry_point_task_through_the_cli_records_its_source(plugin_on_path, tmp_path, capsys):
    (tmp_path / "task.toml").write_text(CONFIG)
    assert main(["train", str(tmp_path / "task.toml"), "--dry-run", "--set",
                 f'task.name="{ENTRY_POINT_NAME}"']) == 0  # another task name: a fresh table
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["task"] == {"name": ENTRY_POINT_NAME, "source": PATH_NAME}


def test_unimportable_task_module_is_exit_2_naming_it_and_the_run_and_changes_nothing(
        cli_run, plugin_not_imported, monkeypatch, capsys):
    monkeypatch.chdir(cli_run)  # the plugin folder is not on sys.path here
    before = tree_bytes(cli_run / "run")
    for args in (["resume", "run", "--set", "train.steps=10"],
                 ["analyze", "run", "--analyzers", ANALYZER, "--out", "run/more"]):
        assert main(args) == 2, args
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert message.startswith("plateau-lens: error: run/config.json: "), message
        assert f"cannot import task module '{MODULE}'" in message and "ModuleNotFoundError" in message
        assert tree_bytes(cli_run / "run") == before


def test_plugin_task_and_analyzer_in_a_sweep_on_two_ray_workers(plugin_dir, tmp_path):
    """Ray's workers import the plugin from the recorded task path; the plugin's analyzer runs
    on them and lands in the sweep's analysis table."""
    pytest.importorskip("ray")
    env = plugin_env(plugin_dir, REPO)
    (tmp_path / "task.toml").write_text(CONFIG)
    (tmp_path / "sweep.toml").write_text('base = "task.toml"\n[grid]\ntrain.seed = [0, 1]\n')
    done = cli(["sweep", "sweep.toml", "--out", "out", "--workers", "2", "--threads", "1",
                "--analyze", ANALYZER, "--quiet"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    table = pd.read_csv(tmp_path / "out" / "analysis.csv")
    assert set(table["analyzer"]) == {ANALYZER}
    assert sorted(table["run"].unique()) == ["seed=0", "seed=1"]
    for run in ("seed=0", "seed=1"):
        rows = table[table["run"] == run]
        assert list(rows["step"]) == [0, 1, 2, 4]
        assert rows["value"].notna().all()
    first = table[table["step"] == 0].set_index("run")["value"]
    assert first["seed=0"] != first["seed=1"]  # each run's own weights


# ------------------------------------------------------------------ reproduce entries of a plugin
def test_plugin_reproduction_is_listed_and_runs_through_the_cli(
        plugin_on_path, registry_restored, tmp_path, monkeypatch, capsys):
    """A plugin's module named in the entry-point group ``plateau_lens.reproduce`` (a dist-info
    beside it, on sys.path only) registers an entry: ``reproduce --list`` shows it beside
    the shipped ones, with its study and what its author measured, and ``reproduce ID``
    runs it with the command line's --steps and --out."""
    monkeypatch.setattr(registry_restored, "_plugins_loaded", False)  # as in a fresh process
    monkeypatch.syspath_prepend(str(write_figure_plugin(tmp_path / "figures")))
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--list", "--markdown"]) == 0
    listed = capsys.readouterr().out
    assert "| `lp-fig2-mws` |" in listed  # the shipped entries are still there
    study_table = listed[listed.index(f"{FIGURE_STUDY}\n"):]
    assert study_table.splitlines()[4] == (
        f"| `{FIGURE_ENTRY}` | Fig. 1 | loss of cumsum_mod over training | cpu | reproduced: a test "
        f"(`plateau-lens reproduce {FIGURE_ENTRY} --out runs`, 2 s) |")

    assert main(["reproduce", FIGURE_ENTRY, "--out", "out", "--steps", "4", "--quiet"]) == 0
    assert f"table: out/{FIGURE_ENTRY}.csv" in capsys.readouterr().out
    assert (tmp_path / "out" / f"{FIGURE_ENTRY}.png").is_file()
    run_metrics = pd.read_csv(tmp_path / "out" / "runs" / "cumsum" / "metrics.csv")
    assert list(run_metrics["step"])[-1] == 4  # --steps reached the plugin's runner
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / f"{FIGURE_ENTRY}.csv"),
                                  run_metrics[["step", "loss"]])


@pytest.fixture
def registry_restored(monkeypatch):
    """The reproduction registry and studies as they were (entries a test adds are removed)."""
    import plateau_lens.reproduce as reproduce

    registry, studies = reproduce.REGISTRY, reproduce.STUDIES
    saved_registry, saved_studies = dict(registry), dict(studies)
    monkeypatch.setattr(reproduce, "_plugins_loaded", reproduce._plugins_loaded)
    yield reproduce
    registry.clear(), registry.update(saved_registry)
    studies.clear(), studies.update(saved_studies)


def test_register_reproduction_refuses_bad_entries_naming_the_field(registry_restored):
    from plateau_lens import register_reproduction, register_study

    def runner(context):
        return {}

    with pytest.raises(ValueError, match=r"study must be one of \['loss-plateau', 'matrix-completion'\], got 'mine'"):
        register_reproduction("mine-1", study="mine", figure="Fig. 1", shows="x")(runner)
    register_study("mine", "Me (2026)")
    with pytest.raises(ValueError, match=r"device must be one of \['cpu', 'gpu'\], got 'tpu'"):
        register_reproduction("mine-1", study="mine", figure="Fig. 1", shows="x", device="tpu")(runner)
    with pytest.raises(ValueError, match="reproduction id must be letters, digits"):
        register_reproduction("mine 1", study="mine", figure="Fig. 1", shows="x")
    with pytest.raises(ValueError, match="study 'mine' is already registered as 'Me \\(2026\\)'"):
        register_study("mine", "Someone else")
    with pytest.raises(ValueError, match="reproduction id 'lp-fig2-mws' is registered twice"):
        register_reproduction("lp-fig2-mws", study="mine", figure="Fig. 1", shows="x")(runner)
    assert registry_restored.REGISTRY["lp-fig2-mws"].study == "loss-plateau"
    register_reproduction("mine-1", study="mine", figure="Fig. 1", shows="x")(runner)
    register_reproduction("mine-1", study="mine", figure="Fig. 1", shows="x")(runner)  # reloaded
    assert registry_restored.get("mine-1").run is runner
    assert registry_restored.get("mine-1").measured.status == "not run here"


def test_unimportable_reproduce_plugin_is_exit_2_naming_the_entry_point(
        registry_restored, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry_restored, "_plugins_loaded", False)
    monkeypatch.syspath_prepend(str(write_figure_plugin(tmp_path, BROKEN_FIGURE_SOURCE, "labbroken")))
    assert main(["reproduce", "--list"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message == ("plateau-lens: error: cannot import reproduction entries 'labbroken' from "
                       "entry point 'labbroken': RuntimeError: the lab server is down"), message


# ------------------------------------------------------------------ shipped configs as package data
def test_shipped_configs_are_package_data_that_cover_every_toml_of_tasks():
    """demo and reproduce read the configs from the package (plateau_lens/configs, a symlink to
    the top-level tasks/), and pyproject's package-data globs ship every TOML under tasks/:
    a plain `pip install .` then has them (test_a_built_wheel_holds_every_shipped_toml_as_a_file
    builds the wheel)."""
    import fnmatch
    import sys as _sys

    import plateau_lens
    from plateau_lens.config import SHIPPED_CONFIGS, shipped_config

    if _sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    assert SHIPPED_CONFIGS == Path(plateau_lens.__file__).parent / "configs"
    assert shipped_config("mws.toml").read_bytes() == (REPO / "tasks" / "mws.toml").read_bytes()
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["plateau_lens"]
    shipped = [p.relative_to(REPO / "tasks") for p in (REPO / "tasks").rglob("*.toml")]
    assert shipped
    unshipped = [str(p) for p in shipped
                 if not any(fnmatch.fnmatch(f"configs/{p.as_posix()}", g) and
                            g.count("/") == f"configs/{p.as_posix()}".count("/") for g in globs)]
    assert not unshipped, f"TOMLs under tasks/ that a wheel would leave out: {unshipped}"


def test_a_built_wheel_holds_every_shipped_toml_as_a_file(tmp_path):
    """What a plain `pip install .` installs: the wheel built from the package's files (the
    configs symlink copied as a symlink, as a checkout has it) holds every TOML of tasks/,
    byte for byte, under plateau_lens/configs/, and the console script."""
    import shutil
    import zipfile

    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "plateau_lens", source / "plateau_lens", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "tasks", source / "tasks", ignore=ignore)
    assert (source / "plateau_lens" / "configs").is_symlink()
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", str(source), "-w", str(tmp_path / "wheel")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheel").glob("plateau_lens-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        inside = {name: archive.read(name) for name in archive.namelist() if name.endswith(".toml")}
        scripts = next(archive.read(n).decode() for n in archive.namelist()
                       if n.endswith(".dist-info/entry_points.txt"))
    expected = {f"plateau_lens/configs/{p.relative_to(REPO / 'tasks').as_posix()}": p.read_bytes()
                for p in (REPO / "tasks").rglob("*.toml")}
    assert len(expected) > 40 and inside == expected
    assert "plateau-lens = plateau_lens.cli:main" in scripts
