"""Work split into chunks of samples, one Python thread per core.

Our models are small (d_model 128, 16 positions): one operation on a whole batch is split by
torch into short pieces with a barrier after each, and a core that another process holds
for a moment stalls the other at every barrier. Instead :func:`run_parallel` runs one Python
thread per intra-op thread, each computing whole chunks with a single intra-op thread: each
core keeps its chunk's activations in its own cache and never waits for the other (torch
releases the GIL inside every operation). Each sample is computed on its own (attention
mixes positions within a sample only), so the values do not depend on the chunking.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch

ROWS_PER_CHUNK = 2048
"""Rows (samples × positions, × stacked copies) in one chunk of work: the widest activation
of a chunk (the MLP's hidden layer at d_mlp 512) is 4 MiB, so it stays below glibc's mmap
threshold once that has grown (no fresh page faults per chunk), and Python's cost per chunk
(~15 module calls per block) is ~1 % of the chunk's matmuls at d_model 128."""


def sample_chunks(n_samples: int, rows_per_sample: int, rows: int | None = None) -> list[slice]:
    """Contiguous slices of ``n_samples`` with about ``rows`` rows each (default
    :data:`ROWS_PER_CHUNK`; at least one sample per slice)."""
    per_chunk = max(1, (ROWS_PER_CHUNK if rows is None else rows) // max(1, rows_per_sample))
    return [slice(start, min(start + per_chunk, n_samples)) for start in range(0, n_samples, per_chunk)]


def analysis_workers(device: torch.device) -> int:
    """How many threads :func:`run_parallel` uses: torch's intra-op thread count on the CPU
    (``torch.set_num_threads``), one on other devices."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


def run_parallel(tasks: Sequence[Callable[[], None]], workers: int,
                 done: Callable[[], object] | None = None) -> None:
    """Run ``tasks`` (independent, each writing its own results) on ``workers`` threads with
    one intra-op thread each, in the order of the list (put the largest first); the caller's
    grad mode applies in every thread, and the caller's intra-op thread count is restored.
    The first exception raised by a task is raised here once every thread has stopped.
    ``done``: called after each task (a progress bar's ``update``)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
            if done is not None:
                done()
        return
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for task in tasks:
        pending.put(task)
    errors: list[BaseException] = []
    grad_enabled = torch.is_grad_enabled()
    threads_before = torch.get_num_threads()

    def work() -> None:
        torch.set_num_threads(1)
        with torch.set_grad_enabled(grad_enabled):
            while not errors:
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    task()
                    if done is not None:
                        done()
                except BaseException as error:  # re-raised in the caller's thread
                    errors.append(error)

    started: list[threading.Thread] = []
    try:
        for i in range(min(workers, len(tasks))):
            thread = threading.Thread(target=work, name=f"plateau-lens-analysis-{i}", daemon=True)
            thread.start()
            started.append(thread)
    finally:
        for thread in started:
            thread.join()
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]


def parallel_map(function: Callable, items: Sequence, workers: int) -> list:
    """``[function(item) for item in items]`` on :func:`run_parallel`'s threads, in order."""
    results: list = [None] * len(items)

    def task(index: int) -> Callable[[], None]:
        def run() -> None:
            results[index] = function(items[index])
        return run

    run_parallel([task(index) for index in range(len(items))], workers)
    return results


@contextmanager
def one_intra_op_thread(device: torch.device) -> Iterator[None]:
    """Run the enclosed operations with a single intra-op thread on the CPU (restored after).

    For a whole pass through the hooked bridge, which is hundreds of small operations that
    cannot be split into chunks on threads (its hooks are shared by every caller): at our
    sizes each operation's fork and join across intra-op threads costs more than it gains
    (``representation_collapse`` at batch 256 on the 2-core machine, with another process
    at nice 19: 0.3 s on one thread, 1.6-2.4 s on two; the values are the same bit for bit)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
