def write(graph, path): raise NotImplementedError
def to_model_proto(graph): raise NotImplementedError
