"""torch_load.py OUT_DIR DATA_DIR NAME...: loads loom's safetensors export OUT_DIR/NAME-loom.safetensors
into PyTorch's own nn.Sequential of that model (torch_models.py, or the residual networks below),
with load_state_dict(strict=True) and no safetensors package (struct + json), and writes its
probabilities on the first test images to OUT_DIR/NAME-loom.bin: loom -> PyTorch, checked by
tests/data/import.sh against loom's own."""
import json
import struct
import sys

import torch
from torch import nn
import torch.nn.functional as F

import torch_models as tm


class Same(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding (the extra row and column below and right), as
    loom's conv ... same pads."""

    def forward(self, x):
        pads = []
        for size, k, s in ((x.shape[3], self.kernel_size[1], self.stride[1]),
                           (x.shape[2], self.kernel_size[0], self.stride[0])):
            out = (size + s - 1) // s
            total = max((out - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class Residual(nn.Module):
    """loom's residual block: act(body(x) + x), or act(body(x) + proj(x)) with the 1x1
    projection; the state_dict names are body.<j>... and proj.weight/bias (docs/FORMATS.md)."""

    def __init__(self, body, proj=None, act=None):
        super().__init__()
        self.body = nn.Sequential(*body)
        if proj is not None:
            self.proj = proj
        self.has_proj = proj is not None
        self.act = act

    def forward(self, x):
        y = self.body(x) + (self.proj(x) if self.has_proj else x)
        return self.act(y) if self.act is not None else y


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)  # loom's default eps (Keras's)


def kinds_residual():
    # tests/data/models/kinds-residual.txt
    def tanh_block():
        return Residual([Same(12, 12, 3), nn.Tanh()], proj=nn.Conv2d(12, 12, 1))
    return nn.Sequential(
        Same(1, 8, 3), bn(8), nn.ReLU(),
        Residual([Same(8, 8, 3), bn(8), nn.ReLU(), Same(8, 8, 3), bn(8)], act=nn.ReLU()),
        Residual([Same(8, 12, 3, stride=2), bn(12), nn.ReLU(),
                  Residual([Same(12, 12, 3), bn(12), nn.Dropout(0.1)], act=nn.ELU()),
                  Same(12, 12, 3)], proj=nn.Conv2d(8, 12, 1, stride=2), act=nn.ReLU()),
        tanh_block(), tanh_block(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12 * 7 * 7, 10))


def resnet():
    # the zoo's resnet: conv 16, then 3 stages of 2 blocks (16/32/64 filters)
    def block(c_in, c, stride):
        proj = nn.Conv2d(c_in, c, 1, stride=stride) if stride != 1 or c_in != c else None
        return Residual([Same(c_in, c, 3, stride=stride), bn(c), nn.ReLU(), Same(c, c, 3), bn(c)],
                        proj=proj, act=nn.ReLU())
    return nn.Sequential(
        Same(1, 16, 3), bn(16), nn.ReLU(), block(16, 16, 1), block(16, 16, 1), block(16, 32, 2),
        block(32, 32, 1), block(32, 64, 2), block(64, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10))


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body, state = raw[8 + n:], {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        a, b = t['data_offsets']
        fmt = {'F32': 'f', 'I64': 'q'}[t['dtype']]
        count = (b - a) // struct.calcsize(fmt)
        values = struct.unpack('<%d%s' % (count, fmt), body[a:b])
        dtype = torch.float32 if fmt == 'f' else torch.int64
        state[name] = torch.tensor(values, dtype=dtype).reshape(t['shape'])
    return state


def main():
    out, data = sys.argv[1], sys.argv[2]
    builders = {'conv-maxpool': tm.conv_maxpool, 'drop-norm-l2': tm.drop_norm_l2,
                'kinds-residual': kinds_residual, 'resnet': resnet}
    x = tm.idx(data + '/t10k-images-idx3-ubyte.gz', tm.N_TEST).reshape(-1, 1, 28, 28) / 255.0
    for name in sys.argv[3:]:
        net = builders[name]()
        net.load_state_dict(read_safetensors('%s/%s-loom.safetensors' % (out, name)), strict=True)
        net.eval()
        with torch.no_grad():
            p = torch.softmax(net(x), dim=1)
        with open('%s/%s-loom.bin' % (out, name), 'wb') as f:
            f.write(struct.pack('<%df' % p.numel(), *p.flatten().tolist()))
        print('%s: loaded loom\'s export into PyTorch' % name)


if __name__ == '__main__':
    main()
