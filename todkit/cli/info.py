"""``todkit info FILE``: what a .mindir or .ms file holds."""

from __future__ import annotations

OPTIMIZERS = ("Adam", "ApplyMomentum", "SGD")


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a .mindir or .ms file")
    p.add_argument("file")
    p.set_defaults(run=run)


def run(args) -> int:
    path = args.file
    if path.endswith(".ms"):
        from todkit.formats import ms

        model = ms.read(path)
        graph = model.graph
        print(f"{path}: MindSpore Lite model ({model.version})")
    else:
        from todkit.formats import mindir

        graph = mindir.read(path)
        # MindSpore 2.10 writes no `training` graph attribute: optimizer nodes tell.
        training = graph.attrs.get("training") or any(n.op in OPTIMIZERS for n in graph.nodes)
        print(f"{path}: MINDIR model ({'training' if training else 'inference'} graph)")
    for title, values in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        print(f"{title}:")
        for v in values:
            print(f"  {v.name}: {v.type}")
    print("ops:")
    for op, n in sorted(graph.op_counts().items()):
        print(f"  {op}: {n}")
    params = [c for c in graph.consts if c.param]
    total = sum(c.type.nbytes for c in graph.consts)
    print(f"parameters: {len(params)} named, {len(graph.consts)} constants, {total} bytes")
    for c in params:
        print(f"  {c.name}: {c.type}")
    return 0
