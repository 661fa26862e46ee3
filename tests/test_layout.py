"""The run directory's layout has one home, ``plateau_lens.runs.layout``: no other module of
the package spells one of its file or folder names, and a trained run holds exactly the files
the layout names (checked against names written out by hand here, not the layout's own)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from plateau_lens import load_config, train
from plateau_lens.runs import layout

PACKAGE = Path(__file__).resolve().parents[1] / "plateau_lens"
LAYOUT_MODULE = PACKAGE / "runs" / "layout.py"

FILE_NAMES = {"config.json", "metrics.csv", "analysis.csv", "sweep.json", "sweep.csv",
              "sweep_point.json", "sweep_status.json", "sweep.log", ".sweep.lock", "pretrain.json",
              "prompts.txt", "report.html", "onsets.csv", "curves.csv", "timings.csv",
              "loss_curve.png", "attention_progress.csv", "attention_progress.png"}
"""Names that are a layout's files wherever they appear as a string."""
FOLDER_NAMES = {"checkpoints", "analysis", "figures", "runs", "tensorboard", "mlruns",
                "series_cache", "step_", "step"}
"""Names that are a layout's folders (or a step file's prefix) when a path is built from them:
``x / "checkpoints"``, ``x / f"step{n}"``, ``Path(x, "runs")``, ``x.glob("step_*")``."""


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or bare string statements."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            found.add(id(node.value))
    return found


def leading_text(node: ast.AST) -> str | None:
    """The text a path piece starts with: a string constant, or an f-string's first part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    return None


def path_pieces(tree: ast.AST):
    """Every expression used as a piece of a path: the right side of ``/``, the arguments of
    ``Path(...)`` after the first, of ``joinpath``/``glob``/``rglob``/``with_name``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            yield node.right
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "Path":
                yield from node.args[1:]
            elif name in ("joinpath", "glob", "rglob", "with_name"):
                yield from node.args


def layout_literals(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each place ``source`` spells a layout name itself."""
    tree = ast.parse(source)
    docstrings = docstring_nodes(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value in FILE_NAMES:
                hits.append((node.lineno, node.value))
    for piece in path_pieces(tree):
        text = leading_text(piece)
        if text is None:
            continue
        head = re.split(r"[/*{]", text, maxsplit=1)[0]
        if head in FOLDER_NAMES or (head.startswith("step") and re.fullmatch(r"step_?\d*", head)):
            hits.append((piece.lineno, text))
    return hits


def test_the_scanner_finds_each_kind_of_literal():
    """The scanner itself: each way of spelling a name is caught, a docstring is not."""
    source = '''
"""A docstring naming config.json is fine."""
a = run / "metrics.csv"
b = run / "checkpoints" / name
c = out / f"step{step}"
d = Path(out, "runs")
e = folder.glob("step_*.state")
f = {"metrics": "config.json"}
g = run / CONFIG_FILE
h = metrics["step"]
'''
    assert sorted(line for line, _ in layout_literals(source)) == [3, 4, 5, 6, 7, 8]


def test_no_module_spells_a_run_directory_name_outside_the_layout():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == LAYOUT_MODULE:
            continue
        for line, text in layout_literals(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert not offenders, ("spell these names through plateau_lens.runs.layout:\n"
                           + "\n".join(offenders))


def test_the_layout_module_defines_the_names_the_scanner_looks_for():
    """The scanner's lists are the layout's names (so a new name there is also guarded)."""
    names = {value for name, value in vars(layout).items()
             if name.isupper() and isinstance(value, str) and not name.endswith(("_SUFFIX", "_FORM"))}
    assert names | set(layout.REPORT_TABLES.values()) <= FILE_NAMES | FOLDER_NAMES


def test_a_trained_run_holds_the_files_the_layout_names(tmp_path, small_lrmc_config):
    config = load_config(small_lrmc_config).replace(train={"steps": 4, "checkpoint_every": 2,
                                                            "log_every": 1})
    run_dir = tmp_path / "run"
    train(config, run_dir, progress=False)
    on_disk = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}
    checkpoint_steps = sorted(int(p.name[len("step_"):-len(".safetensors")])
                              for p in (run_dir / "checkpoints").glob("step_*.safetensors"))
    assert {"config.json", "metrics.csv"} <= on_disk
    assert checkpoint_steps and layout.list_checkpoint_steps(run_dir) == checkpoint_steps
    for step in checkpoint_steps:
        assert layout.checkpoint_path(run_dir, step) == run_dir / "checkpoints" / f"step_{step:08d}.safetensors"
        assert layout.state_path(layout.checkpoint_path(run_dir, step)).is_file()
        assert layout.step_of_checkpoint(layout.checkpoint_path(run_dir, step)) == step
    assert layout.config_path(run_dir) == run_dir / "config.json"
    assert layout.metrics_path(run_dir) == run_dir / "metrics.csv"
    assert layout.analysis_path(run_dir, "repetition") == run_dir / "analysis" / "repetition.csv"
    assert layout.named_run_dir(tmp_path, "a") == tmp_path / "runs" / "a"
    assert layout.series_step_dir(tmp_path, 30) == tmp_path / "step30"
    assert layout.series_step_of(tmp_path / "step30") == 30 and layout.series_step_of(tmp_path) is None
