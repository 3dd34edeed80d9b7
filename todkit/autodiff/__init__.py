from todkit.autodiff.grad import GradEmitter, add_backward

__all__ = ["GradEmitter", "add_backward"]
