"""Where the read-only corpus and reference live: ``../shared`` beside the checkout (as in
CI), or ``$TODKIT_SHARED``. Tests that need a file skip with a reason when it is absent; the
project's own fixtures cover the code without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TODKIT_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
MS210 = CORPUS / "mindspore-2.10"
LITE = CORPUS / "lite-2.0"
REFERENCE = SHARED / "reference"


def need(path: Path) -> Path:
    """``path`` if it exists, else skip the calling test."""
    if not Path(path).exists():
        pytest.skip(f"{path} is not available (shared corpus missing)")
    return Path(path)
