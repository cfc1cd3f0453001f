"""``dyntools export FOLDER --out PATH``: metrics and training scalars as one tidy table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dyntools.store import Store, export, locate_db
from dyntools.store.export import WRITERS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write computed metrics and training scalars as one CSV or Parquet table",
        description="Write the metrics and training scalars stored for FOLDER as one tidy table "
        "(columns: source, run_id, step, epoch, kind, scope, hook_point, tensor, head, name, "
        "params, value).",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="the analysed folder")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="output file")
    parser.add_argument(
        "--format",
        choices=sorted(WRITERS),
        help="output format (default: from the --out suffix, csv unless it is .parquet)",
    )
    parser.add_argument("--db", type=Path, metavar="PATH", help="database file (default: FOLDER's)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not args.force:
        raise FileExistsError(
            f"{out} exists: pass --force to overwrite it, or choose another --out"
        )
    if not out.parent.is_dir():
        raise FileNotFoundError(f"no folder {out.parent} for --out {out}: create it first")
    db = args.db if args.db is not None else locate_db(args.folder).path
    store = Store(db)
    if not store.exists:
        raise FileNotFoundError(
            f"no dyntools database for {args.folder} (looked for {db}): "
            f"run `dyntools compute {args.folder}` first"
        )
    fmt = args.format or ("parquet" if out.suffix.lower() == ".parquet" else "csv")
    rows = export(store, out, fmt)
    print(f"wrote {rows} rows to {out} ({fmt})")
    return 0
