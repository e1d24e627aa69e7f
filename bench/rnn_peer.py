#!/usr/bin/python3
"""PyTorch peer for the recurrent benchmark (bench/Nabla.Bench/RnnBench.cs): the same LSTM/GRU steps as the C# harness,
on request, so both sides are timed alternately under the same machine noise. Run with Debian's /usr/bin/python3
(python3-torch 1.13: torch.nn.LSTM/GRU on the CPU run ATen's native recurrence, its GEMMs in OpenBLAS).

Line protocol on stdin/stdout, one request per line, one answer line each:
  threads T                               -> "ok <torch threads> <OpenBLAS threads> <torch version>"
  train MODE LAYERS IN HIDDEN T B REPS    -> "<ms> ..." REPS wall times of a forward + backward (input, every weight)
  step MODE LAYERS IN HIDDEN REPS         -> "<ms> ..." REPS wall times of one inference step of one sequence (state
                                             carried from the previous step, no autograd)
  quit
MODE is lstm or gru. Each request runs one untimed warm-up first.
"""

import torch

from peer_common import serve, timed

_cache = {}


def layer(mode, layers, inputs, hidden):
    key = (mode, layers, inputs, hidden)
    if key not in _cache:
        torch.manual_seed(0)
        _cache[key] = (torch.nn.LSTM if mode == "lstm" else torch.nn.GRU)(inputs, hidden, layers)
    return _cache[key]


def train_step(mode, layers, inputs, hidden, steps, batch):
    net = layer(mode, layers, inputs, hidden)
    torch.manual_seed(1)
    x = torch.randn(steps, batch, inputs, requires_grad=True)
    grad = torch.randn(steps, batch, hidden)

    def step():
        x.grad = None
        for p in net.parameters():
            p.grad = None
        net(x)[0].backward(grad)
    return step


def inference_step(mode, layers, inputs, hidden):
    net = layer(mode, layers, inputs, hidden)
    x = torch.randn(1, 1, inputs)
    state = [None]

    def step():
        with torch.no_grad():
            _, state[0] = net(x, state[0])
    return step


def answer(words):
    numbers = [int(w) for w in words[2:]]
    if words[0] == "train":
        return timed(train_step(words[1], *numbers[:5]), numbers[-1])
    if words[0] == "step":
        return timed(inference_step(words[1], *numbers[:3]), numbers[-1])
    return None


def main():
    serve(answer, lambda torch_threads, blas_threads, _: (torch_threads, blas_threads, torch.__version__))


if __name__ == "__main__":
    main()
