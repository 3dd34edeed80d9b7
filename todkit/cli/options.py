"""Command-line options shared by ``todkit train`` and ``todkit eval``."""

from __future__ import annotations


def positive_int(text: str) -> int:
    """A count of 1 or more (argparse names the flag and the value when this raises)."""
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def add_threads(parser) -> None:
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="threads of a step (lite.Context thread_num; default 1: with 2, "
                             "large kernels run in pieces on a second thread)")
