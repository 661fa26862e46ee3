"""Batch-averaged attention maps (layer × head) at chosen checkpoints, plus per-head
row/column/observed scores for LRMC runs.

    python probes/attention_maps.py runs/NAME --steps 0,4000,16000 [--mask-rows 3,6 --keep 1,5]

``--mask-rows`` masks the given rows of X except one entry each, in the ``--keep`` columns,
and shows every other entry (the study's ``att_maps.py`` row option; ``--mask-rows study``
takes its rows 3, 6 / columns 1, 5 rule, ``--keep none`` masks the rows entirely).
"""

import sys

from plateau_lens import attention_structure
from plateau_lens.analysis import (analysis_batch, analyze_run, mask_rows, mean_attention_patterns,
                                   study_row_mask)
from plateau_lens.io import write_table
from plateau_lens.plots import attention_grid, save
from plateau_lens.script_utils import open_run, run_arguments, run_script


def integers(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value.strip()]


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--mask-rows", help="comma-separated rows of X to mask, or 'study'")
    parser.add_argument("--keep", help="the column left observed in each masked row "
                                       "(comma-separated, one per row), or 'none'")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    batch = analysis_batch(run, args.batch_size)
    if args.mask_rows:
        if args.mask_rows == "study":
            rows, keep = study_row_mask(run.task)
        else:
            if args.keep is None:
                parser.error("--mask-rows needs --keep (one column per row, or 'none')")
            rows = integers(args.mask_rows)
            keep = None if args.keep == "none" else integers(args.keep)
        batch = mask_rows(run.task, batch, rows, keep)
    patterns = {step: mean_attention_patterns(run.model(step), batch) for step in steps}
    print("wrote", save(attention_grid(patterns), out / "attention_maps.png"))
    if hasattr(run.task, "m"):  # matrix tasks: same-row / same-column shares
        table = analyze_run(run, attention_structure, steps=steps, batch=batch)
        write_table(table, out / "attention_structure.csv")
        print("wrote", out / "attention_structure.csv")


if __name__ == "__main__":
    sys.exit(run_script(main))
