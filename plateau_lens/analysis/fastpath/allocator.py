"""Keep freed CPU activation buffers in the process heap instead of returning them to the OS.

glibc serves every allocation above its mmap threshold (128 KiB, raised dynamically up to
32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, so a forward pass whose activations
are a few MiB each page-faults its buffers in anew on every call. Analysis loops (the same
shapes, checkpoint after checkpoint) spent a large part of their time there: measured on 2
cores, an ``ablation_sweep`` + probes + collapse loop at batch 256 had 0.6-0.7 s of system
time and ~330 000 page faults per checkpoint, and ran 30 % faster (batch 64: 11 %) once freed
buffers were reused (1-thread A/B; whole benchmark: ``benchmarks/analysis_throughput.py``).

The effect depends on the heap's state: measured (glibc 2.36) with the analysis stack imported
(``plateau_lens.analysis``: pandas, TransformerLens), a 64 MiB tensor allocated and freed ten
times cost no page faults once reused; in a process that had imported only torch it cost
16 384 each time even so (each buffer was placed anew, 64 MiB above the last).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
HEAP_THRESHOLD_BYTES = 1 << 30

_applied = False


def reuse_freed_memory(threshold_bytes: int = HEAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations below ``threshold_bytes`` from the heap and keep freed memory there
    (glibc ``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD), for the whole process.

    The cost: the process keeps its peak heap size (freed memory is reused, not given back).
    Returns True when applied (now or earlier), False where the C library is not glibc.
    An explicit opt-in: ``analyze_run`` does not call it (it changes the whole process); call
    it yourself before a loop of analyzers. In ``benchmarks/analysis_throughput.py``'s
    long-lived process (tasks/lrmc_cpu.toml, batch 256) it made no measurable difference
    (sweep 717 vs 755 ms per checkpoint, one run each on a shared machine).
    """
    global _applied
    if not 0 < threshold_bytes < 2 ** 31:  # mallopt takes a C int
        raise ValueError(f"threshold_bytes must be in [1, 2**31 - 1], got {threshold_bytes!r}")
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, threshold_bytes))
    return _applied
