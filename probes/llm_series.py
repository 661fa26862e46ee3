"""Repetition frequency and representation collapse over a pretrained checkpoint series.

    python probes/llm_series.py pythia-160m --steps 0,1,2,4,...,512,1000 [--local-dir DIR]
                                [--prompts arc-easy|FILE] [--new-tokens 8] [--out results/]

Same as `plateau-lens llm` (see `--help`): the study's tokenisation (no BOS) and exactly
--new-tokens greedy tokens; resumable (steps already computed with the same prompts, settings,
library versions and checkpoint files are read back, anything else is recomputed).
"""

import sys

from plateau_lens.cli import main

if __name__ == "__main__":
    sys.exit(main(["llm", *sys.argv[1:]]))
