"""``python -m todkit.runtime model.ms [--loss-name P ...]``: print a model's roles and its
arena plans (offsets, sizes, lifetimes; total against the naive one-buffer-per-tensor sum)."""

from __future__ import annotations

import argparse
import sys

from todkit.core.errors import TodkitError
from todkit.runtime.roles import DEFAULT_LOSS_NAMES
from todkit.runtime.session import Session


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m todkit.runtime", description=__doc__)
    ap.add_argument("model", help=".ms file")
    ap.add_argument("--loss-name", action="append", help="loss node name pattern (repeatable)")
    args = ap.parse_args(argv)
    try:
        from todkit.formats import ms

        graph = ms.read(args.model).graph
        s = Session(graph, loss_names=args.loss_name or DEFAULT_LOSS_NAMES, where=args.model)
    except (TodkitError, OSError, ImportError) as e:
        msg = str(e)
        print(msg if args.model in msg else f"{args.model}: {msg}", file=sys.stderr)
        return 1
    r = s.roles
    print(f"{args.model}: {len(r.train_nodes)} nodes, "
          f"{'inference' if r.is_inference_model else 'train'} model")
    print("  loss nodes:   " + ", ".join(n.name for n in r.loss_nodes))
    print("  optimizers:   " + ", ".join(f"{n.op} {n.name}" for n in r.optimizers))
    print("  train outputs:" + "".join(f" {v.name}" for v in r.train_outputs))
    print("  eval outputs: " + ", ".join(v.name for v in r.eval_outputs))
    print(s.describe_plans())
    return 0


if __name__ == "__main__":
    sys.exit(main())
