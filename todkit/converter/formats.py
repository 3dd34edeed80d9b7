"""Tensor ``format`` tags as the real converter stores them in a train ``.ms``.

The tag is a label (kernels take their layout from op attributes), but the real files carry it
and ``todkit diff`` compares it. The rules below reproduce every tag of the corpus files
(``tiny_*_train.ms``: all NHWC; ``lenet_tod.ms``: NHWC up to the Flatten, NCHW after it), as
the converter's legacy shape inference propagates them: walking the nodes in order,
- a node's outputs take the format of its input 0; a Transpose's the layout its perm produces;
  a layout op converted to NHWC gives NHWC; arithmetic on constants only (the optimizers'
  beta-power and weight-decay ``Mul``) gives NHWC, the converter's default;
- a graph input or parameter takes the format of the first node that reads it (its outputs'),
  except that state read first by an optimizer-side op is NHWC (moments, accumulations,
  learning rate, beta powers, ``global_step``), and KHWC weights stay KHWC;
- an unnamed constant (``Default/data-<n>``) is NHWC when an element-wise op reads it and NCHW
  otherwise (optimizer hyper-parameters beta1/beta2/eps, shape and size vectors);
- anything still untagged is NHWC.
A 2-D ``BiasAdd``'s ``data_format`` follows its output's tag (NHWC in the tiny nets, NCHW in
LeNet's dense layers); for 2-D input both add along the last axis.
"""

from __future__ import annotations

from todkit.converter.nhwc import TO_NCHW, TO_NHWC, TO_NHWC_PERM
from todkit.ir.graph import Graph, Node, Value

DEFAULT = "NHWC"
OPTIMIZER_SIDE = ("Adam", "ApplyMomentum", "SGD", "Assign", "AssignAdd")
ARITHMETIC = ("Mul", "Add", "Sub", "RealDiv")
# Element-wise readers whose unnamed constant inputs the converter stores as NHWC.
LAYOUT_FOLLOWING = ("Mul", "Add", "Sub", "RealDiv", "AssignAdd", "Assign")


def _output_format(n: Node, fmt: dict[int, str]) -> str:
    if n.op == "Transpose":
        perm = tuple(n.attrs["perm"])
        if perm == TO_NHWC_PERM:
            return "NHWC"
        if perm == TO_NCHW:
            return "NCHW"
    spec = TO_NHWC.get(n.op)
    if spec is not None and n.attrs.get(spec[0]) == "NHWC" \
            and any(len(v.type.shape) == 4 for v in n.inputs):
        return "NHWC"
    if n.op in ARITHMETIC and all(v.is_const for v in n.inputs):
        return DEFAULT
    return fmt.get(id(n.inputs[0]), DEFAULT) if n.inputs else DEFAULT


def assign_formats(graph: Graph) -> None:
    fmt: dict[int, str] = {}
    nhwc_inputs = {id(v) for v in graph.inputs if len(v.type.shape) == 4}
    for v in graph.values():
        if v.format == "KHWC":
            fmt[id(v)] = "KHWC"
    for v in graph.inputs:
        if id(v) in nhwc_inputs:
            fmt[id(v)] = "NHWC"

    def untagged_source(v: Value) -> bool:
        return id(v) not in fmt and v.producer is None and (v.param or not v.is_const)

    for n in graph.nodes:
        if n.inputs and untagged_source(n.inputs[0]):
            fmt[id(n.inputs[0])] = DEFAULT  # nothing earlier to follow: the default
        out = _output_format(n, fmt)
        for v in n.outputs:
            fmt[id(v)] = out
        for v in n.inputs:
            if untagged_source(v):
                fmt[id(v)] = DEFAULT if n.op in OPTIMIZER_SIDE else out
    for c in graph.consts:
        if id(c) not in fmt and not c.param:
            fmt[id(c)] = "NHWC" if any(u.op in LAYOUT_FOLLOWING for u in c.users) else "NCHW"
    for v in graph.values():
        v.format = fmt.get(id(v), DEFAULT)
    for n in graph.nodes:
        if n.op == "BiasAdd" and len(n.inputs[0].type.shape) <= 2:
            n.attrs["data_format"] = "NHWC" if n.outputs[0].format == "NHWC" else "NCHW"
        if n.op == "BiasAddGrad" and len(n.inputs[0].type.shape) <= 2:
            # the file has no attribute; the reader takes the layout from dy's tag
            n.attrs["data_format"] = "NHWC" if n.inputs[0].format == "NHWC" else "NCHW"
