"""The config package's place in the import graph (issue 33): validating a config imports
nothing of ``plateau_lens.tracking`` (the tracker names live in ``plateau_lens.config``), the
old modules are gone rather than left as shims, and ``tracking`` shares config's one registry."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_validating_a_config_with_trackers_imports_no_tracking_module():
    code = ("import sys\n"
            "from plateau_lens.config import TrainConfig, load_config\n"
            "load_config('tasks/mws.toml').replace(train={'trackers': ['tensorboard', 'wandb']})\n"
            "TrainConfig(trackers=['mlflow'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('plateau_lens.tracking')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("old", ["schema", "models/config", "limits", "config"])
def test_moved_modules_are_gone_not_shims(old):
    """(Checked on the files: an editable install elsewhere may still map the old names.)"""
    assert not (REPO / "plateau_lens" / f"{old}.py").exists()
    assert (REPO / "plateau_lens" / "config" / "__init__.py").is_file()


def test_tracking_registers_into_the_config_s_one_registry(monkeypatch):
    from plateau_lens import tracking
    from plateau_lens.config import ConfigError, TrainConfig
    from plateau_lens.config import trackers as names

    assert tracking.TRACKERS is names.TRACKERS
    with pytest.raises(ConfigError, match=r"train\.trackers: unknown tracker\(s\) \['mine'\]"):
        TrainConfig(trackers=["mine"])
    monkeypatch.setitem(names.TRACKERS, "placeholder", "x:y")  # restored after the test
    tracking.register_tracker("mine", "my_package.trackers:Mine")
    try:
        assert TrainConfig(trackers=["mine"]).trackers == ("mine",)
        assert names.TRACKERS["mine"] == "my_package.trackers:Mine"
    finally:
        del names.TRACKERS["mine"]
