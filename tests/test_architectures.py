"""Every public analyzer, called with its defaults on a tiny GPT-NeoX, OLMo, OLMo-2 and GPT-2
(random weights moved off their init, saved locally), works or refuses in one line saying
what to pass instead, as ``plateau_lens.analysis.applicability`` states; where it works, a
number is checked against plain ``transformers`` on that architecture."""

from pathlib import Path

import pytest
import torch

from fixtures_llm import one_thread, save_model  # noqa: F401  (one_thread: autouse fixture)

import plateau_lens.analysis as analysis
from plateau_lens.analysis.applicability import ARCHITECTURES, ON_PRETRAINED, markdown_table

transformers = pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[1]
KINDS = {"gpt_neox": "neox", "olmo": "olmo", "olmo2": "olmo2", "gpt2": "gpt2"}
CLEAN = ["what is the sun light heat water", "why do plant cells need water and food",
         "how does the earth grow heat light", "which animal is the food of the plant"]
OTHER = ["the moon is the light of the earth", "a plant cell is what the animal eats",
         "when does the water grow the food", "why is the heat of the sun energy"]


def perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Every weight off its init: norm gains 1 + N(0, 0.3²), biases N(0, 0.3²), matrices
    N(0, 1/fan_in) (embeddings N(0, 1))."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim == 1:
                parameter.copy_((1 if name.endswith("weight") else 0) + 0.3 * noise)
            elif "emb" in name or "wte" in name or "wpe" in name:
                parameter.copy_(noise)
            else:
                parameter.copy_(noise / parameter.shape[-1] ** 0.5)


@pytest.fixture(scope="module", params=list(KINDS))
def pretrained(request, tmp_path_factory):
    from plateau_lens.llm import load_checkpoint_model, prompt_batch

    directory = tmp_path_factory.mktemp(request.param)
    hf = save_model(directory, KINDS[request.param])
    perturb(hf)
    hf.save_pretrained(directory)
    model = load_checkpoint_model(local_dir=directory)
    batch, task = prompt_batch(model, CLEAN, length=6)
    other, _ = prompt_batch(model, OTHER, length=6)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(directory), attn_implementation="eager")
    return request.param, model, batch, other, task, hf.eval()


CALLS = {
    "ablate_heads": lambda m, b, o, t: analysis.ablate_heads(m, b, task=t),
    "ablation_sweep": lambda m, b, o, t: analysis.ablation_sweep(m, b, task=t, progress=False),
    "attention_patterns": lambda m, b, o, t: analysis.attention_patterns(m, b, task=t),
    "mean_attention_patterns": lambda m, b, o, t: analysis.mean_attention_patterns(m, b, task=t),
    "representation_collapse": lambda m, b, o, t: analysis.representation_collapse(m, b, task=t),
    "repetition": lambda m, b, o, t: analysis.repetition(m, b, task=t),
    "linear_probes": lambda m, b, o, t: analysis.linear_probes(m, b, o, task=t),
    "next_token_probe": lambda m, b, o, t: analysis.next_token_probe(m, b, o, task=t, max_iter=50),
    "patch_between_models": lambda m, b, o, t: analysis.patch_between_models(m, m, b, task=t,
                                                                             progress=False),
    "patch_activations": lambda m, b, o, t: analysis.patch_activations(m, b, task=t, progress=False),
    "attention_progress": lambda m, b, o, t: analysis.attention_progress(m, b, task=t),
    "swap_attention": lambda m, b, o, t: analysis.swap_attention(m, m, b, task=t),
    "attention_structure": lambda m, b, o, t: analysis.attention_structure(m, b, task=t),
    "copying_test": lambda m, b, o, t: analysis.copying_test(m, b, task=t),
    "compare_to_nuclear_norm": lambda m, b, o, t: analysis.compare_to_nuclear_norm(m, task=t),
    "ood_evaluation": lambda m, b, o, t: analysis.ood_evaluation(m, task=t),
    "permuted_positions": lambda m, b, o, t: analysis.permuted_positions(m, b, task=t),
    "token_embedding_norms": lambda m, b, o, t: analysis.token_embedding_norms(m, b, task=t),
    "token_embedding_pca": lambda m, b, o, t: analysis.token_embedding_pca(m, b, task=t),
    "positional_embedding_norms": lambda m, b, o, t: analysis.positional_embedding_norms(m, b, task=t),
    "positional_embedding_tsne": lambda m, b, o, t: analysis.positional_embedding_tsne(m, b, task=t),
    "positional_embedding_neighbours": lambda m, b, o, t: analysis.positional_embedding_neighbours(
        m, b, task=t),
}


