"""Progress that fits its output: a tqdm bar on a terminal; without one (a log file, CI,
``nohup``), one plain line at every 5 % of the work, and between them one when
``max(interval, elapsed / 10)`` seconds passed without a line (so slow work still shows
signs of life, while the number of such lines grows only with the logarithm of the run's
length: about 70 for a 10-hour run), so a redirected long command writes tens of lines, not
thousands.

Every long command (train, resume, sweep, reproduce, the analyzers) draws its progress with
``progress_bar``."""

from __future__ import annotations

import sys
import time
from typing import Iterable, TextIO

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

STEP_PERCENT = 5
"""A line each time the work crosses another multiple of this percentage."""
INTERVAL_S = 60.0
"""... or when this many seconds passed since the last line."""
LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class Discard:
    """A stream that drops what is written to it."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


DISCARD = Discard()


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


class LineProgress(plain_tqdm):
    """A tqdm that writes whole lines (``desc: 45% 180/400 [01:23<01:40, 2.16it/s, loss=2.85]``),
    one per ``STEP_PERCENT`` of the total or after ``max(interval, elapsed / 10)`` seconds
    without one, and a last one at the end; nothing for transient bars (``leave=False``: an outer bar reports the work)."""

    def __init__(self, *args, interval: float = INTERVAL_S, **kwargs):
        self.interval = interval
        self.last_line_at = None
        self.last_bucket = -1
        self.last_line = ""
        self.start_monotonic = time.monotonic()
        self.discard = DISCARD  # kept here: at interpreter exit module globals are gone
        kwargs.setdefault("mininterval", 0.5)
        super().__init__(*args, **kwargs)

    def _line(self) -> str:
        values = self.format_dict
        values["bar_format"] = LINE_FORMAT if values.get("total") else LINE_FORMAT_NO_TOTAL
        return self.format_meter(**values)

    def _write(self) -> None:
        line = self._line()
        if line != self.last_line:
            self.fp.write(line + "\n")
            self.fp.flush()
            self.last_line = line
        self.last_line_at = time.monotonic()

    def display(self, msg=None, pos=None) -> bool:
        if self.disable or not self.leave or msg is not None:  # msg: tqdm clearing or closing
            return True
        now = time.monotonic()
        bucket = int(100 * self.n / self.total) // STEP_PERCENT if self.total else -1
        wait = max(self.interval, 0.1 * (now - self.start_monotonic))
        due = self.last_line_at is None or now - self.last_line_at >= wait
        if bucket > self.last_bucket or due:
            self.last_bucket = max(bucket, self.last_bucket)
            self._write()
        return True

    def close(self) -> None:
        if not self.disable and self.leave and getattr(self, "last_line_at", None) is not None:
            line = self._line()
            if line != self.last_line:
                self.fp.write(line + "\n")
                self.fp.flush()
                self.last_line = line
        self.fp = self.discard  # tqdm's own close would write a clearing "\r"
        super().close()


def progress_bar(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 disable: bool = False, leave: bool = True, file: TextIO | None = None,
                 interval: float = INTERVAL_S, **kwargs) -> tqdm:
    """``tqdm(iterable, total=..., desc=...)`` on a terminal; ``LineProgress`` elsewhere
    (``file``: default stderr). Other keywords go to tqdm."""
    stream = file if file is not None else sys.stderr
    if disable or is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, disable=disable, leave=leave, file=stream, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    return LineProgress(iterable, total=total, desc=desc, leave=leave, file=stream, interval=interval,
                        **kwargs)
