"""Loading the generated protobuf module and parsing a file into a ``ModelProto``.

Every way a file can fail to be a MINDIR ends here as a ``GraphFileError`` naming the file, so
callers (converter, tests) never see a protobuf traceback.
"""

from __future__ import annotations

import os

from todkit.core.errors import GraphFileError, NotSupportedError

try:
    from todkit.formats.mindir import mind_ir_pb2 as pb
except Exception as e:
    raise ImportError(
        "todkit.formats.mindir.mind_ir_pb2 cannot be loaded with the installed protobuf "
        f"runtime ({e}); install protobuf>=7.35.1 or run todkit/formats/mindir/regen.sh"
    ) from e

from google.protobuf.message import DecodeError

AttrType = pb.AttributeProto.AttributeType
PrimType = pb.PrimitiveProto.PrimType

__all__ = ["AttrType", "PrimType", "load_model", "pb"]


def load_model(path: str | os.PathLike) -> pb.ModelProto:
    """Parse ``path`` as a serialized ``ModelProto``; check it is a MINDIR we can take."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise GraphFileError(f"{path}: no such file") from None
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read the file: {e.strerror or e}") from None
    if not data:
        raise GraphFileError(f"{path}: not a MINDIR file (the file is empty)")
    model = pb.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise GraphFileError(
            f"{path}: not a MINDIR file (protobuf DecodeError: {e}); encrypted MINDIR files "
            "are not supported") from None
    # Random bytes sometimes decode as a valid but meaningless message: demand a graph.
    if not model.HasField("graph") or not (model.graph.node or model.graph.output):
        raise GraphFileError(f"{path}: not a MINDIR file (no graph in the ModelProto)")
    if model.functions:
        names = ", ".join(g.name for g in model.functions[:5])
        raise NotSupportedError(
            f"{path}: MINDIR with {len(model.functions)} sub-graph(s) in ModelProto.functions "
            f"({names}) uses control flow, which is not supported; export a flat graph")
    for p in model.graph.parameter:
        if p.HasField("external_data"):
            raise NotSupportedError(
                f"{path}: parameter {p.ref_key or p.name!r} keeps its data in an external file "
                f"({p.external_data.location!r}); MINDIR external data is not supported")
        if p.compression_type != pb.TensorProto.NO_COMPRESSION:
            raise NotSupportedError(
                f"{path}: parameter {p.ref_key or p.name!r} is compressed "
                f"({pb.TensorProto.CompressionType.Name(p.compression_type)}); not supported")
    if model.graph.map_parameter:
        raise NotSupportedError(f"{path}: MINDIR map parameters (MapTensor) are not supported")
    return model
