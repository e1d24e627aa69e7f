#!/usr/bin/python3
"""PyTorch peer for the kernel benchmark (bench/Nabla.Bench/KernelBench.cs): runs the same attention and convolution
steps as the C# harness, on request, so both sides are timed alternately under the same machine noise. Run with
Debian's /usr/bin/python3 (python3-torch 1.13: convolutions go to oneDNN, matrix products to OpenBLAS).

Line protocol on stdin/stdout, one request per line, one answer line each:
  threads T                      -> "ok <torch threads> <OpenBLAS threads> <torch version> <oneDNN available>"
  attention B H T D REPS         -> "<ms> ..." REPS wall times of a causal attention forward + backward
  conv N C H W O KH KW S P ONEDNN [BACKWARD] REPS
                                 -> "<ms> ..." REPS wall times of a conv2d forward + backward (input, weight, bias),
                                    with oneDNN (torch's default CPU convolution) on or off (1/0); off, torch uses
                                    its own im2col + BLAS convolution, much faster for one input channel;
                                    BACKWARD 0 times the forward alone, under no_grad
  train MODEL BATCH ONEDNN REPS  -> "<ms> ..." REPS wall times of a training step (forward, cross-entropy, backward,
                                    SGD with momentum 0.9) on random 1×28×28 images in train mode; MODEL 0 is
                                    LeNet-5, 1 is ResNet-20 (width 16), both as Nabla builds them
  clock cpu|wall                 -> "ok": time the following requests by the calling thread's CPU time
                                    (time.thread_time: all the work with 1 thread) or by the wall clock (the default)
  quit
Each request runs one untimed warm-up step first. Torch 1.13 has no scaled_dot_product_attention, so attention is
written as PyTorch users did: softmax(q·kᵀ/√d + mask)·v with autograd, the T×T matrices materialised.
"""
import math
import time

import torch
import torch.nn.functional as F

from peer_common import serve, timed


_cache = {}


def cached(key, make):
    """The tensors of one case, made once (the harness asks for the same case round after round)."""
    if key not in _cache:
        torch.manual_seed(0)
        _cache[key] = make()
    return _cache[key]


def attention_step(b, h, t, d):
    q, k, v, grad, mask = cached(("attention", b, h, t, d), lambda: (
        torch.randn(b, h, t, d, requires_grad=True), torch.randn(b, h, t, d, requires_grad=True),
        torch.randn(b, h, t, d, requires_grad=True), torch.randn(b, h, t, d),
        torch.full((t, t), float("-inf")).triu(1)))

    def step():
        for x in (q, k, v):
            x.grad = None
        scores = q @ k.transpose(-2, -1) / math.sqrt(d) + mask
        out = torch.softmax(scores, dim=-1) @ v
        out.backward(grad)
    return step


def conv_step(n, c, hgt, wid, o, kh, kw, stride, padding, onednn, backward=1):
    x, w, bias, grad = cached(("conv", n, c, hgt, wid, o, kh, kw, stride, padding), lambda: (
        torch.randn(n, c, hgt, wid, requires_grad=True), torch.randn(o, c, kh, kw, requires_grad=True),
        torch.randn(o, requires_grad=True),
        torch.randn(n, o, (hgt + 2 * padding - kh) // stride + 1, (wid + 2 * padding - kw) // stride + 1)))

    def step():
        for p in (x, w, bias):
            p.grad = None
        with torch.backends.mkldnn.flags(enabled=bool(onednn)):
            F.conv2d(x, w, bias, stride=stride, padding=padding).backward(grad)

    def forward():
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=bool(onednn)):
            F.conv2d(x, w, bias, stride=stride, padding=padding)
    return step if backward else forward


class LeNet5(torch.nn.Module):
    """src/Nabla/Models/Vision/LeNet.cs."""
    def __init__(self):
        super().__init__()
        self.c1, self.c3 = torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.Conv2d(6, 16, 5)
        self.c5, self.f6, self.output = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c3(x)), 2)
        return self.output(F.relu(self.f6(F.relu(self.c5(x.flatten(1))))))


class BasicBlock(torch.nn.Module):
    """Nabla's BasicBlock (torchvision's): two 3×3 convolutions with batch norm, a 1×1 projection when the shape changes."""
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = torch.nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.downsample = torch.nn.Sequential(torch.nn.Conv2d(cin, planes, 1, stride, bias=False), torch.nn.BatchNorm2d(planes)) \
            if stride != 1 or cin != planes else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet20(torch.nn.Module):
    """ResNet.ResNet20(): a 3×3 stem, three stages of three basic blocks (16, 32, 64 channels), average pool, linear."""
    def __init__(self, width=16):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(1, width, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage in range(3):
            for i in range(3):
                blocks.append(BasicBlock(cin, width << stage, 2 if stage > 0 and i == 0 else 1))
                cin = width << stage
        self.blocks, self.fc = torch.nn.Sequential(*blocks), torch.nn.Linear(cin, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def train_step(model_id, batch, onednn):
    model, optimizer, images, labels = cached(("train", model_id, batch), lambda: (lambda m: (
        m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), torch.randn(batch, 1, 28, 28),
        torch.randint(0, 10, (batch,))))(LeNet5() if model_id == 0 else ResNet20()))

    def step():
        with torch.backends.mkldnn.flags(enabled=bool(onednn)):
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
    return step


clock = time.perf_counter


def answer(words):
    global clock
    if words[0] == "clock":  # "clock cpu|wall": time later requests by the thread's CPU time or the wall clock
        clock = time.thread_time if words[1] == "cpu" else time.perf_counter
        return "ok"
    numbers = [int(w) for w in words[1:]]
    if words[0] == "attention":
        return timed(attention_step(*numbers[:4]), numbers[-1], clock)
    if words[0] == "conv":
        return timed(conv_step(*numbers[:-1]), numbers[-1], clock)
    if words[0] == "train":
        return timed(train_step(*numbers[:-1]), numbers[-1], clock)
    return None


def main():
    serve(answer, lambda torch_threads, blas_threads, _: (torch_threads, blas_threads, torch.__version__, torch.backends.mkldnn.is_available()))


if __name__ == "__main__":
    main()
