"""Coverage-guided fuzzing of the MINDIR reader (``todkit.formats.mindir.reader.read_bytes``).

    .venv/bin/python fuzz/fuzz_mindir.py -runs=100000   # see README.md, "Fuzzing"
"""

import sys

import atheris
from harness import check_outcome, libfuzzer_args, seed_dir

with atheris.instrument_imports(include=["todkit"]):
    from todkit.formats.mindir.reader import read_bytes


def one_input(data: bytes) -> None:
    check_outcome(lambda d: read_bytes(d, where="fuzz.mindir"), data)


if __name__ == "__main__":
    corpus = seed_dir("mindir", (".mindir",))
    atheris.Setup([sys.argv[0], *libfuzzer_args("mindir", sys.argv[1:]), str(corpus)],
                  one_input)
    atheris.Fuzz()
