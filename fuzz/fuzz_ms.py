"""Coverage-guided fuzzing of the `.ms` reader (``todkit.formats.ms.read`` on bytes).

    .venv/bin/python fuzz/fuzz_ms.py -runs=100000      # see README.md, "Fuzzing"
"""

import sys

import atheris
from harness import check_outcome, libfuzzer_args, seed_dir

with atheris.instrument_imports(include=["todkit"]):
    from todkit.formats import ms


def one_input(data: bytes) -> None:
    check_outcome(lambda d: ms.read(d, where="fuzz.ms"), data)


if __name__ == "__main__":
    corpus = seed_dir("ms", (".ms",))
    atheris.Setup([sys.argv[0], *libfuzzer_args("ms", sys.argv[1:]), str(corpus)], one_input)
    atheris.Fuzz()
