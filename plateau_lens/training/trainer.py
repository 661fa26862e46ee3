"""Online trainer: fresh batch each step, checkpoints on a schedule, resumable, tidy metrics.

Batch ``t`` is a pure function of (seed, t) (see ``step_generator``), the model init is a
function of the seed, and every checkpoint holds weights, optimizer, scheduler and RNG
states and the metrics rows so far, so a resumed run reproduces an uninterrupted one (bit
for bit on CPU).

A run directory is locked (``RunLock``) while a trainer works in it; resuming refuses a
run whose config and checkpoints disagree and changes nothing on disk when it refuses; a
non-finite loss or weight stops training with ``TrainingDiverged`` before anything of
that step is written.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..config import RESUME_MUTABLE, SECTIONS, RunConfig, config_mismatch, load_config
from ..errors import InputError, PlateauLensError
from ..io import RunLock, read_table, remove_stale_temp_files, write_table, write_text
from ..config.limits import check_memory
from ..models.attention_bias import configured_attention_bias
from ..models.build import build_network, check_model_for_task, wrap_in_bridge
from ..models.handle import PlateauModel, set_attention_bias
from ..progress import progress_bar
from ..tasks.base import step_generator
from ..tracking import Tracking
from ..tasks.protocol import SPLITS, is_finite
from ..runs.layout import (
    CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, RUN_FILES, WEIGHTS_SUFFIX, checkpoint_path,
    list_checkpoints, state_sidecars,
)
from ..runs.load import metrics_text
from ..runs.checkpoint import (
    CheckpointError, CheckpointMismatch, LegacyCheckpointError, load_checkpoint, read_metadata,
    restore_rng_states, save_checkpoint,
)
from .evaluation import training_log_row
from .finite import split_metrics, training_batch
from .interventions import copy_components, freeze_components
from .optimizers import build_optimizer, build_schedule

log = logging.getLogger("plateau_lens")

EVAL_SEED_OFFSET = 10_000_019


class TrainingDiverged(PlateauLensError, RuntimeError):
    """The loss or the weights became non-finite; nothing of that step was written."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available")
    return torch.device(name)


def make_optimizer(network: torch.nn.Module, config: RunConfig, device: torch.device):
    """Optimizer and schedule (``plateau_lens.training.optimizers``)."""
    optimizer = build_optimizer(network, config.train, device)
    return optimizer, build_schedule(optimizer, config.train)


def is_run(run_dir: str | Path) -> bool:
    """A plateau-lens run: a ``config.json`` beside a run lock file or checkpoints."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG_FILE).is_file() and (
        (run_dir / RunLock.FILE).is_file() or bool(list_checkpoints(run_dir)))


def check_new_run_dir(run_dir: Path, probe_lock: bool = True) -> None:
    """``train`` may write into ``run_dir``: it is absent, or holds none of our files
    (``probe_lock``: name the PID of a trainer at work there; not while holding the lock)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"--out {run_dir} is a file, not a directory")
    if is_run(run_dir):
        if probe_lock and (run_dir / RunLock.FILE).is_file():  # a trainer at work there: say which
            RunLock(run_dir).acquire().release()
        raise FileExistsError(f"{run_dir} already holds a plateau-lens run; use "
                              f"`plateau-lens resume {run_dir}` to continue it, or another --out")
    clashes = [name for name in RUN_FILES if (run_dir / name).exists()]
    if clashes:
        raise FileExistsError(f"{run_dir} holds {', '.join(clashes)} but is not a plateau-lens run; "
                              f"refusing to overwrite them: choose another --out")


def tidy_run_dir(run_dir: Path) -> None:
    """Delete what killed writes left: temp files, and training-state sidecars whose weights
    file was never written. Only under the run lock (a live writer's temp files look the same)."""
    removed = remove_stale_temp_files(run_dir) + remove_stale_temp_files(run_dir / CHECKPOINT_DIR)
    for sidecar in state_sidecars(run_dir):
        if not sidecar.with_suffix(WEIGHTS_SUFFIX).exists():
            sidecar.unlink()
            removed.append(sidecar)
    if removed:
        log.info("removed %d leftover file(s) of interrupted writes: %s", len(removed),
                 ", ".join(p.name for p in removed))


@dataclass
class ResumePlan:
    """What resuming a run will do, worked out without writing anything."""

    config: RunConfig
    payload: dict | None
    rows: list[dict]
    config_changes: list[str]
    rebuild_metrics: str | None


