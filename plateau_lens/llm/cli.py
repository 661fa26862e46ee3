"""``plateau-lens llm``: repetition and representation collapse over a pretrained checkpoint
series, computed as in the loss-plateau study (arXiv 2506.13688): each prompt tokenised by the
checkpoint's own AutoTokenizer (no BOS for Pythia/OLMo), exactly N greedy new tokens (the EOS
masked, as min_new_tokens = max_new_tokens = N), last-layer hidden states of every step."""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
from pathlib import Path

log = logging.getLogger("plateau_lens")

STUDY_STEPS = "0,1,2,4,...,512,1000,2000,4000,8000,10000"
"""The Pythia steps of the study's ``pythia.py``."""

_ELLIPSIS = {"...", "…"}


def _progression(run: list[int], end: int, text: str) -> list[int]:
    """The terms after ``run[-1]`` up to ``end`` of the progression that ``run`` starts."""
    a, b = run[-2], run[-1]
    geometric = len(run) >= 3 and run[-3] > 0 and run[-2] * run[-2] == run[-3] * run[-1] \
        and run[-2] % run[-3] == 0 and run[-2] != run[-3]
    arithmetic = len(run) < 3 or run[-1] - run[-2] == run[-2] - run[-3]
    if geometric and not arithmetic:
        ratio = b // a
        terms, value = [], b * ratio
        while value <= end:
            terms.append(value)
            value *= ratio
        rule = "doubling" if ratio == 2 else f"times {ratio}"
    elif arithmetic:
        difference = b - a
        if difference <= 0:
            raise ValueError(f"{text!r}: the steps before '...' must increase ({a}, {b})")
        terms = list(range(b + difference, end + 1, difference))
        rule = f"every {difference}"
    else:
        raise ValueError(f"{text!r}: {', '.join(map(str, run[-3:]))} before '...' is neither "
                         f"evenly spaced (like 0,500,1000) nor a constant ratio (like 1,2,4)")
    if not terms or terms[-1] != end:
        raise ValueError(f"{text!r}: {end} is not on the progression {a}, {b}, ... ({rule}); "
                         f"end the range on one of its steps")
    return terms[:-1]


def parse_steps(text: str) -> list[int] | str:
    """Steps as a reader means them: a comma list where ``...`` continues the progression of
    the steps before it. Two steps before it give even spacing (``1000,2000,...,4000`` →
    1000, 2000, 3000, 4000; ``0,500,...,3500``); three or more are continued as they go: evenly
    spaced or at a constant ratio (``0,1,2,4,...,512`` → powers of two). A range must end on a
    step of its progression; anything else is refused. ``"all"`` is returned as is (every
    ``step{N}`` folder of a local series, or every published Pythia step)."""
    text = text.strip()
    if text.lower() == "all":
        return "all"
    parts = [p.strip() for p in text.split(",")]
    if not text or any(not p for p in parts):
        raise ValueError(f"{text!r} has an empty entry; give steps like 0,1,2,4,...,512,1000 "
                         f"or 'all'")
    steps: list[int] = []
    run: list[int] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        if part in _ELLIPSIS:
            if index + 1 >= len(parts) or parts[index + 1] in _ELLIPSIS:
                raise ValueError(f"{text!r}: '...' needs a last step after it")
            end = _integer(parts[index + 1], text)
            if len(run) < 2:
                raise ValueError(f"{text!r}: '...' needs two steps of its own before it (e.g. "
                                 f"0,500,...,3500; a range's last step does not count)")
            if end <= run[-1]:
                raise ValueError(f"{text!r}: the step after '...' ({end}) must be larger than "
                                 f"the one before it")
            steps += _progression(run, end, text)
            run = []  # the steps after a range start a progression of their own
            steps.append(end)
            index += 2
            continue
        value = _integer(part, text)
        steps.append(value)
        run.append(value)
        index += 1
    if any(s < 0 for s in steps):
        raise ValueError(f"{text!r}: steps must be >= 0")
    return sorted(set(steps))


