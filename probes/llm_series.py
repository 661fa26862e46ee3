"""Repetition frequency and representation collapse over a pretrained checkpoint series.

    python probes/llm_series.py pythia-160m --steps 0,1,2,4,...,512,1000 [--local-dir DIR]
                                [--prompts arc-easy|FILE] [--out results/]

Same as `plateau-lens llm`; resumable (finished steps are read back, not recomputed).
"""

import sys

from plateau_lens.cli import main

if __name__ == "__main__":
    sys.exit(main(["llm", *sys.argv[1:]]))
