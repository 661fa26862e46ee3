"""Batch-averaged attention maps (layer × head) at chosen checkpoints, plus per-head
row/column/observed scores for LRMC runs.

    python probes/attention_maps.py runs/NAME --steps 0,4000,16000 [--mask-rows 0,3]
"""

from plateau_lens import attention_structure
from plateau_lens.analysis import analysis_batch, analyze_run, mask_rows, mean_attention_patterns
from plateau_lens.plots import attention_grid, save
from plateau_lens.script_utils import open_run, run_arguments
from plateau_lens.io import write_table


def main() -> None:
    parser = run_arguments(__doc__)
    parser.add_argument("--mask-rows", help="comma-separated rows of X to mask entirely")
    args = parser.parse_args()
    run, steps, out = open_run(args)
    batch = analysis_batch(run, args.batch_size)
    if args.mask_rows:
        batch = mask_rows(run.task, batch, [int(r) for r in args.mask_rows.split(",")])
    patterns = {step: mean_attention_patterns(run.model(step), batch) for step in steps}
    print("wrote", save(attention_grid(patterns), out / "attention_maps.png"))
    if hasattr(run.task, "m"):  # matrix tasks: same-row / same-column shares
        table = analyze_run(run, attention_structure, steps=steps, batch=batch)
        write_table(table, out / "attention_structure.csv")
        print("wrote", out / "attention_structure.csv")


if __name__ == "__main__":
    main()
