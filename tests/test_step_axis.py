"""The metrics.csv step axis: row s is measured on checkpoint s's weights, and every
checkpoint (the final one and a ``stop_at`` step that is a checkpoint step included) has a
row. Each row is re-computed here from the checkpoint file alone (weights loaded into a
freshly built network, the logged batches redrawn from the seed), not through the trainer."""

import pandas as pd
import pytest
import torch

from plateau_lens import train
from plateau_lens.models.build import build_network
from plateau_lens.tasks.base import step_generator
from plateau_lens.runs.checkpoint import load_checkpoint
from plateau_lens.runs.layout import checkpoint_path, list_checkpoints
from plateau_lens.training.trainer import EVAL_SEED_OFFSET


@pytest.fixture(scope="module")
def mws_run(tmp_path_factory):
    from plateau_lens import load_config

    config = load_config({
        "task": {"name": "mws", "n_inputs": 6},
        "model": {"n_layers": 1, "n_heads": 1, "d_model": 16},
        # 7 steps: the final step is neither a multiple of log_every nor of checkpoint_every
        "train": {"steps": 7, "batch_size": 8, "eval_batch_size": 16, "lr": 3e-2,
                  "log_every": 2, "checkpoint_every": 3},
    })
    return config, train(config, tmp_path_factory.mktemp("axis") / "run", progress=False)


def network_at(config, run_dir, step):
    """A network built from the config with checkpoint ``step``'s weights (no Run, no trainer)."""
    network = build_network(config.make_task(), config.model, config.train.seed)
    network.load_state_dict(load_checkpoint(checkpoint_path(run_dir, step))["model"])
    return network.eval()


def plain_metrics(config, network, step):
    """Row ``step``'s numbers recomputed in plain torch: the training loss of batch ``step``
    (next-token cross-entropy of every position, the study's loss) and greedy generation accuracy on
    test batch ``step`` (a loop of argmax over the last position, no cache)."""
    task, train_config = config.make_task(), config.train
    batch = task.sample(train_config.batch_size, step_generator(train_config.seed, step))
    test = task.sample(train_config.eval_batch_size,
                       step_generator(train_config.seed + EVAL_SEED_OFFSET, step))
    with torch.no_grad():
        logits = network(batch.inputs)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 batch.targets.reshape(-1)).item()
        tokens = test.prompts
        for _ in range(task.answer_length):
            tokens = torch.cat([tokens, network(tokens)[:, -1].argmax(-1, keepdim=True)], dim=-1)
        accuracy = (tokens[:, task.prompt_length :] == test.answers).float().mean().item()
    return loss, accuracy


def test_every_checkpoint_has_the_row_measured_on_its_own_weights(mws_run):
    config, run_dir = mws_run
    metrics = pd.read_csv(run_dir / "metrics.csv").set_index("step")
    checkpoints = sorted(list_checkpoints(run_dir))
    assert checkpoints == [0, 1, 2, 3, 6, 7]
    # logged every 2 steps, plus every checkpoint step (the final one included)
    assert list(metrics.index) == [0, 1, 2, 3, 4, 6, 7]
    networks = {step: network_at(config, run_dir, step) for step in checkpoints}
    apart = []
    for index, step in enumerate(checkpoints):
        loss, accuracy = plain_metrics(config, networks[step], step)
        row = metrics.loc[step]
        assert row["loss"] == pytest.approx(loss, abs=1e-5), step
        assert row["accuracy"] == pytest.approx(accuracy, abs=1e-9), step
        if index + 1 < len(checkpoints):  # the next checkpoint's weights give other numbers
            later = networks[checkpoints[index + 1]]
            apart.append(abs(plain_metrics(config, later, step)[0] - loss))
    assert min(apart) > 1e-3  # so the comparison above tells checkpoint s from s + 1

def test_eval_columns_are_the_checkpoints_evaluation(mws_run):
    """The eval_ columns equal the task's own metrics of checkpoint s on test batch s, to the bit."""
    config, run_dir = mws_run
    task = config.make_task()
    metrics = pd.read_csv(run_dir / "metrics.csv").set_index("step")
    for step in sorted(list_checkpoints(run_dir)):
        test = task.sample(config.train.eval_batch_size,
                           step_generator(config.train.seed + EVAL_SEED_OFFSET, step))
        with torch.no_grad():
            values = task.metrics(network_at(config, run_dir, step)(test.inputs), test)
        for name, value in values.items():
            assert metrics.loc[step, f"eval_{name}"] == pytest.approx(value.item(), abs=1e-6), (step, name)


def test_a_stop_at_checkpoint_step_has_its_row_and_resume_adds_no_duplicate(tmp_path, mws_run):
    from plateau_lens import resume

    config, full = mws_run
    part = train(config, tmp_path / "part", progress=False, stop_at=6)
    rows = pd.read_csv(part / "metrics.csv")
    assert list(rows["step"])[-1] == 6 and max(list_checkpoints(part)) == 6
    resume(part, progress=False)
    assert (part / "metrics.csv").read_bytes() == (full / "metrics.csv").read_bytes()


def test_analyzers_over_checkpoints_join_the_metrics_rows(mws_run):
    """An analyzer run on run.model(s) and test batch s gives row s's logged value: collapse at
    pre_lm_h is the row's cosine_similarity, attention progress (mean over heads) the row's."""
    from plateau_lens import attention_progress, load_run, representation_collapse

    config, run_dir = mws_run
    run = load_run(run_dir)
    metrics = run.metrics.set_index("step")
    for step in run.steps:
        test = run.task.sample(config.train.eval_batch_size,
                               step_generator(config.train.seed + EVAL_SEED_OFFSET, step))
        model = run.model(step)
        collapse = representation_collapse(model, test, sites=["pre_lm_h"])["value"].item()
        progress = attention_progress(model, test)["value"].mean()
        assert metrics.loc[step, "cosine_similarity"] == pytest.approx(collapse, abs=1e-9), step
        assert metrics.loc[step, "attention_progress"] == pytest.approx(progress, abs=1e-9), step
