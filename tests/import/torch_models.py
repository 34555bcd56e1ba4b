"""torch_models.py OUT_DIR DATA_DIR - PyTorch's side of tests/data/import.sh.

Builds four models in PyTorch (conv-maxpool and drop-norm-l2 as loom's zoo has them, an LSTM
and a GRU reading the image's 28 rows as 28 steps of 28 pixels, as loom's `rows` presents an
image), trains each a few steps on real Fashion-MNIST, exports each with torch.onnx.export
(opset 13) and writes, per model NAME, OUT_DIR/NAME.onnx and OUT_DIR/NAME.bin: PyTorch's own
probabilities on the first 1,000 test images (raw little-endian float32 (1000, 10)).
Also OUT_DIR/selu.onnx, a model with an op loom lacks. conv-maxpool takes raw pixels 0-255 (its graph starts with a Div by 255, as loom's export);
the others take pixel/255. The two CNNs' weights are also written as OUT_DIR/NAME.safetensors
with plain Python (struct + json), named as their nn.Sequential's state_dict.
"""
import gzip
import json
import struct
import sys

import torch
import torch.nn as nn

N_TRAIN, N_TEST, STEPS, BATCH = 2000, 1000, 15, 64


def idx(path, n):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    magic, count = struct.unpack('>II', raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack('>II', raw[8:16])
        data = torch.frombuffer(bytearray(raw[16:16 + n * rows * cols]), dtype=torch.uint8)
        return data.reshape(n, rows, cols).float()
    return torch.frombuffer(bytearray(raw[8:8 + n]), dtype=torch.uint8).long()


def conv_maxpool():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128),
                         nn.ReLU(), nn.Linear(128, 10))


def drop_norm_l2():
    # loom: conv 32 3x3 same relu, batchnorm (eps 1e-3, Keras's), ...; same padding = 1 here
    def bn2(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), bn2(32), nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(), bn2(32), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(), bn2(64), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), bn2(64), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
        nn.BatchNorm1d(256, eps=1e-3, momentum=0.01), nn.Dropout(0.5), nn.Linear(256, 10))


class Recurrent(nn.Module):
    """rows -> lstm/gru 128 (the last step) -> dense 10, on (N, 28, 28)."""

    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(28, 128, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1, :])


class Probabilities(nn.Module):
    """The exported graph: optional pixel scaling, the model, the softmax."""

    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        if self.scale:
            x = x / 255.0
        return torch.softmax(self.net(x), dim=1)


def write_safetensors(path, state):
    header, blobs, off = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in state.items():
        t = t.detach().contiguous()
        if t.dtype == torch.float32:
            data, dtype = struct.pack('<%df' % t.numel(), *t.flatten().tolist()), 'F32'
        else:
            data, dtype = struct.pack('<%dq' % t.numel(), *t.flatten().tolist()), 'I64'
        header[name] = {'dtype': dtype, 'shape': list(t.shape),
                        'data_offsets': [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def main():
    out, data = sys.argv[1], sys.argv[2]
    torch.manual_seed(1)
    torch.set_num_threads(2)
    xtr = idx(data + '/train-images-idx3-ubyte.gz', N_TRAIN) / 255.0
    ytr = idx(data + '/train-labels-idx1-ubyte.gz', N_TRAIN)
    xte = idx(data + '/t10k-images-idx3-ubyte.gz', N_TEST)  # raw 0..255
    models = [('conv-maxpool', conv_maxpool(), True, True),
              ('drop-norm-l2', drop_norm_l2(), True, False),
              ('lstm', Recurrent(nn.LSTM), False, False),
              ('gru', Recurrent(nn.GRU), False, False)]
    for name, net, is_image, scale in models:
        shape = (-1, 1, 28, 28) if is_image else (-1, 28, 28)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        net.train()
        for step in range(STEPS):
            i = torch.randint(0, N_TRAIN, (BATCH,))
            loss = nn.functional.cross_entropy(net(xtr[i].reshape(shape)), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        model = Probabilities(net, scale).eval()
        x = xte.reshape(shape)
        if not scale:
            x = x / 255.0
        with torch.no_grad():
            p = model(x)
        with open('%s/%s.bin' % (out, name), 'wb') as f:
            f.write(struct.pack('<%df' % p.numel(), *p.flatten().tolist()))
        torch.onnx.export(model, x[:2], '%s/%s.onnx' % (out, name), opset_version=13,
                          input_names=['image'], output_names=['probabilities'],
                          dynamic_axes={'image': {0: 'N'}, 'probabilities': {0: 'N'}})
        if is_image:
            write_safetensors('%s/%s.safetensors' % (out, name), net.state_dict())
        print('%s: loss %.3f after %d steps' % (name, loss.item(), STEPS))
    # a model with an op loom has no layer for: the import must refuse it by name
    odd = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.SELU(), nn.Linear(16, 10)).eval()
    torch.onnx.export(odd, torch.zeros(2, 1, 28, 28), '%s/selu.onnx' % out, opset_version=13)


if __name__ == '__main__':
    main()