def plan_resume(run_dir: Path, requested=None, allow_pickle: bool = False) -> ResumePlan:
    """Read and check everything resuming needs; raise (having written nothing) on a config
    that disagrees with the run, a run with no readable checkpoint, or metrics that cannot be
    rebuilt."""
    for name, kind in ((METRICS_FILE, "file"), (CHECKPOINT_DIR, "directory")):
        path = run_dir / name
        if path.exists() and not (path.is_file() if kind == "file" else path.is_dir()):
            raise InputError(f"{path} should be a {kind} but is not: move it away (resume rebuilds "
                             f"a lost {METRICS_FILE} from the checkpoints); nothing was changed")
    on_disk = load_config(run_dir / CONFIG_FILE)
    config = on_disk
    if requested is not None:
        requested = load_config(requested)
        differ = config_mismatch(on_disk.to_dict(), requested.to_dict(), SECTIONS, RESUME_MUTABLE)
        if differ:
            raise CheckpointMismatch(
                f"the config given for {run_dir} differs from the run's {CONFIG_FILE} (run != given): "
                f"{'; '.join(differ)}. Only {', '.join(sorted(RESUME_MUTABLE))} may change on resume; "
                f"nothing was changed")
        config = requested
    check_memory(config.make_task(), config.model, config.train, training=True)
    expected = config.to_dict()
    checkpoints = list_checkpoints(run_dir)
    check_history(run_dir, checkpoints, config)

    foreign = {}
    for step, path in checkpoints.items():
        if path.suffix != WEIGHTS_SUFFIX:
            continue
        try:
            stored = read_metadata(path)["config"]
        except (CheckpointError, OSError):
            continue  # unreadable: only matters if it is the newest (below)
        differ = config_mismatch(stored, expected, SECTIONS, RESUME_MUTABLE)
        if differ:
            foreign[step] = differ
    if foreign:
        first = min(foreign)
        raise CheckpointMismatch(
            f"{run_dir}: checkpoint(s) at step(s) {sorted(foreign)} are of another config than "
            f"{CONFIG_FILE} (checkpoint != {CONFIG_FILE}): {'; '.join(foreign[first])}. "
            f"Restore the {CONFIG_FILE} these checkpoints were trained with, or train into another "
            f"--out; nothing was changed")

    device = resolve_device(config.train.device)
    payload, skipped = None, []
    for step in sorted(checkpoints, reverse=True):
        try:
            candidate = load_checkpoint(checkpoints[step], map_location=device, allow_pickle=allow_pickle)
        except LegacyCheckpointError:
            raise
        except CheckpointError as error:
            skipped.append(step)
            log.warning("skipping unreadable checkpoint (falling back to an earlier one): %s", error)
            continue
        differ = config_mismatch(candidate["config"], expected, SECTIONS, RESUME_MUTABLE)
        if differ:  # a legacy checkpoint (its header was not read above)
            raise CheckpointMismatch(
                f"{run_dir}: checkpoint {checkpoints[step].name} is of another config than "
                f"{CONFIG_FILE} (checkpoint != {CONFIG_FILE}): {'; '.join(differ)}; nothing was changed")
        payload = candidate
        break
    if checkpoints and payload is None:
        raise CheckpointError(
            f"none of the {len(checkpoints)} checkpoints in {run_dir / CHECKPOINT_DIR} is readable "
            f"(see the warnings above); move them away to start again from step 0; nothing was changed")

    step = payload["step"] if payload else 0
    if config.train.steps < step:
        raise InputError(
            f"train.steps = {config.train.steps} is below step {step}, which {run_dir} has already "
            f"reached: resume trains to train.steps >= {step} only (the run's config.json would "
            f"otherwise disagree with its checkpoints); nothing was changed")
    rows = payload.get("metrics") if payload else []
    metrics_path = run_dir / METRICS_FILE
    rebuild = None
    if rows is None:  # a legacy checkpoint: its rows are only in metrics.csv
        rows = [] if step == 0 else _legacy_rows(metrics_path, step)
    elif rows:
        try:
            text = metrics_path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            text, rebuild = "", f"unreadable ({type(error).__name__})"
        if not text.startswith(metrics_text(rows)):
            rebuild = rebuild or "truncated or damaged"
    if rows and int(rows[-1]["step"]) < step:
        log.warning("%s: checkpoint %d carries no row of its own step: its rows were written on "
                    "the old step axis (row s measured on checkpoint s + 1's weights); rows from "
                    "step %d on are measured on checkpoint s (see docs/run-directory.md)",
                    run_dir, step, step)
    changes = config_mismatch(on_disk.to_dict(), expected, SECTIONS)
    return ResumePlan(config, payload, rows, changes, rebuild)


