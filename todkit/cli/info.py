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
    if path.endswith(".ms"):
        describe_runtime(graph, path)
    return 0


def describe_runtime(graph, path: str) -> None:
    """What the device runtime makes of the model: roles, trained tensors, optimizer
    hyper-parameters and the planned memory."""
    from todkit.core.errors import TodkitError
    from todkit.runtime import Session

    try:
        s = Session(graph, where=path)
    except TodkitError as e:
        print(f"runtime: cannot load ({e})")
        return
    r = s.roles
    print(f"runtime: {'inference' if r.is_inference_model else 'train'} model")
    print("  eval outputs: " + ", ".join(v.name for v in r.eval_outputs))
    trainable = s.trainable_params()
    weights = [v for v in trainable if v in [n.inputs[0] for n in r.optimizers]]
    print(f"  trained weights: {len(weights)}, "
          f"{sum(v.type.size for v in weights)} values")
    for v in weights:
        print(f"    {v.name}: {v.type}")
    for n in r.optimizers:
        print(f"  optimizer {n.op}: {n.name}")
    hyper = s.optimizer_params()
    if hyper:
        print("  hyper-parameters: " + ", ".join(
            f"{v.name}={float(v.data.reshape(-1)[0]):g}" for v in hyper))
        print(f"  learning rate: {s.get_learning_rate():g}")
    state = sum(c.type.nbytes for c in graph.consts)
    print(f"  planned memory: arena {s.arena.nbytes} bytes (train plan "
          f"{s.train.plan.total if s.train else 0}, eval plan {s.eval.plan.total}; naive "
          f"{max(ex.plan.naive_total for ex in s.executors)}) + {state} bytes of weights and "
          "state")
