"""``todkit convert MODEL.mindir``: converter_lite with short options."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert a MINDIR model to .ms (converter_lite)")
    p.add_argument("model", help="input .mindir file")
    p.add_argument("-o", "--output", help="output path (.ms is appended); default: beside input")
    p.add_argument("--train", action="store_true", default=True,
                   help="convert for training on the device (the default)")
    p.add_argument("--infer", dest="train", action="store_false",
                   help="convert for inference only (--trainModel=false)")
    p.set_defaults(run=run)


def run(args) -> int:
    from todkit.converter import cli

    out = args.output or args.model.removesuffix(".mindir")
    return cli.main(["--fmk=MINDIR", f"--modelFile={args.model}", f"--outputFile={out}",
                     f"--trainModel={'true' if args.train else 'false'}"])
