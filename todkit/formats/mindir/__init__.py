"""The MINDIR codec: ``read(path) -> Graph`` and ``write(graph, path)``.

``mind_ir.proto`` is MindSpore's schema (package ``mind_ir``), ``mind_ir_pb2.py`` is generated
from it by ``regen.sh``; ``optable.py`` maps IR ops to MINDIR primitives, ``values.py`` encodes
values, ``reader.py`` and ``writer.py`` do the graphs.
"""

from todkit.formats.mindir.reader import read
from todkit.formats.mindir.schema import load_model, pb
from todkit.formats.mindir.writer import to_model_proto, write

__all__ = ["load_model", "pb", "read", "to_model_proto", "write"]
