"""Shared pieces of the fuzz harnesses: seed selection and the verdict on one input.

A harness passes when the reader returns or raises a ``TodkitError``; anything else (a bare
Python exception, a hang caught by libFuzzer's ``-timeout``, memory over ``-rss_limit_mb``) is
a finding. A ``GraphFileError`` that only wraps an unexpected exception (the MINDIR reader's
last-resort net, "cannot read MINDIR: KeyError: ...") counts as a finding too: the reader
should have said what is wrong itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TODKIT_SHARED", ROOT.parent / "shared")) / "corpus"
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
WORK = Path(__file__).resolve().parent / "work"
# Seeds above this size slow every mutation down without adding structure the small files
# lack (LeNet's files are the same layers with bigger weights).
MAX_SEED_BYTES = 100_000


def seed_dir(name: str, suffixes: tuple[str, ...]) -> Path:
    """A working corpus for ``name`` seeded with the real files and our hostile fixtures."""
    work = WORK / name / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    sources = [p for base in (CORPUS, HOSTILE) if base.exists() for p in base.rglob("*")]
    for p in sources:
        if p.is_file() and p.name.endswith(suffixes) and p.stat().st_size <= MAX_SEED_BYTES:
            target = work / f"seed_{p.parent.name}_{p.name}"
            if not target.exists():
                shutil.copyfile(p, target)
    return work


def check_outcome(call, data: bytes) -> None:
    from known import KNOWN, signature

    from todkit.core.errors import TodkitError

    try:
        call(data)
    except TodkitError as e:
        cause = e.__cause__
        if cause is not None and not isinstance(cause, TodkitError) and \
                "cannot read MINDIR:" in str(e):
            raise AssertionError(f"unexplained failure behind: {e}") from cause
    except Exception as e:
        if signature(e) not in KNOWN:
            raise


def libfuzzer_args(name: str, argv: list[str]) -> list[str]:
    """argv plus defaults: the working corpus, crash files under work/<name>/, 5 s timeout."""
    args = list(argv)
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.append(f"-artifact_prefix={WORK / name}/")
    if not any(a.startswith("-timeout=") for a in args):
        args.append("-timeout=5")
    return args
