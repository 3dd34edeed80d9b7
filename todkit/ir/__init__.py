from todkit.ir.graph import Graph, Node, TensorType, Value

__all__ = ["Graph", "Node", "TensorType", "Value"]
