"""The ``todkit`` command: friendlier spellings of the toolchain's steps.

``todkit convert`` runs the converter with short options, ``todkit info`` describes a
``.mindir`` or ``.ms`` file. (Training from the command line is issue 5's ``todkit train``.)
"""

from __future__ import annotations

import argparse
import sys

from todkit.core.errors import TodkitError


def _info(path: str) -> int:
    if path.endswith(".ms"):
        from todkit.formats import ms

        model = ms.read(path)
        graph = model.graph
        print(f"{path}: MindSpore Lite model ({model.version})")
    else:
        from todkit.formats import mindir

        graph = mindir.read(path)
        # MindSpore 2.10 writes no `training` graph attribute: optimizer nodes tell.
        training = graph.attrs.get("training") or any(
            n.op in ("Adam", "ApplyMomentum", "SGD") for n in graph.nodes)
        print(f"{path}: MINDIR model ({'training' if training else 'inference'} graph)")
    for title, values in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        print(f"{title}:")
        for v in values:
            print(f"  {v.name}: {v.type}")
    print("ops:")
    for op, n in sorted(graph.op_counts().items()):
        print(f"  {op}: {n}")
    params = [c for c in graph.consts if c.param]
    total = sum(c.type.nbytes for c in graph.consts)
    print(f"parameters: {len(params)} named, {len(graph.consts)} constants, {total} bytes")
    for c in params:
        print(f"  {c.name}: {c.type}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="todkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("convert", help="convert a MINDIR model to .ms (converter_lite)")
    p.add_argument("model", help="input .mindir file")
    p.add_argument("-o", "--output", help="output path (.ms is appended); default: beside input")
    p.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                   help="convert for training on the device (default) or for inference")
    p = sub.add_parser("info", help="describe a .mindir or .ms file")
    p.add_argument("file")
    args = parser.parse_args(argv)
    if args.cmd == "convert":
        from todkit.converter import cli

        out = args.output or args.model.removesuffix(".mindir")
        return cli.main(["--fmk=MINDIR", f"--modelFile={args.model}", f"--outputFile={out}",
                         f"--trainModel={'true' if args.train else 'false'}"])
    try:
        return _info(args.file)
    except (TodkitError, OSError) as e:
        print(f"todkit: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
