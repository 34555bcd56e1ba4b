"""torch_load.py OUT_DIR DATA_DIR NAME...: loads loom's safetensors export OUT_DIR/NAME-loom.safetensors
into PyTorch's own nn.Sequential of that model (torch_models.py), with load_state_dict(strict=True)
and no safetensors package (struct + json), and writes its probabilities on the first test images to
OUT_DIR/NAME-loom.bin: loom -> PyTorch, checked by tests/data/import.sh against loom's own."""
import json
import struct
import sys

import torch

import torch_models as tm


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
    builders = {'conv-maxpool': tm.conv_maxpool, 'drop-norm-l2': tm.drop_norm_l2}
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
