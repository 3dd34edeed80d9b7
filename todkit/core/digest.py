"""A 16-byte content digest (BLAKE2b) without loading OpenSSL.

``hashlib`` imports ``_hashlib``, which maps libcrypto: 3.6 MB of resident memory on a
device that only wants to fingerprint a model or a feature row. CPython's own BLAKE2
module is built in; ``hashlib`` is the fallback where it is not.
"""

from __future__ import annotations

try:
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - CPython always has it
    from hashlib import blake2b as _blake2b


def digest16(data) -> bytes:
    """BLAKE2b-128 of ``data`` (bytes-like): the same bytes ``hashlib.blake2b`` gives."""
    return _blake2b(data, digest_size=16).digest()


def digest16_file(f) -> bytes:
    """``digest16`` of what is left of the binary file ``f``, read in 1 MB pieces (a model
    file is not held in memory to be fingerprinted)."""
    h = _blake2b(digest_size=16)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while n := f.readinto(buf):
        h.update(view[:n])
    return h.digest()
