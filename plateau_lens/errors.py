"""The errors plateau-lens raises on purpose, and how the command line reports them.

``PlateauLensError`` is the base of every refusal of ours; ``InputError`` (also a
``ValueError``, so ``except ValueError`` keeps working) is an argument, config field or file
content that cannot give a meaningful result, with a message naming the argument or field,
what it allows and what it got. The command line (``plateau-lens`` and the probe scripts,
``plateau_lens.script_utils.run_script``) turns these and every ``OSError`` into one line,
``plateau-lens: error: <what> (<path>)``, and an exit status (see docs/errors.md):

* :data:`EXIT_REFUSED` (2): bad input, refused before any work (or with nothing changed);
* :data:`EXIT_DIVERGED` (3): training diverged (a non-finite loss or weight);
* :data:`EXIT_ENVIRONMENT` (4): the operating system failed a read or write the input was
  fine for: disk full, read-only file system, permission denied, an I/O error;
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import math
from typing import Any, Iterable

EXIT_REFUSED = 2
EXIT_DIVERGED = 3
EXIT_ENVIRONMENT = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C

ENVIRONMENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
    errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ETXTBSY, errno.EBUSY, errno.ESTALE,
})
"""``OSError`` numbers that describe the machine (space, permissions, the device), not the
input: exit :data:`EXIT_ENVIRONMENT`. Every other ``OSError`` (no such file, a directory
where a file belongs, …) is a bad path given by the user: exit :data:`EXIT_REFUSED`."""

ENVIRONMENT_HINTS = {
    errno.ENOSPC: "free some space (or choose another --out) and run the same command again",
    errno.EDQUOT: "free some space within your quota and run the same command again",
    errno.EFBIG: "the file grew past the size this process may write (ulimit -f)",
    errno.EROFS: "the file system is mounted read-only: choose a writable directory",
    errno.EACCES: "check the permissions of this path, or choose another",
    errno.EPERM: "check the permissions (and attributes, lsattr) of this path, or choose another",
}


class PlateauLensError(Exception):
    """Base class of the errors plateau-lens raises on purpose (a refusal with a message
    that says what to fix); anything else escaping is a bug."""


class InputError(PlateauLensError, ValueError):
    """An argument, config field or file content that cannot give a meaningful result; the
    message names it, what it allows and what it got."""


def describe_os_error(error: OSError) -> str:
    """``<what> (<path>)`` for an ``OSError``: its description, the path(s) it names and,
    for a machine-side failure, what to do about it."""
    what = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    text = f"{what} ({' -> '.join(paths)})" if paths else what
    hint = ENVIRONMENT_HINTS.get(error.errno)
    return f"{text}: {hint}" if hint else text


def os_error_exit_code(error: OSError) -> int:
    return EXIT_ENVIRONMENT if error.errno in ENVIRONMENT_ERRNOS else EXIT_REFUSED


def check_positions(name: str, positions: Iterable[Any], width: int, minimum: int = 1) -> list[int]:
    """``positions`` as a list of distinct integer positions in [0, width); raises
    :class:`InputError` naming ``name`` (a repeated position would compare a hidden state with
    itself, an out-of-range one would index another axis)."""
    if isinstance(positions, (str, bytes)) or not hasattr(positions, "__iter__"):
        raise InputError(f"{name} must be a list of integer positions in [0, {width - 1}], "
                         f"got {positions!r} ({type(positions).__name__})")
    values = list(positions)
    bad = [p for p in values if isinstance(p, bool) or not _is_int(p) or not 0 <= int(p) < width]
    if bad:
        raise InputError(f"{name} must be integer positions in [0, {width - 1}], got {bad}")
    values = [int(p) for p in values]
    repeated = sorted({p for p in values if values.count(p) > 1})
    if repeated:
        raise InputError(f"{name} must be distinct positions, got {repeated} more than once "
                         f"in {values}")
    if len(values) < minimum:
        raise InputError(f"{name} must hold >= {minimum} distinct positions in [0, {width - 1}], "
                         f"got {values}")
    return values


def check_layers(name: str, layers: Any, n_layers: int) -> list[int]:
    """``layers`` (one index or a non-empty list of them) as a list of layer indices in
    [0, n_layers); :class:`InputError` naming ``name`` otherwise."""
    if _is_int(layers) and not isinstance(layers, bool):
        layers = [layers]
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise InputError(f"{name} must be in [0, {n_layers - 1}] (a layer index or a non-empty "
                         f"list of them), got {layers!r} ({type(layers).__name__})")
    values = list(layers)
    bad = [v for v in values if isinstance(v, bool) or not _is_int(v) or not 0 <= int(v) < n_layers]
    if bad or not values:
        raise InputError(f"{name} must be in [0, {n_layers - 1}] (a layer index or a non-empty "
                         f"list of them), got {values!r}")
    return [int(v) for v in values]


def check_names(name: str, values: Any, allowed: Iterable[str]) -> list[str]:
    """``values`` (one name or a non-empty list of names) as a list of names from
    ``allowed``; :class:`InputError` naming ``name`` otherwise."""
    allowed = list(allowed)
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values or any(v not in allowed for v in values):
        raise InputError(f"{name} must be a non-empty list of {allowed}, got {values!r}")
    return list(values)


def check_integer(name: str, value: Any, minimum: int, maximum: int) -> int:
    """``value`` as an int in [minimum, maximum]; :class:`InputError` naming ``name`` otherwise."""
    if isinstance(value, bool) or not _is_int(value) or not minimum <= int(value) <= maximum:
        raise InputError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def check_name_list(name: str, values: Any) -> list[str]:
    """``values`` (one string or a non-empty list of strings) as a list of strings;
    :class:`InputError` naming ``name`` otherwise (before any name is looked up)."""
    if isinstance(values, str):
        values = [values]
    if isinstance(values, (list, tuple)) and not values:
        raise InputError(f"{name} is empty: give at least one name")
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise InputError(f"{name} must be a name or a non-empty list of names, got {values!r}")
    return list(values)


def _is_int(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral)


def check_finite_weights(model, name: str = "model") -> None:
    """Raise :class:`InputError` when a floating-point parameter or buffer of ``model`` (a
    PlateauModel, bridge or module) holds nan or inf: every number measured on it would be
    an artefact (argmax of nan logits is token 0)."""
    import torch

    module = getattr(model, "network", None) or getattr(model, "bridge", model)
    if not isinstance(module, torch.nn.Module):
        return
    bad = [key for key, tensor in module.state_dict().items()
           if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise InputError(f"{name} has non-finite weights (nan or inf) in {bad[:3]}"
                         f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}: a diverged or "
                         f"damaged checkpoint gives no meaningful measurement; use an earlier one")


def check_finite_number(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise InputError(f"{name} is {value}: the model's output is not finite on this input")
    return value


def check_finite_output(output, what: str = "the model's output"):
    """Return ``output`` (a tensor) unchanged, or raise :class:`InputError` when it holds nan
    or inf although the weights are finite (an input or hook that overflows): a metric or an
    argmax read from it would be an artefact (argmax of nan logits is token 0)."""
    import torch

    finite = torch.isfinite(output)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(output).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise InputError(f"{what} is not finite on this input ({n_nan} nan, {n_inf} inf of "
                         f"{output.numel()} values) although the weights are: an input or a hook "
                         f"overflows; no metric is computed from it")
    return output