def test_the_table_covers_every_public_model_analyzer():
    run_readers = {"analyze_run", "token_progress", "nuclear_norm_complete"}
    helpers = {"fit_least_squares", "probe_batches", "wide", "remaining_hooks", "uniform_pattern",
               "mask_rows", "study_row_mask", "nuclear_norm_batch", "nuclear_norm_lambda_sweep",
               "OODCondition", "default_conditions", "analysis_batch",
               "ANALYZERS", "register_analyzer", "resolve_analyzer"}  # the analyzer registry
    assert set(analysis.__all__) - run_readers - helpers == set(ON_PRETRAINED) == set(CALLS)


def test_the_docs_hold_the_current_table():
    assert markdown_table() in (REPO / "docs" / "architectures.md").read_text()


@pytest.mark.parametrize("name", list(ON_PRETRAINED))
def test_analyzer_works_or_refuses_in_one_line(pretrained, name):
    _, model, batch, other, task, _ = pretrained
    refusal, _ = ON_PRETRAINED[name]
    if refusal is None:
        result = CALLS[name](model, batch, other, task)
        assert len(result) > 0
        return
    with pytest.raises(ValueError) as error:
        CALLS[name](model, batch, other, task)
    message = str(error.value)
    assert refusal in message and "\n" not in message
    assert any(word in message for word in ("pass", "use", "instead", "defined for")), message


def test_patching_prompts_with_the_counterfactual_the_refusal_names(pretrained):
    _, model, batch, other, task, hf = pretrained
    frame = analysis.patch_activations(model, batch, corrupted_batch=other, task=task, progress=False)
    corrupted = frame[(frame["condition"] == "corrupted") & (frame["metric"] == "loss")]["value"].item()
    with torch.no_grad():  # the corrupted run's loss against the clean prompts' next tokens
        logits = hf(other.tokens).logits
        expected = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                                     batch.tokens[:, 1:].flatten()).item()
    assert corrupted == pytest.approx(expected, rel=1e-5)


def hf_attention_outputs(hf, kind: str, tokens) -> dict[int, torch.Tensor]:
    """Each layer's attention contribution to the residual stream, read from the HF modules:
    the attention module's output (OLMo-2: after its post-attention norm, which it adds)."""
    if kind == "gpt_neox":
        modules = [layer.attention for layer in hf.gpt_neox.layers]
    elif kind == "gpt2":
        modules = [block.attn for block in hf.transformer.h]
    elif kind == "olmo":
        modules = [layer.self_attn for layer in hf.model.layers]
    else:
        modules = [layer.post_attention_layernorm for layer in hf.model.layers]
    outputs, handles = {}, []
    for index, module in enumerate(modules):
        def keep(_, __, output, index=index):
            outputs[index] = output[0] if isinstance(output, tuple) else output
        handles.append(module.register_forward_hook(keep))
    try:
        with torch.no_grad():
            hf(tokens)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def mean_cosine(hidden: torch.Tensor) -> float:
    """Mean over samples and position pairs i < j of cos(h_i, h_j), written out."""
    n = hidden.shape[1]
    values = [torch.nn.functional.cosine_similarity(hidden[:, i].double(), hidden[:, j].double(), dim=-1)
              for i in range(n) for j in range(i + 1, n)]
    return torch.stack(values).mean().item()


def test_collapse_matches_transformers_hidden_states(pretrained):
    """pre_att_h of layer 1 is HF's hidden_states[1], pre_lm_h its last (after the final norm),
    post_att_res_h of layer 0 the embeddings plus layer 0's attention output (on GPT-NeoX's
    parallel residual no stream state holds it: the sum is the site's definition)."""
    kind, model, batch, _, task, hf = pretrained
    frame = analysis.representation_collapse(model, batch, task=task).set_index(["site", "layer"])
    with torch.no_grad():
        hidden = hf(batch.inputs, output_hidden_states=True).hidden_states
    attention = hf_attention_outputs(hf, kind, batch.inputs)
    value = lambda site, layer: frame.loc[(site, layer), "value"]  # noqa: E731
    assert value("pre_att_h", 1) == pytest.approx(mean_cosine(hidden[1]), abs=1e-5)
    assert frame[frame.index.get_level_values("site") == "pre_lm_h"]["value"].item() == \
        pytest.approx(mean_cosine(hidden[-1]), abs=1e-5)
    assert value("post_att_res_h", 0) == pytest.approx(mean_cosine(hidden[0] + attention[0]), abs=1e-5)
    assert abs(value("post_att_res_h", 0) - value("pre_att_h", 0)) > 1e-3  # attention moved it


def test_clean_loss_matches_transformers(pretrained):
    _, model, batch, _, task, hf = pretrained
    frame = analysis.ablate_heads(model, batch, task=task)
    clean = frame[(frame["condition"] == "clean") & (frame["metric"] == "loss")]["value"].item()
    with torch.no_grad():
        assert clean == pytest.approx(hf(batch.tokens, labels=batch.tokens).loss.item(), rel=1e-5)
