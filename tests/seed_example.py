"""MindSpore's "Creating MindSpore ToD Models" example with only its imports changed
(mindspore -> todkit): the one copy the tests run."""

SEED_EXAMPLE = """\
import todkit as M
from todkit.ops import operations as P
from todkit.common.parameter import ParameterTuple
n,c,h,w = 32,3,224,224
num_of_classes = 10
class MyNet(M.nn.Cell):
  def __init__(self, num_of_classes):
    super(MyNet, self).__init__()
    self.fc = M.nn.Dense(c*h*w, num_of_classes)
  def construct(self, x):
    x = P.Reshape()(x, (-1, c*h*w))
    x = self.fc(x)
    return x
my_net = MyNet(num_of_classes)
loss_net = M.nn.WithLossCell(my_net, M.nn.SoftmaxCrossEntropyWithLogits())
optimizer = M.nn.Adam(ParameterTuple(my_net.trainable_params()), learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, use_locking=False, use_nesterov=False, weight_decay=0.0, loss_scale=1.0)
train_net = M.nn.TrainOneStepCell(loss_net, optimizer)
import numpy as np
x=M.Tensor(np.ones((n,c,h,w)), M.float32)
label = M.Tensor(np.zeros([n, num_of_classes]).astype(np.float32))
from todkit.train.serialization import export
export(train_net, x, label, file_name="my_net_tod.mindir", file_format='MINDIR')
"""


def seed_source(n=32, c=3, h=224, w=224) -> str:
    """The example verbatim, or with a smaller input (the only line that changes)."""
    line = "n,c,h,w = 32,3,224,224"
    assert line in SEED_EXAMPLE
    return SEED_EXAMPLE.replace(line, f"n,c,h,w = {n},{c},{h},{w}")
