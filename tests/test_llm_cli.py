"""`plateau-lens llm` on a tiny local pretraining series (a 2-layer GPT-NeoX pretrained here
for 64 steps on pydoc text, saved at 0, 1, 2, 4, ..., 64), compared with the study's recipe
computed with plain ``transformers`` (fixtures_llm.study_recipe)."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from plateau_lens.cli import build_parser, main
from plateau_lens.llm import series as series_module
from plateau_lens.llm.cli import parse_steps, resolve_steps
from plateau_lens.llm.series import plot_series

from fixtures_llm import offline, one_thread, greedy_without_eos_mask, pretrain_tiny_series, save_model, study_recipe

transformers = pytest.importorskip("transformers")

QUESTIONS = ["What does the with statement do?", "How is an exception handled by a try clause?",
             "Which objects can be compared?", "Where are names of a module looked up?"]
OTHER_QUESTIONS = ["What is a generator?", "Why does a class have a method resolution order?"]
STEPS = [0, 1, 2, 4, 8, 16, 32, 64]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained") / "series"
    pretrain_tiny_series(root, last=64)
    return root


@pytest.fixture(scope="module")
def recipe(series):
    return {step: study_recipe(series / f"step{step}", QUESTIONS) for step in STEPS}


def prompt_file(tmp_path, prompts=QUESTIONS, name="prompts.txt"):
    path = tmp_path / name
    path.write_text("\n".join(prompts) + "\n")
    return str(path)


def run(*args):
    return main(["llm", *map(str, args)])


def test_pythia_like_schedule():
    from plateau_lens.llm import pythia_like_schedule

    assert pythia_like_schedule(3500) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512] + list(
        range(1000, 3501, 500))
    assert pythia_like_schedule(64) == [0, 1, 2, 4, 8, 16, 32, 64]
    assert pythia_like_schedule(3000, every=1000) == [0] + [2 ** k for k in range(10)] + [1000, 2000, 3000]


def test_pretraining_series_layout(series):
    assert sorted(int(p.name[4:]) for p in series.glob("step*")) == STEPS
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(series / "step0"))
    assert tokenizer.bos_token == tokenizer.eos_token == "<|endoftext|>"
    ids = tokenizer("What is a list?")["input_ids"]
    assert tokenizer.bos_token_id not in ids  # no BOS added on call, as Pythia's
    summary = json.loads((series / "pretrain.json").read_text())
    assert summary["training_loss"]["64"] < summary["training_loss"]["1"]


def test_llm_command_equals_the_study_recipe(series, recipe, tmp_path):
    out = tmp_path / "res"
    assert run("tiny", "--local-dir", series, "--prompts", prompt_file(tmp_path), "--out", out,
               "--quiet") == 0
    means = pd.read_csv(out / "tiny.csv")
    assert list(means["step"]) == STEPS  # default --steps: every step{N} folder
    per_prompt = pd.read_csv(out / "tiny_generations.csv")
    for step in STEPS:
        expected = recipe[step]
        row = means[means["step"] == step].iloc[0]
        assert row["repetition_frequency"] == pytest.approx(
            np.mean([r["repetition"] for r in expected]), abs=1e-6)
        assert row["cosine_similarity"] == pytest.approx(
            np.mean([r["cosine"] for r in expected]), abs=1e-6)
        rows = per_prompt[per_prompt["step"] == step].sort_values("prompt")
        assert [json.loads(i) for i in rows["prompt_ids"]] == [r["prompt_ids"] for r in expected]
        assert [json.loads(i) for i in rows["generated"]] == [r["generated"] for r in expected]
    # the study's masked EOS matters on this series: plain greedy would differ somewhere
    unmasked = {step: greedy_without_eos_mask(series / f"step{step}", QUESTIONS) for step in STEPS}
    assert any(unmasked[s] != [r["generated"] for r in recipe[s]] for s in STEPS)


def test_generations_are_saved_per_prompt_and_step(series, tmp_path):
    out = tmp_path / "res"
    assert run("tiny", "--local-dir", series, "--steps", "0,64", "--prompts",
               prompt_file(tmp_path), "--out", out, "--quiet") == 0
    table = pd.read_csv(out / "tiny_generations.csv")
    assert sorted(set(table["step"])) == [0, 64]
    assert len(table) == 2 * len(QUESTIONS)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(series / "step64"))
    for row in table.itertuples():
        assert row.prompt_text == QUESTIONS[row.prompt]
        assert row.generated_text == tokenizer.decode(json.loads(row.generated))


def test_steps_read_as_a_reader_means_them():
    assert parse_steps("1000,2000,...,4000") == [1000, 2000, 3000, 4000]
    assert parse_steps("0,500,...,3500") == list(range(0, 3501, 500))
    assert parse_steps("0,1,2,4,...,512") == [0] + [2 ** k for k in range(10)]
    assert parse_steps("0,1,2,4,...,512,1000,1500,...,2500") == (
        [0] + [2 ** k for k in range(10)] + [1000, 1500, 2000, 2500])
    assert parse_steps("all") == "all"
    for refused in ("1,2,5,...,100", "1000,2000,...,4500", "", "0,,4", "...,8", "4,...,8", "a,b"):
        with pytest.raises(ValueError):
            parse_steps(refused)


@pytest.mark.parametrize("args, flag", [
    (["--n-prompts", "0"], "--n-prompts"), (["--n-prompts", "-1"], "--n-prompts"),
    (["--steps", ""], "--steps"), (["--steps", "1,2,5,...,100"], "--steps"),
    (["--new-tokens", "1"], "--new-tokens"), (["--steps", "0,3"], "--steps"),
    (["--n-prompts", "100001"], "--n-prompts"), (["--new-tokens", "4097"], "--new-tokens")])
def test_bad_arguments_are_refused_before_any_work(series, tmp_path, capsys, args, flag):
    out = tmp_path / "res"
    try:
        code = run("tiny", "--local-dir", series, "--prompts", prompt_file(tmp_path), "--out",
                   out, *args)
    except SystemExit as exit:  # argparse's refusal
        code = exit.code
    assert code == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()  # nothing was computed or written


def test_steps_all_and_default_mean_every_folder_present(series):
    assert resolve_steps(None, "tiny", str(series)) == STEPS
    assert resolve_steps("all", "tiny", str(series)) == STEPS
    assert resolve_steps([0, 64], "tiny", str(series)) == [0, 64]
    with pytest.raises(ValueError, match="--steps.*present"):
        resolve_steps([0, 3], "tiny", str(series))


def test_a_single_save_pretrained_folder_is_a_local_dir(series, recipe, tmp_path):
    out = tmp_path / "res"
    assert run("tiny", "--local-dir", series / "step64", "--prompts", prompt_file(tmp_path),
               "--out", out, "--quiet") == 0
    means = pd.read_csv(out / "tiny.csv")
    assert list(means["step"]) == [64]
    assert means["cosine_similarity"].item() == pytest.approx(
        np.mean([r["cosine"] for r in recipe[64]]), abs=1e-6)
    unnamed = tmp_path / "final-model"
    shutil.copytree(series / "step64", unnamed)
    with pytest.raises(ValueError, match="--steps N"):
        resolve_steps(None, "tiny", str(unnamed))
    assert resolve_steps([7], "tiny", str(unnamed)) == [7]


def test_no_stale_numbers_when_prompts_tokens_or_checkpoint_change(series, tmp_path, monkeypatch):
    calls = []
    original = series_module.generation_metrics

    def counting(model, prompts, n_new=8, **kwargs):
        calls.append((len(prompts), n_new))
        return original(model, prompts, n_new, **kwargs)

    monkeypatch.setattr(series_module, "generation_metrics", counting)
    local = tmp_path / "series"
    for step in (0, 64):
        shutil.copytree(series / f"step{step}", local / f"step{step}")
    out = tmp_path / "res"
    first, other = prompt_file(tmp_path), prompt_file(tmp_path, OTHER_QUESTIONS, "other.txt")

    def means(*args):
        assert run("tiny", "--local-dir", local, "--out", out, "--quiet", *args) == 0
        return pd.read_csv(out / "tiny.csv")

    means("--prompts", first)
    assert calls == [(4, 8), (4, 8)]
    table = means("--prompts", other)  # other prompts: recomputed, not the cached values
    assert calls[2:] == [(2, 8), (2, 8)]
    step64 = table[(table["step"] == 64) & (table["n_prompts"] == 2)]
    assert step64["cosine_similarity"].item() == pytest.approx(
        np.mean([r["cosine"] for r in study_recipe(local / "step64", OTHER_QUESTIONS)]), abs=1e-6)
    table = means("--prompts", first, "--new-tokens", "4")  # other n_new: recomputed
    assert calls[4:] == [(4, 4), (4, 4)]
    step64 = table[(table["step"] == 64) & (table["n_new"] == 4)]
    assert step64["repetition_frequency"].item() == pytest.approx(
        np.mean([r["repetition"] for r in study_recipe(local / "step64", QUESTIONS, 4)]), abs=1e-6)
    means("--prompts", first)  # same settings and files: read back
    assert len(calls) == 6
    shutil.rmtree(local / "step64")  # the checkpoint is replaced: recomputed
    save_model(local / "step64", "neox", seed=5)
    means("--prompts", first)
    assert calls[6:] == [(4, 8)]


def test_result_files_get_ordinary_permissions(series, tmp_path):
    out = tmp_path / "res"
    previous = os.umask(0o027)
    try:
        assert run("tiny", "--local-dir", series, "--steps", "0", "--prompts",
                   prompt_file(tmp_path), "--out", out, "--quiet") == 0
    finally:
        os.umask(previous)
    for name in ("tiny.csv", "tiny_generations.csv", "tiny.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o640, name  # 0666 minus the umask


def test_error_part_way_keeps_finished_steps_and_draws_the_figure(series, tmp_path, capsys):
    local = tmp_path / "series"
    for step in (0, 1, 2):
        shutil.copytree(series / f"step{step}", local / f"step{step}")
    weights = local / "step2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    out = tmp_path / "res"
    assert run("tiny", "--local-dir", local, "--prompts", prompt_file(tmp_path), "--out", out,
               "--quiet") == 2
    assert "could not load" in capsys.readouterr().err
    assert list(pd.read_csv(out / "tiny.csv")["step"]) == [0, 1]
    assert (out / "tiny.png").stat().st_size > 0


def test_offline_message_names_the_cli_flag(tmp_path, capsys, monkeypatch):
    offline(monkeypatch)
    code = run("pythia-14m", "--steps", "0", "--prompts", prompt_file(tmp_path), "--out",
               tmp_path / "res", "--quiet")
    error = capsys.readouterr().err
    assert code == 2
    assert "--local-dir" in error and "local_dir=" not in error


def test_quiet_silences_progress_and_loading_bars(series, tmp_path, capfd, caplog):
    arguments = ["tiny", "--local-dir", series, "--steps", "0", "--prompts",
                 prompt_file(tmp_path)]

    def progress_lines():
        return [r for r in caplog.records if r.name == "plateau_lens" and "tiny step 0" in r.message]

    assert run(*arguments, "--out", tmp_path / "loud") == 0
    # transformers' weight-loading bars are off either way (one per checkpoint filled stderr)
    assert "Loading weights" not in capfd.readouterr().err and progress_lines()
    caplog.clear()
    assert run(*arguments, "--out", tmp_path / "quiet", "--quiet") == 0
    assert "Loading weights" not in capfd.readouterr().err and not progress_lines()


def test_figure_step_axis_spans_first_to_last_step():
    results = pd.DataFrame({"model": "m", "step": [0, 1, 2, 4, 3500],
                            "repetition_frequency": [0, 1, 0.5, 0.2, 0.0],
                            "cosine_similarity": [0.1, 0.9, 0.5, 0.3, 0.2]})
    figure = plot_series(results)
    for axis in figure.axes:
        assert axis.get_xscale() == "symlog"
        assert axis.get_xlim() == (0, 3500)


def test_help_documents_every_flag():
    parser = build_parser()
    llm = parser._subparsers._group_actions[0].choices["llm"]
    for action in llm._actions:
        if action.dest != "help":
            assert action.help, action.dest
    assert "0,1,2,4,...,512" in llm.format_help()
