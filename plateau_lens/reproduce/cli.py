"""``plateau-lens reproduce``: list the reproductions, or run one."""

from __future__ import annotations

from pathlib import Path


def add_reproduce_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a figure or table of the two studies (and of plugins' entries)",
                       description="Train what a figure needs (or reuse its runs in --out) and "
                                   "write the figure and its CSV. --list shows every entry.")
    p.add_argument("id", nargs="?", help="entry id (see --list)")
    p.add_argument("--list", action="store_true", help="print one row per entry and exit")
    p.add_argument("--markdown", action="store_true",
                   help="with --list: the reproduction tables (one per study) in Markdown, as docs/reproduction.md shows them")
    p.add_argument("--out", help="directory for runs, figure and CSV")
    p.add_argument("--steps", type=int, help="train this many steps instead of the entry's default")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int,
                   help="train with this batch size instead of the configs' (a reduced run)")
    p.add_argument("--local-dir", help="LLM entries: local checkpoint copies (see the entry's "
                                        "description) instead of the Hugging Face hub")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args) -> int:
    import pandas as pd

    from . import STUDIES, Context, get, load_plugin_entries, markdown_table, table

    load_plugin_entries()  # no-op after the first look (a plugin's entries are registered once)
    if args.list and args.markdown:
        print("\n\n".join(f"{study}\n\n{markdown_table(study)}" for study in STUDIES))
        return 0
    if args.list:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(table().to_string(index=False))
        return 0
    if args.id is None or args.out is None:
        raise ValueError("give an entry id and --out DIR (or --list to see the entries)")
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be an integer >= 1, got {value}")
    entry = get(args.id)
    written = entry.run(Context(out=Path(args.out), steps=args.steps, device=args.device,
                                progress=not args.quiet, batch_size=args.batch_size,
                                local_dir=Path(args.local_dir) if args.local_dir else None))
    for label, path in written.items():
        print(f"{label:>8}: {path}")
    return 0
