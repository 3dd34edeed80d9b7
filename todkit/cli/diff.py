"""``todkit diff A.ms B.ms``: what differs between two .ms files; exit 0 if equivalent, 1 if not."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("diff", help="show the differences between two .ms files")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--ignore-names", action="store_true",
                   help="match nodes by position and do not compare names")
    p.add_argument("--ignore-data", action="store_true", help="do not compare constant bytes")
    p.add_argument("--ignore-formats", action="store_true",
                   help="do not compare tensor formats and format attributes")
    p.add_argument("--ignore-order", action="store_true",
                   help="do not report a different node order (nodes are matched by name)")
    p.add_argument("--max", type=int, default=200, help="list at most this many differences")
    p.set_defaults(run=run)


def run(args) -> int:
    from todkit.formats.ms.diff import DiffOptions, diff

    opts = DiffOptions(names=not args.ignore_names, data=not args.ignore_data,
                       formats=not args.ignore_formats, order=not args.ignore_order)
    lines = diff(args.a, args.b, opts)
    for line in lines[:args.max]:
        print(line)
    if len(lines) > args.max:
        print(f"... and {len(lines) - args.max} more differences")
    if not lines:
        print(f"{args.a} and {args.b} are equivalent")
    return 1 if lines else 0
