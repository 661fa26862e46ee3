"""Grokking on modular addition as a plateau-lens plugin (outside the package).

Power et al. 2022 ("Grokking: generalization beyond overfitting on small algorithmic data
sets", arXiv 2201.02177) and Nanda et al. 2023 ("Progress measures for grokking via
mechanistic interpretability", arXiv 2301.05217): a one-layer transformer trained full-batch
on 30 % of the pairs (a, b) of a + b mod 113 fits them early and generalises much later.

* ``grokking.task.ModularAddition``: the task (a finite data set, plateau-lens' ``FiniteTask``);
* ``grokking.progress``: Nanda et al.'s progress measures (key frequencies of the embedding,
  restricted loss, excluded loss) over a run's checkpoints;
* ``python -m grokking.train``: train the README's run.
"""

from . import analyzers  # noqa: E402,F401  registers grokking_progress, grokking_fourier_embedding
