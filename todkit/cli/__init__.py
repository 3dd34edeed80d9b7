"""The ``todkit`` command: one sub-command per module in this package.

Each sub-command module defines ``add_parser(subparsers)`` (registering its name, help and
options, with ``set_defaults(run=...)``) and a ``run(args) -> int``. Add a module to
``COMMANDS`` to add a sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from todkit.core.errors import TodkitError

COMMANDS = ["convert", "diff", "eval", "info", "train"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="todkit", description="todkit: MindSpore-compatible train-on-device toolchain")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"todkit.cli.{name}").add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # `todkit diff ... | head`: the reader left; stop quietly as Unix tools do.
        sys.stderr.close()
        return 0
    except (TodkitError, OSError) as e:
        print(f"todkit {args.cmd}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"todkit {args.cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
