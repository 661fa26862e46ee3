"""Progress that fits its output (plateau_lens.progress): a bar on a terminal, a few whole
lines in a file."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from plateau_lens.progress import LineProgress, progress_bar

REPO = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_tqdm_and_a_file_gets_lines():
    bar = progress_bar(range(3), file=Terminal())
    assert isinstance(bar, tqdm) and not isinstance(bar, LineProgress)
    assert isinstance(progress_bar(range(3), file=io.StringIO()), LineProgress)


def test_lines_come_every_5_percent_and_at_the_end():
    out = io.StringIO()
    bar = progress_bar(total=2000, desc="work", file=out, mininterval=0)
    for i in range(2000):
        bar.update(1)
        if i % 7 == 0:
            bar.set_postfix(loss=f"{1 / (i + 1):.3g}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    percents = [int(re.match(r"work: +(\d+)% ", line).group(1)) for line in lines]
    assert percents == list(range(0, 101, 5)), percents  # one line per 5 %, none in between
    assert lines[-1].startswith("work: 100% 2000/2000") and "loss=" in lines[-1]


def test_lines_between_the_percent_marks_come_ever_more_rarely(monkeypatch):
    """Slow work: 1 % per simulated 100 s, a display call every 10 s. Lines come at each 5 %
    and, between marks, after max(interval, elapsed / 10) seconds without one."""
    import plateau_lens.progress as progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = progress_bar(total=1000, desc="slow", file=out, mininterval=0, miniters=1, interval=60)
    lines_at = []
    for tick in range(1, 1001):
        clock[0] = 10.0 * tick
        before = out.getvalue().count("\n")
        bar.update(1)
        if out.getvalue().count("\n") > before:
            lines_at.append(clock[0])
    bar.close()
    gaps = np.diff([0.0] + lines_at)
    marks = [t for t in lines_at if t % 500 == 0]
    assert marks == [500.0 * k for k in range(1, 21)]  # every 5 % (50 ticks of 10 s)
    between = [(g, t) for g, t in zip(gaps, lines_at) if t % 500]
    assert between[0] == (60, 60)  # the first sign of life after `interval`
    # then never sooner than max(interval, elapsed / 10) (less one 10 s tick) after the last line
    assert all(g >= max(60, 0.1 * t) - 10 for g, t in between), between
    assert len(lines_at) < 60, len(lines_at)


def test_transient_bars_write_nothing_to_a_file():
    out = io.StringIO()
    for _ in progress_bar(range(500), desc="inner", leave=False, file=out, mininterval=0):
        pass
    assert out.getvalue() == ""


def test_a_long_training_redirected_to_a_file_writes_few_progress_lines(tmp_path):
    """``plateau-lens train`` of 200 steps, stdout and stderr to a file: whole lines only
    (no tqdm redraws, which a plain tqdm writes every 0.1 s) and, in a run shorter than the
    60 s interval, at most one per 5 %: far fewer than 200 progress lines."""
    config = tmp_path / "tiny.toml"
    config.write_text('[task]\nname = "mws"\nn_inputs = 4\n[model]\nn_layers = 1\nn_heads = 1\n'
                      'd_model = 8\nd_mlp = 16\n[train]\nsteps = 200\nbatch_size = 4\n'
                      'eval_batch_size = 2\nlog_every = 50\ncheckpoint_every = 200\n'
                      'checkpoint_log_spaced = false\n')
    log = tmp_path / "train.log"
    with open(log, "w") as output:
        done = subprocess.run([sys.executable, "-m", "plateau_lens.cli", "train", str(config), "--out",
                               str(tmp_path / "run")], stdout=output, stderr=subprocess.STDOUT,
                              env=os.environ | {"PYTHONPATH": str(REPO)}, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text[-2000:]
    assert "\r" not in text
    records = [line for line in text.splitlines() if line.startswith("mws:")]
    assert 2 <= len(records) <= 100 // 5 + 1, records
    assert records[-1].startswith("mws: 100% 200/200"), records[-1]