def logged_steps(path: Path) -> tuple[int, int] | None:
    """(rows, last step) of a metrics.csv with at least one row; None when it is absent or
    has no rows. Raises ``InputError`` when it holds text that is not a metrics table."""
    try:
        if not path.is_file() or not path.read_bytes().strip():
            return None
        frame = read_table(path)
        steps = pd.to_numeric(frame["step"], errors="coerce").dropna()
    except (OSError, ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise InputError(f"{path} is not a readable metrics table ({type(error).__name__}: {error})"
                         ) from None
    return (len(frame), int(steps.max())) if len(steps) else None


def check_history(run_dir: Path, checkpoints: dict[int, Path], config: RunConfig) -> None:
    """Refuse (``InputError``, nothing written) a resume that would silently drop history:
    ``metrics.csv`` records training but no checkpoint holds it (the checkpoints folder
    deleted, not synced, another mount), or it goes past a checkpoint that is missing."""
    newest = max(checkpoints) if checkpoints else None
    start_over = (f"restore the missing checkpoints into {run_dir / CHECKPOINT_DIR}, or start "
                  f"over on purpose: move {run_dir} away and `plateau-lens train` again (or "
                  f"train into another --out); nothing was changed")
    try:
        logged = logged_steps(run_dir / METRICS_FILE)
    except InputError as error:
        if newest is not None:
            return  # the checkpoints carry the rows: resume rebuilds it
        raise InputError(f"{error}, and {run_dir / CHECKPOINT_DIR} holds no checkpoint to tell "
                         f"where the run stands: {start_over}") from None
    if logged is None:
        return
    rows, last = logged
    if newest is None:
        raise InputError(
            f"{run_dir / METRICS_FILE} records training up to step {last} ({rows} rows) but "
            f"{run_dir / CHECKPOINT_DIR} holds no checkpoint: resuming would restart from step 0 "
            f"and overwrite that history; {start_over}")
    following = config.train.next_checkpoint_step(newest)
    if following is not None and last > following:
        raise InputError(
            f"{run_dir / METRICS_FILE} records training up to step {last} but the newest checkpoint "
            f"in {run_dir / CHECKPOINT_DIR} is step {newest} (checkpoint step {following} and later "
            f"are missing): resuming would drop steps {newest + 1}-{last} of that history; {start_over}")


def _legacy_rows(path: Path, step: int) -> list[dict]:
    try:
        frame = read_table(path)
        rows = frame[frame["step"] < step].to_dict("records")
    except Exception as error:
        raise CheckpointError(
            f"{path} is unreadable ({type(error).__name__}: {error}) and this run's legacy checkpoints "
            f"carry no metrics to rebuild it from; nothing was changed") from None
    if [int(r["step"]) for r in rows] != sorted({int(r["step"]) for r in rows}) or not rows:
        raise CheckpointError(f"{path} lacks the rows before step {step} and this run's legacy "
                              f"checkpoints carry no metrics to rebuild it from; nothing was changed")
    return rows


class Trainer:
    """Train ``config`` into ``run_dir``; ``Trainer.resume(run_dir)`` continues a run.

    ``start``/``resume`` take the run directory's lock; the trainer holds it until ``close()``
    (or the end of a ``with`` block, or garbage collection)."""

    def __init__(self, config: RunConfig, run_dir: str | Path, network: torch.nn.Module | None = None,
                 *, init_weights: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.lock: RunLock | None = None
        self.task = config.make_task()
        self.device = resolve_device(config.train.device)
        self.network = network if network is not None else build_network(
            self.task, config.model, config.train.seed)
        self.apply_init(copy_weights=init_weights)
        self.network.to(self.device)
        self.optimizer, self.scheduler = make_optimizer(self.network, config, self.device)
        self.bias_applied = False
        self.step = 0
        self.saved_step: int | None = None
        """The step of the checkpoint this trainer last wrote or resumed from."""
        self.rows: list[dict] = []
        self.unchecked_finite: torch.Tensor | None = None
        self.check_every_step = self.device.type == "cpu"
        """Check the loss for nan/inf at every step (free on the CPU); else only at logged
        steps and before each checkpoint, sparing the GPU a sync per step."""
        self.forward = torch.compile(self.network) if config.train.compile else self.network
        self.model = PlateauModel(bridge=wrap_in_bridge(self.network), task=self.task,
                                  network=self.network, config=config.model)
        self.splits = ({split: self.task.dataset(split, self.device) for split in SPLITS}
                       if is_finite(self.task) else None)
        """A finite task's data set (``dataset(split)`` of each split), else None (online)."""
        self.eval_batch = self.splits["test"] if self.splits else self.test_batch(0)
        self.tracking = Tracking(config.train.trackers, self.run_dir, config.to_dict(),
                                 config.train.tracker_group)  # checks them; writes nothing

    def apply_init(self, copy_weights: bool = True) -> None:
        """Component-wise / optimal init: copy reference components (``copy_weights``: not
        when resuming, where the checkpoint has the weights), freeze what is asked."""
        init = self.config.init
        if init.components and copy_weights:
            reference = load_checkpoint(Path(init.checkpoint), training_state=False)
            mismatched = config_mismatch({"model": reference["config"]["model"]},
                                         {"model": self.config.model.to_dict()}, ("model",))
            if mismatched:
                raise CheckpointMismatch(
                    f"init.checkpoint {init.checkpoint} is of another model: {', '.join(mismatched)}")
            copy_components(self.network, reference["model"], init.components)
        if init.components and init.freeze:
            freeze_components(self.network, init.components)
        if init.freeze_at_init:
            freeze_components(self.network, init.freeze_at_init)

    def update_attention_bias(self) -> None:
        if self.bias_applied:
            return
        multiplier = configured_attention_bias(self.task, self.config.train, self.step)
        if multiplier is None:
            return
        set_attention_bias(self.network, multiplier)  # shared with the bridge
        self.bias_applied = True

    # ----------------------------------------------------------------- lock
    def hold_lock(self) -> None:
        """Take the run directory's lock unless this trainer holds it already."""
        if self.lock is None or not self.lock.held:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock = RunLock(self.run_dir).acquire()
            self.lock.record_owner()

    def close(self) -> None:
        """Release the run directory's lock (training again takes it again)."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ----------------------------------------------------------------- set-up / resume
    @classmethod
    def open(cls, config, run_dir: str | Path, *, allow_pickle: bool = False) -> "Trainer":
        """Resume the run in ``run_dir`` if there is one (its config must match ``config`` up
        to ``RESUME_MUTABLE`` fields such as ``train.steps``, which are adopted), else start
        it: the one place that decides between the two."""
        config = load_config(config)
        if is_run(run_dir):
            log.info("resuming the existing run in %s", run_dir)
            return cls.resume(run_dir, config, allow_pickle=allow_pickle)
        return cls.start(config, run_dir)

    @classmethod
    def start(cls, config, run_dir: str | Path, network=None) -> "Trainer":
        """A new run in ``run_dir`` (absent, or a directory without a run's files)."""
        config = load_config(config)
        run_dir = Path(run_dir)
        check_memory(config.make_task(), config.model, config.train, training=True)
        check_new_run_dir(run_dir)
        check_model_for_task(config.make_task(), config.model)
        trainer = cls(config, run_dir, network)  # loads any init checkpoint before touching disk
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
        try:
            check_new_run_dir(run_dir, probe_lock=False)  # again, now that no other trainer can start here
            lock.record_owner()
            write_text(run_dir / CONFIG_FILE, config.to_json())
        except BaseException:
            lock.release()
            raise
        trainer.lock = lock
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, config=None, *, allow_pickle: bool = False) -> "Trainer":
        """Continue a run from its newest checkpoint that verifies.

        ``config`` (optional): the config the caller means; it may differ from the run's only
        in ``RESUME_MUTABLE`` fields (e.g. more ``train.steps``), which are then adopted.
        Refused, with nothing on disk changed: a run whose checkpoints are of another config
        than its ``config.json``, a run with checkpoints none of which is readable, legacy
        pickle checkpoints without ``allow_pickle``, a run another trainer holds."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{run_dir} is not a plateau-lens run (no {CONFIG_FILE})")
        if not is_run(run_dir):
            raise FileNotFoundError(f"{run_dir} is not a plateau-lens run (a {CONFIG_FILE} but no "
                                    f"checkpoints and no {RunLock.FILE})")
        lock = RunLock(run_dir).acquire()
        try:
            plan = plan_resume(run_dir, config, allow_pickle)
            trainer = cls(plan.config, run_dir, init_weights=plan.payload is None)
            # everything checked: from here on the run directory changes
            lock.record_owner()
            tidy_run_dir(run_dir)
            if plan.config_changes:
                log.warning("%s: resuming with changed %s", run_dir, "; ".join(plan.config_changes))
                write_text(run_dir / CONFIG_FILE, plan.config.to_json())
            if plan.payload is not None:
                trainer.load_state(plan.payload)
            trainer.rows = plan.rows
            if plan.rebuild_metrics:
                log.warning("%s was %s: rebuilt from checkpoint step %d (%d rows)",
                            run_dir / METRICS_FILE, plan.rebuild_metrics, trainer.step, len(plan.rows))
                write_table(pd.DataFrame(plan.rows), run_dir / METRICS_FILE)
        except BaseException:
            lock.release()
            raise
        trainer.lock = lock
        return trainer

    def load_state(self, payload: dict) -> None:
        self.network.load_state_dict(payload["model"])
        if payload.get("optimizer") is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("scheduler") is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        restore_rng_states(payload["rng"])
        self.step = self.saved_step = int(payload["step"])

    # ----------------------------------------------------------------------- training
    def autocast(self):
        if self.config.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def last_checkpoint(self) -> str:
        steps = list_checkpoints(self.run_dir)
        return f"step {max(steps)} ({steps[max(steps)]})" if steps else "none"

    def diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged: {what} (lr {self.scheduler.get_last_lr()[0]:.6g}); stopped without "
            f"writing anything for this step; the last checkpoint is {self.last_checkpoint()}. "
            f"Lower train.lr or set train.grad_clip")

    def check_loss(self, loss: torch.Tensor) -> None:
        """Stop on a non-finite loss. On the CPU every step; elsewhere, to keep the GPU free
        of a sync per step, at logged steps and before each checkpoint (a flag kept on the
        device meanwhile)."""
        finite = torch.isfinite(loss.detach())
        if self.check_every_step or self.step % self.config.train.log_every == 0:
            if not bool(finite):
                raise self.diverged(f"the loss is {loss.item()} at step {self.step}")
        else:
            self.unchecked_finite = finite if self.unchecked_finite is None else self.unchecked_finite & finite

    def check_finite_state(self) -> None:
        """Before a checkpoint: every loss since the last check, and every weight, finite."""
        if self.unchecked_finite is not None:
            finite, self.unchecked_finite = bool(self.unchecked_finite), None
            if not finite:
                raise self.diverged(f"the loss became non-finite before step {self.step}")
        tensors = [t for t in self.network.state_dict().values() if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            bad = [name for name, t in self.network.state_dict().items()
                   if t.is_floating_point() and not bool(torch.isfinite(t).all())]
            raise self.diverged(f"weights {bad[:3]} are not finite after step {self.step}")

    def save(self) -> None:
        """Metrics first, then the checkpoint (training state, then weights): a checkpoint on
        disk implies its metrics are there too, and it carries them itself (to rebuild a lost
        metrics.csv). Refuses to write non-finite weights."""
        self.hold_lock()
        self.check_finite_state()
        write_table(pd.DataFrame(self.rows), self.run_dir / METRICS_FILE)
        save_checkpoint(
            checkpoint_path(self.run_dir, self.step), step=self.step,
            config=self.config.to_dict(), model=self.network.state_dict(),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            metrics=self.rows)
        self.saved_step = self.step

    def test_batch(self, step: int):
        """The test batch evaluated at ``step``: fresh (a pure function of seed and step, like
        the training batches) or, with ``eval_batch = "fixed"``, step 0's for every step."""
        train = self.config.train
        step = step if train.eval_batch == "fresh" else 0
        return self.task.sample(train.eval_batch_size,
                                step_generator(train.seed + EVAL_SEED_OFFSET, step, self.device),
                                self.device)

    def log_step(self, batch) -> dict:
        """The row of step ``self.step``, measured on checkpoint ``self.step``'s weights (before
        step ``self.step``'s update), in eval mode: ``loss`` (and the task's other metrics) on
        the training batch that update is computed from, the evaluation metrics on
        ``test_batch(self.step)`` (``training_log_row``); ``lr``: the learning rate that
        update uses. A finite task logs ``loss`` (that batch) and ``train_*``/``test_*``: its
        metrics over each whole split (``training.finite.split_metrics``). See
        docs/run-directory.md. ``batch``: that training batch (``next_batch()``)."""
        row = {"step": self.step, "lr": self.scheduler.get_last_lr()[0]}
        self.network.eval()
        with self.autocast(), torch.no_grad():
            if self.splits is not None:  # finite data: the step's batch, then both whole splits
                row["loss"] = self.task.loss(self.forward(batch.inputs), batch).item()
                row.update(split_metrics(self.task, self.splits, self.forward))
            else:
                row.update(training_log_row(self.model, batch, self.test_batch(self.step), self.forward))
        self.network.train()
        return row

    def log_and_save(self, end: int, batch) -> None:
        """At step ``self.step`` (before its update): its row if it is a logged step, a
        checkpoint step or the last step of this call (``end``), then its checkpoint if it is
        a checkpoint step. Each at most once (a resumed run has both of its start step)."""
        step = self.step
        wanted = step % self.config.train.log_every == 0 or self.config.train.is_checkpoint_step(step) or step == end
        if wanted and not (self.rows and int(self.rows[-1]["step"]) >= step):
            self.rows.append(self.log_step(batch))
            self.tracking.log_row(self.rows[-1])
        if self.config.train.is_checkpoint_step(step) and step != self.saved_step:
            self.save()

    def next_batch(self):
        """Batch ``self.step``: a pure function of (seed, step) for online and finite tasks."""
        train = self.config.train
        if self.splits is not None:
            return training_batch(self.splits["train"], train.batch_size, train.seed, self.step)
        return self.task.sample(train.batch_size, step_generator(train.seed, self.step, self.device),
                                self.device)

    def run(self, stop_at: int | None = None, progress: bool = True) -> Path:
        """Train until ``config.train.steps`` (or ``stop_at``); returns the run directory.
        Raises ``TrainingDiverged`` on a non-finite loss or weights (nothing of that step is
        written; the last checkpoint stays the resume point)."""
        self.hold_lock()
        train = self.config.train
        end = train.steps if stop_at is None else min(stop_at, train.steps)
        self.tracking.start()
        self.network.train()
        bar = progress_bar(total=end, initial=self.step, disable=not progress, desc=self.task.name,
                           dynamic_ncols=True)
        try:
            while True:
                self.update_attention_bias()
                batch = self.next_batch()  # once per step: the row's batch and the update's
                self.log_and_save(end, batch)
                if self.rows and self.rows[-1]["step"] == self.step:
                    bar.set_postfix(loss=f"{self.rows[-1]['loss']:.4g}")
                if self.step >= end:
                    break
                with self.autocast():
                    output = self.forward(batch.inputs)
                    loss = self.task.loss(output, batch)
                self.check_loss(loss)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.network.parameters(), train.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                bar.update(1)
        finally:
            bar.close()
            self.tracking.finish(pd.DataFrame(self.rows))
        return self.run_dir


def train(config, out: str | Path, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train a run from a config (TOML path, dict or ``RunConfig``) into ``out`` (absent, or
    a directory without a run's files)."""
    with Trainer.start(config, out) as trainer:
        return trainer.run(stop_at=stop_at, progress=progress)


def resume(run_dir: str | Path, progress: bool = True, stop_at: int | None = None, *,
           config=None, allow_pickle: bool = False) -> Path:
    """Continue a run from its newest checkpoint that verifies (see ``Trainer.resume``)."""
    with Trainer.resume(run_dir, config, allow_pickle=allow_pickle) as trainer:
        return trainer.run(stop_at=stop_at, progress=progress)


def train_or_resume(config, out: str | Path, progress: bool = True, stop_at: int | None = None, *,
                    allow_pickle: bool = False) -> Path:
    """Resume the run in ``out`` if there is one, else start it (``Trainer.open``), and train
    it to the end (or ``stop_at``)."""
    with Trainer.open(config, out, allow_pickle=allow_pickle) as trainer:
        return trainer.run(stop_at=stop_at, progress=progress)