def _integer(part: str, text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", part):
        raise ValueError(f"{text!r}: {part!r} is not a whole number (steps are integers, "
                         f"'...' or 'all')")
    return int(part)


# --------------------------------------------------------------------------- argument types
def _steps_argument(text: str):
    try:
        return parse_steps(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


MAX_N_PROMPTS = 100_000
"""--n-prompts at most: 1000 times the study's 100; each prompt's hidden states of every
generated step are kept per checkpoint."""
MAX_NEW_TOKENS = 4_096
"""--new-tokens at most: 512 times the study's 8, and beyond most checkpoints' context."""


def _at_least(minimum: int, what: str, maximum: int | None = None):
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}, got {text!r}")
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}, got {value}")
        return value
    return parse


def add_llm_parser(sub) -> None:
    p = sub.add_parser(
        "llm", help="repetition and representation collapse over LLM checkpoints",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Writes OUT/<model>.csv (means per step), OUT/<model>_generations.csv (each "
               "prompt's generated ids and text per step) and OUT/<model>.png. Steps already in "
               "OUT with the same prompts, --new-tokens, tokenisation, library versions and "
               "checkpoint files are read back, anything else is recomputed.")
    p.add_argument("model", help="Pythia hub name (pythia-160m, EleutherAI/pythia-1b), or with "
                   "--local-dir a label for the series (used in file names)")
    p.add_argument("--steps", type=_steps_argument, default=None, help=(
        "checkpoint steps: a comma list where '...' continues the steps before it "
        "(0,1,2,4,...,512 doubles; 0,500,...,3500 and 1000,2000,...,4000 count evenly; a range "
        "must end on its progression), or 'all'. Default: with --local-dir every step{N} "
        f"folder there (= 'all'), else the study's Pythia steps {STUDY_STEPS}"))
    p.add_argument("--prompts", default="arc-easy", help="'arc-easy' (the study's ARC-Easy test "
                   "questions, needs the datasets cache offline) or a text file, one prompt per line")
    p.add_argument("--n-prompts", type=_at_least(1, "--n-prompts", MAX_N_PROMPTS),
                   default=100, help=f"how many prompts (an integer in [1, {MAX_N_PROMPTS}]; default "
                   "100, the study's)")
    p.add_argument("--prompt-seed", type=int, default=0, help="seed of the ARC-Easy shuffle "
                   "(default 0; the study shuffled without a seed); recorded in the results")
    p.add_argument("--first-prompts", action="store_true", help="take the first --n-prompts "
                   "ARC-Easy questions in split order instead of a shuffle (as the study's olmo.py)")
    p.add_argument("--new-tokens", type=_at_least(2, "--new-tokens", MAX_NEW_TOKENS),
                   default=8, help=f"greedy tokens generated per prompt, exactly (an integer in "
                   f"[2, {MAX_NEW_TOKENS}]; default 8)")
    p.add_argument("--prepend-bos", action="store_true", help="put the BOS token in front of "
                   "each prompt (not the study's recipe: its AutoTokenizer adds none)")
    p.add_argument("--local-dir", help="offline series: a directory of step{N} sub-directories "
                   "written by save_pretrained, or one such checkpoint folder")
    p.add_argument("--out", default="results", help="output directory (default: results)")
    p.add_argument("--device", help="torch device, e.g. cuda (default: the model's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines and no transformers "
                   "loading bars; only the final table and errors")
    p.set_defaults(func=run_llm)


# --------------------------------------------------------------------------- running
def resolve_steps(steps, model: str, local_dir: str | None) -> list[int]:
    """The steps to analyse, checked against what exists, before any work."""
    from ..runs.layout import series_step_of
    from .checkpoints import PYTHIA_STEPS, is_single_checkpoint, local_steps

    if local_dir is None:
        if "pythia" not in model.lower():
            raise ValueError(f"without --local-dir, the model must be a Pythia hub name (its "
                             f"steps are revisions step{{N}}); got {model!r}")
        steps = list(PYTHIA_STEPS) if steps == "all" else (steps or parse_steps(STUDY_STEPS))
        unknown = [s for s in steps if s not in PYTHIA_STEPS]
        if unknown:
            raise ValueError(f"--steps: Pythia has no checkpoint at steps {unknown} (it has "
                             f"0, 1, 2, 4, ..., 512 and every 1000 to 143000)")
        return steps
    root = Path(local_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--local-dir {root} is not a directory")
    if is_single_checkpoint(root):
        label = series_step_of(root)
        if steps in (None, "all"):
            if label is None:
                raise ValueError(f"--local-dir {root} is one checkpoint (a save_pretrained folder) "
                                 f"not named step{{N}}; give the step to file it under with "
                                 f"--steps N")
            return [label]
        if len(steps) != 1 or (label is not None and steps != [label]):
            wanted = f"--steps {label}" if label is not None else "one step"
            raise ValueError(f"--local-dir {root} is one checkpoint; give {wanted}, not "
                             f"--steps {','.join(map(str, steps))}")
        return steps
    present = local_steps(root)
    if not present:
        raise FileNotFoundError(f"--local-dir {root} has no step{{N}} sub-directories and no "
                                f"config.json (expected save_pretrained output)")
    if steps in (None, "all"):
        return list(present)
    missing = [s for s in steps if s not in present]
    if missing:
        raise ValueError(f"--steps: no step{{N}} folder in --local-dir {root} for steps "
                         f"{missing}; present: {list(present)}")
    return steps


@contextlib.contextmanager
def _console(quiet: bool):
    """While the command runs: the ``plateau_lens`` logger at INFO (progress lines on stderr,
    through a handler of ours unless logging is configured already) or, with ``quiet``, at
    WARNING and without ``transformers`` / ``huggingface_hub`` progress bars. Everything is
    restored afterwards."""
    old_level = log.level
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    handler = None
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("plateau-lens: %(message)s"))
        log.addHandler(handler)
    restore = []
    if quiet:
        try:
            from transformers.utils import logging as hf_logging

            if hf_logging.is_progress_bar_enabled():
                hf_logging.disable_progress_bar()
                restore.append(hf_logging.enable_progress_bar)
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            restore.append(lambda: hf_logging.set_verbosity(verbosity))
        except ImportError:  # pragma: no cover
            pass
        try:
            from huggingface_hub.utils import (are_progress_bars_disabled, disable_progress_bars,
                                               enable_progress_bars)

            if not are_progress_bars_disabled():
                disable_progress_bars()
                restore.append(enable_progress_bars)
        except ImportError:  # pragma: no cover
            pass
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()
        if handler is not None:
            log.removeHandler(handler)
        log.setLevel(old_level)


def _save_figure(results, title: str, path) -> None:
    """Draw and save the series figure. matplotlib and seaborn (~50 MiB) are imported here,
    once the series is analysed and its bridge freed, so they do not add to the analysis's
    peak memory."""
    import gc

    gc.collect()
    from ..plots import save
    from .series import plot_series

    save(plot_series(results, title=title), path)


def run_llm(args) -> int:
    from .prompts import load_prompts
    from .series import analyze_series, read_results, series_file, series_settings

    steps = resolve_steps(args.steps, args.model, args.local_dir)
    out = Path(args.out)
    with _console(args.quiet):
        prompts = load_prompts(args.prompts, args.n_prompts,
                               seed=None if args.first_prompts else args.prompt_seed,
                               prompts_hint="--prompts FILE")
        figure_path = series_file(out, args.model).with_suffix(".png")
        try:
            results = analyze_series(args.model, steps, prompts, out, local_dir=args.local_dir,
                                     n_new=args.new_tokens, device=args.device,
                                     prepend_bos=args.prepend_bos, local_dir_hint="--local-dir ")
        except Exception:
            key = series_settings(prompts, args.new_tokens, args.prepend_bos, None,
                                  args.device)["settings_key"]
            done = read_results(out, args.model, key, steps)
            if len(done):
                _save_figure(done, args.model, figure_path)
                log.warning("stopped by an error; the %d finished steps are in %s, their figure "
                            "in %s", len(done), series_file(out, args.model), figure_path)
            raise
        _save_figure(results, args.model, figure_path)
    print(results[["step", "repetition_frequency", "cosine_similarity"]].to_string(index=False))
    print(f"results in {series_file(out, args.model)} (per prompt: "
          f"{series_file(out, args.model).with_name(series_file(out, args.model).stem + '_generations.csv')}); "
          f"figure {figure_path}")
    return 0
