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

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError

AttrType = pb.AttributeProto.AttributeType
PrimType = pb.PrimitiveProto.PrimType

__all__ = ["AttrType", "PrimType", "load_model", "parse_model", "pb"]


# protobuf cannot parse a message of 2 GB or more; say so before reading such a file.
MAX_FILE_BYTES = 2**31 - 1


def load_model(path: str | os.PathLike) -> pb.ModelProto:
    """Parse ``path`` as a serialized ``ModelProto``; check it is a MINDIR we can take."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise GraphFileError(f"{path}: {size} bytes is over protobuf's 2 GB message "
                                     "limit; not a MINDIR todkit can read")
            data = f.read()
    except FileNotFoundError:
        raise GraphFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GraphFileError(f"{path}: is a directory, not a MINDIR file") from None
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read the file: {e.strerror or e}") from None
    return parse_model(data, path)


def parse_model(data: bytes, path: str) -> pb.ModelProto:
    """``data`` as a ``ModelProto``; ``path`` names it in errors.

    The protobuf runtime bounds nesting (100 levels) and message size (2 GB) itself; a file
    beyond either fails to decode and is reported here like any other undecodable file."""
    if not data:
        raise GraphFileError(f"{path}: not a MINDIR file (the file is empty)")
    if len(data) > MAX_FILE_BYTES:
        raise GraphFileError(f"{path}: {len(data)} bytes is over protobuf's 2 GB message limit")
    model = pb.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise GraphFileError(
            f"{path}: not a MINDIR file (protobuf DecodeError: {e}); encrypted MINDIR files "
            "are not supported") from None
    bad_text = _first_non_utf8_string(model)
    if bad_text:
        raise GraphFileError(f"{path}: not a MINDIR file (string field {bad_text} is not valid "
                             "UTF-8)")
    # Random bytes sometimes decode as a valid but meaningless message: demand a graph.
    if not model.HasField("graph") or not (model.graph.node or model.graph.output):
        raise GraphFileError(f"{path}: not a MINDIR file (no graph in the ModelProto)")
    if model.functions:
        names = ", ".join(g.name for g in model.functions[:5])
        raise NotSupportedError(
            f"{path}: MINDIR with {len(model.functions)} sub-graph(s) in ModelProto.functions "
            f"({names}) uses control flow, which is not supported; export a flat graph")
    for what, t in _tensors(model):
        if t.HasField("external_data"):
            _refuse_external_data(path, what, t.external_data.location)
    for p in model.graph.parameter:
        if p.compression_type != pb.TensorProto.NO_COMPRESSION:
            raise NotSupportedError(
                f"{path}: parameter {p.ref_key or p.name!r} is compressed "
                f"({pb.TensorProto.CompressionType.Name(p.compression_type)}); not supported")
    if model.graph.map_parameter:
        raise NotSupportedError(f"{path}: MINDIR map parameters (MapTensor) are not supported")
    return model


def _tensors(model: pb.ModelProto):
    """(description, TensorProto) of every tensor that can carry data: parameters, and the
    tensors inside node and primitive attributes (nested tuples included)."""
    def in_attrs(attrs, owner):
        stack = [(a, f"{owner} attribute {a.name!r}") for a in attrs]
        while stack:  # iterative: attribute nesting depth is bounded by protobuf, not by us
            a, what = stack.pop()
            if a.HasField("t"):
                yield what, a.t
            yield from ((what, t) for t in a.tensors)
            stack.extend((v, what) for v in a.values)

    g = model.graph
    for p in g.parameter:
        yield f"parameter {p.ref_key or p.name!r}", p
    for n in g.node:
        yield from in_attrs(n.attribute, f"node {n.domain or n.name!r}")
    for prim in model.primitives:
        yield from in_attrs(prim.attribute, f"primitive {prim.name!r}")


def _refuse_external_data(path: str, what: str, location: str):
    """External data is not supported; a location that leaves the model's folder is called out
    as such, since reading it would let a model file read any file on the device."""
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    inside = "\0" not in location and not os.path.isabs(location) and os.path.commonpath(
        [folder, os.path.realpath(os.path.join(folder, location))]) == folder
    if not inside:
        raise GraphFileError(f"{path}: {what} keeps its data at {location!r}, which leaves the "
                             "model's folder; refused")
    raise NotSupportedError(f"{path}: {what} keeps its data in an external file "
                            f"({location!r}); MINDIR external data is not supported")


def _first_non_utf8_string(model: pb.ModelProto) -> str | None:
    """The first string field holding invalid UTF-8, as ``Message.field``, or None.

    proto2 does not validate strings, and the protobuf runtime hands such a field back as
    bytes, which every name lookup downstream would trip over."""
    stack = [model]
    while stack:
        msg = stack.pop()
        for fd, value in msg.ListFields():
            items = value if fd.is_repeated else [value]
            if fd.type == FieldDescriptor.TYPE_STRING:
                if any(not isinstance(v, str) for v in items):
                    return f"{msg.DESCRIPTOR.name}.{fd.name}"
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                stack.extend(items)
    return None
