"""``nn.Embedding(vocab_size, embedding_size, use_one_hot=False, embedding_table='normal',
dtype=int32, padding_idx=None)`` as MindSpore 2.x builds it: the ids flattened, a Gather of
the rows of the ``embedding_table`` parameter [vocab_size, embedding_size] along axis 0, and
the result reshaped to ids.shape + (embedding_size,). Its gradient (Gather's rule) is an
UnsortedSegmentSum of the rows, as MindSpore 2.10 exports it."""

from __future__ import annotations

import numbers

from todkit.core import dtypes
from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell
from todkit.frontend.initializer import initializer
from todkit.frontend.parameter import Parameter


class Embedding(Cell):
    def __init__(self, vocab_size, embedding_size, use_one_hot=False, embedding_table="normal",
                 dtype=dtypes.int32, padding_idx=None):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("embedding_size", embedding_size)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"Embedding: {name} must be an int >= 1, got {v!r}")
        if use_one_hot:
            raise NotImplementedError("Embedding: use_one_hot=True is not supported")
        if padding_idx is not None:
            raise NotImplementedError("Embedding: padding_idx is not supported")
        self.vocab_size, self.embedding_size = int(vocab_size), int(embedding_size)
        self.embedding_table = Parameter(
            initializer(embedding_table, (self.vocab_size, self.embedding_size),
                        dtypes.float32), name="embedding_table")
        self.gather = P.Gather()

    def construct(self, ids):
        shape = tuple(ids.shape)
        flat = P.Reshape()(ids, (-1,))
        rows = self.gather(self.embedding_table, flat, 0)
        return P.Reshape()(rows, shape + (self.embedding_size,))

    def extend_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, embedding_size={self.embedding_size}"
