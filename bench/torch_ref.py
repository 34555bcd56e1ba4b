#!/usr/bin/env python3
"""PyTorch reference for loom's benchmark: the zoo models written in PyTorch, timed the way
`loom bench` times loom (random 28x28 images, Adam, batch 64, median of repeats after a
warm-up). Run with Debian's python3-torch: /usr/bin/python3 bench/torch_ref.py MODEL.
Prints one line: model train_ips infer_ips peak_rss_mib."""
import resource
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)


def conv(c, k, stride=1, same=False):
    return [nn.Conv2d(c, k, 3, stride=stride, padding=1 if same else 0), nn.ReLU()]


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(784, 256), nn.ReLU(),
                         nn.Dropout(0.3), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 32),
                         nn.ReLU(), nn.Linear(32, 10))


def cnn(layers, flat, dense):
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, dense), nn.ReLU(),
                         nn.Linear(dense, 10))


def bn_block(c, k):
    return [nn.Conv2d(c, k, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(k, eps=1e-3, momentum=0.01)]


class Seq(nn.Module):
    def __init__(self, cell, layers):
        super().__init__()
        self.rnn = cell(28, 128, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        out, _ = self.rnn(x.view(-1, 28, 28))
        return self.fc(out[:, -1])


MODELS = {
    "mlp": mlp,
    "conv-maxpool": lambda: cnn(conv(1, 32) + [nn.MaxPool2d(2)] + conv(32, 64) + [nn.MaxPool2d(2)],
                                1600, 128),
    "strided-conv": lambda: cnn(conv(1, 32) + conv(32, 32, 2) + conv(32, 64) + conv(64, 64, 2),
                                1024, 128),
    "small-conv": lambda: cnn(conv(1, 16) + conv(16, 16, 2) + conv(16, 32) + conv(32, 32, 2),
                              512, 64),
    "drop-norm-l2": lambda: nn.Sequential(
        *bn_block(1, 32), *bn_block(32, 32), nn.MaxPool2d(2), nn.Dropout(0.25),
        *bn_block(32, 64), *bn_block(64, 64), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(3136, 256), nn.ReLU(), nn.BatchNorm1d(256, eps=1e-3, momentum=0.01),
        nn.Dropout(0.5), nn.Linear(256, 10)),
    "keras-v1": lambda: cnn(conv(1, 8) + conv(8, 24) + conv(24, 48), 22 * 22 * 48, 100),
    "keras-v2": lambda: cnn(conv(1, 16, 2) + [nn.Dropout(0.5)] + conv(16, 48, 2) +
                            [nn.Dropout(0.5)] + conv(48, 96, 2), 384, 100),
    "cnn1": lambda: cnn(conv(1, 32) + [nn.MaxPool2d(2), nn.Dropout(0.25)], 5408, 32),
    "cnn2": lambda: cnn(conv(1, 32) + [nn.MaxPool2d(2), nn.Dropout(0.25)] + conv(32, 64) +
                        [nn.Dropout(0.25)], 7744, 64),
    "cnn3": lambda: nn.Sequential(
        *conv(1, 32), nn.MaxPool2d(2), nn.Dropout(0.25), *conv(32, 64), nn.Dropout(0.25),
        *conv(64, 128), nn.Dropout(0.25), nn.Flatten(), nn.Linear(10368, 128), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(128, 10)),
    "rnn": lambda: Seq(nn.RNN, 1),
    "rnn2": lambda: Seq(nn.RNN, 2),
    "lstm": lambda: Seq(nn.LSTM, 1),
    "lstm2": lambda: Seq(nn.LSTM, 2),
    "gru": lambda: Seq(nn.GRU, 1),
}


def main():
    name = sys.argv[1]
    batch, repeats, seconds = 64, 5, 1.0
    torch.manual_seed(1)
    model = MODELS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    xs = [torch.rand(batch, 1, 28, 28) for _ in range(8)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(8)]

    def train_step(i):
        opt.zero_grad()
        loss = loss_fn(model(xs[i % 8]), ys[i % 8])
        loss.backward()
        opt.step()

    model.train()
    t0 = time.perf_counter()
    for i in range(2):
        train_step(i)
    steps = max(3, int(seconds / ((time.perf_counter() - t0) / 2)))
    tr, inf = [], []
    for rep in range(-1, repeats):
        model.train()
        a = time.perf_counter()
        for i in range(steps):
            train_step(i)
        b = time.perf_counter()
        model.eval()
        with torch.no_grad():
            for i in range(steps):
                model(xs[i % 8])
        c = time.perf_counter()
        if rep >= 0:
            tr.append(steps * batch / (b - a))
            inf.append(steps * batch / (c - b))
    tr.sort()
    inf.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name} {tr[len(tr) // 2]:.0f} {inf[len(inf) // 2]:.0f} {rss:.0f}")


if __name__ == "__main__":
    main()
