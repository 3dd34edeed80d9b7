"""Findings already reported to the engineer whose file holds the bug, so a fuzz run can go on
past them. Each has a regression case in tests/test_hostile_inputs.py (strict xfail until it is
fixed there; then the entry here goes too).

Key: (exception type, file name, function) of the innermost todkit frame of the traceback.
"""

KNOWN: dict[tuple[str, str, str], str] = {}


def signature(exc: BaseException) -> tuple[str, str, str] | None:
    """The KNOWN key of ``exc``: its innermost frame in todkit's own code."""
    tb, last = exc.__traceback__, None
    while tb is not None:
        if "/todkit/" in tb.tb_frame.f_code.co_filename:
            last = tb.tb_frame.f_code
        tb = tb.tb_next
    if last is None:
        return None
    return type(exc).__name__, last.co_filename.rsplit("/", 1)[-1], last.co_name
