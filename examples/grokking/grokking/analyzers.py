"""Nanda et al. 2023's progress measures as plateau-lens analyzers (``analyze_run``,
``plateau-lens analyze --analyzers``, sweeps), registered when the package is imported (a
run of ``grokking.task:ModularAddition`` imports it on load).

An analyzer sees one checkpoint, so ``grokking_progress`` takes the key frequencies from that
checkpoint's own embedding (the ``N_KEY`` largest); ``grokking.progress.progress_over_run``
fixes them from the final checkpoint instead, as the paper does. Both ignore the analysis
``batch``: the measures are defined over all p² pairs / the training split.
"""

from __future__ import annotations

import pandas as pd

from plateau_lens import register_analyzer

from .progress import embedding_frequency_norms, key_frequencies, progress_measures

N_KEY = 5


@register_analyzer("grokking_fourier_embedding", needs={"finite_data"}, replace=True)
def fourier_embedding(model, batch) -> pd.DataFrame:
    """Energy of W_E (tokens 0…p−1) at each frequency k = 1…(p−1)/2 (tidy: one row per k)."""
    p = model.task.p
    norms = embedding_frequency_norms(model.network.tok_embed.weight.detach()[:p])
    return pd.DataFrame({"frequency": range(1, len(norms) + 1), "energy": norms.tolist()})


@register_analyzer("grokking_progress", needs={"finite_data"}, replace=True)
def progress(model, batch) -> pd.DataFrame:
    """Restricted loss, excluded loss, key energy fraction, sum of squared weights, train and
    test loss, with this checkpoint's ``N_KEY`` key frequencies (tidy: metric, value)."""
    p = model.task.p
    keys = key_frequencies(model.network.tok_embed.weight.detach()[:p], N_KEY)
    measures = progress_measures(model.network, model.task, keys)
    frame = pd.DataFrame({"metric": list(measures), "value": list(measures.values())})
    frame["key_frequencies"] = " ".join(map(str, keys))
    return frame
