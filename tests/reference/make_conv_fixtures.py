#!/usr/bin/python3
"""PyTorch reference values for the convolution, pooling and batch-norm tests
(tests/Nabla.Tests/Ops/ConvolutionParityTests.cs).

Each case records its inputs, PyTorch's output, a random upstream gradient and the gradients of every input,
weight and bias under "<case>/<name>"; the case's settings (stride, padding, ...) are JSON in the metadata under
the case's name. Sizes are kept small and odd so that every padding and tail path is hit and the file stays small.

Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/make_conv_fixtures.py
Writes tests/Nabla.Tests/Fixtures/conv_ops.safetensors.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

CONV_CASES = {
    # name: input shape, weight shape, settings
    "conv_basic": ((2, 3, 7, 6), (4, 3, 3, 3), dict(stride=1, padding=1)),
    "conv_stride2_pad12": ((2, 3, 9, 8), (5, 3, 3, 2), dict(stride=2, padding=(1, 2))),
    "conv_dilation2": ((1, 2, 10, 9), (3, 2, 3, 3), dict(stride=(1, 2), padding=2, dilation=2)),
    "conv_groups2": ((2, 4, 6, 7), (6, 2, 3, 3), dict(padding=1, groups=2)),
    "conv_depthwise": ((2, 4, 8, 7), (4, 1, 3, 3), dict(padding=1, groups=4)),
    "conv_depthwise_x2_stride2": ((2, 4, 9, 9), (8, 1, 3, 3), dict(stride=2, padding=1, groups=4)),
    "conv_depthwise_dilation2": ((1, 3, 11, 10), (3, 1, 3, 3), dict(padding=2, dilation=2, groups=3)),
    "conv_1x1": ((2, 5, 6, 6), (7, 5, 1, 1), dict(bias=False)),
    "conv_1x1_stride2": ((2, 4, 7, 7), (3, 4, 1, 1), dict(stride=2)),
    "conv_lenet_like": ((3, 1, 12, 12), (6, 1, 5, 5), dict()),
    "conv_odd": ((1, 3, 5, 11), (2, 3, 4, 2), dict(stride=(2, 3), padding=(0, 1))),
    "conv_wide_rows": ((1, 2, 5, 40), (3, 2, 3, 3), dict(padding=1)),
    # Dense 3×3 stride-1 convolutions with 16+ channels take Nabla's Winograd path.
    "conv_winograd_resnet": ((2, 16, 9, 10), (20, 16, 3, 3), dict(padding=1)),
    "conv_winograd_pad0_wide": ((1, 17, 6, 37), (16, 17, 3, 3), dict(bias=False)),
    "conv_winograd_pad21": ((2, 16, 5, 4), (16, 16, 3, 3), dict(padding=(2, 1))),
    "conv_winograd_tiny": ((3, 16, 1, 2), (18, 16, 3, 3), dict(padding=1)),
}

POOL_CASES = {
    "maxpool_k2": ("max", (2, 3, 8, 8), dict(kernel_size=2)),
    "maxpool_k3_s2_p1": ("max", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    "maxpool_dilated": ("max", (1, 2, 10, 11), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(2, 1))),
    "maxpool_ties": ("max_ties", (2, 2, 6, 37), dict(kernel_size=3, stride=1, padding=1)),
    "avgpool_k2": ("avg", (2, 3, 8, 8), dict(kernel_size=2)),
    "avgpool_k3_s2_p1": ("avg", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    "avgpool_k3_s2_p1_exclude": ("avg", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    "avgpool_rect_exclude": ("avg", (1, 2, 7, 35), dict(kernel_size=(3, 2), stride=(1, 2), padding=1, count_include_pad=False)),
    "adaptive_3x4": ("adaptive", (2, 3, 7, 9), dict(output_size=(3, 4))),
    "adaptive_1x1": ("adaptive", (2, 3, 6, 6), dict(output_size=1)),
    "adaptive_up": ("adaptive", (1, 2, 2, 3), dict(output_size=(3, 5))),
}


def leaf(array):
    return torch.tensor(array, requires_grad=True)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(20240601)
    tensors, metadata = {}, {"torch": torch.__version__, "source": "tests/reference/make_conv_fixtures.py"}

    def record(name, **arrays):
        for key, value in arrays.items():
            tensors[f"{name}/{key}"] = np.ascontiguousarray(value.detach().numpy() if torch.is_tensor(value) else value).astype(np.float32)

    for name, (x_shape, w_shape, settings) in CONV_CASES.items():
        settings = dict(settings)
        has_bias = settings.pop("bias", True)
        x, w = leaf(randn(rng, *x_shape)), leaf(randn(rng, *w_shape))
        b = leaf(randn(rng, w_shape[0])) if has_bias else None
        y = F.conv2d(x, w, b, **settings)
        dy = torch.tensor(randn(rng, *y.shape))
        y.backward(dy)
        record(name, x=x, w=w, y=y, dy=dy, dx=x.grad, dw=w.grad)
        if has_bias:
            record(name, b=b, db=b.grad)
        metadata[name] = json.dumps(settings)

    for name, (kind, x_shape, settings) in POOL_CASES.items():
        data = randn(rng, *x_shape)
        if kind == "max_ties":
            # Rounded ReLU outputs: many equal values and zeros, so the first maximum must win.
            data = np.maximum(np.round(data * 2) / 2, 0).astype(np.float32)
        x = leaf(data)
        if kind.startswith("max"):
            y = F.max_pool2d(x, **settings)
        elif kind == "avg":
            y = F.avg_pool2d(x, **settings)
        else:
            y = F.adaptive_avg_pool2d(x, **settings)
        dy = torch.tensor(randn(rng, *y.shape))
        y.backward(dy)
        record(name, x=x, y=y, dy=dy, dx=x.grad)
        metadata[name] = json.dumps(settings)

    # Batch norm: training (batch statistics, running statistics updated) and evaluation (running statistics).
    for name, training in (("batchnorm_train", True), ("batchnorm_eval", False)):
        x = leaf(randn(rng, 4, 3, 5, 6) * 2 + 1)
        w, b = leaf(randn(rng, 3)), leaf(randn(rng, 3))
        running_mean = torch.tensor(randn(rng, 3) * 0.1)
        running_var = torch.tensor(np.abs(randn(rng, 3)) + 0.5)
        record(name, running_mean_before=running_mean, running_var_before=running_var)
        y = F.batch_norm(x, running_mean, running_var, w, b, training=training, momentum=0.1, eps=1e-5)
        dy = torch.tensor(randn(rng, *y.shape))
        y.backward(dy)
        record(name, x=x, w=w, b=b, y=y, dy=dy, dx=x.grad, dw=w.grad, db=b.grad,
               running_mean_after=running_mean, running_var_after=running_var)
        metadata[name] = json.dumps(dict(training=training, momentum=0.1, eps=1e-5))

    # The fused end of a ResNet block, relu(batch_norm(x) + residual), and batch norm + ReLU alone: Nabla's one-pass
    # F.BatchNorm(..., residual, relu) against PyTorch's three ops. Values around zero so the ReLU cuts about half.
    for name, training, with_residual in (("batchnorm_add_relu_train", True, True), ("batchnorm_relu_train", True, False),
                                          ("batchnorm_add_relu_eval", False, True)):
        x = leaf(randn(rng, 4, 3, 5, 6) * 2 + 1)
        w, b = leaf(randn(rng, 3)), leaf(randn(rng, 3))
        residual = leaf(randn(rng, 4, 3, 5, 6)) if with_residual else None
        running_mean = torch.tensor(randn(rng, 3) * 0.1)
        running_var = torch.tensor(np.abs(randn(rng, 3)) + 0.5)
        record(name, running_mean_before=running_mean, running_var_before=running_var)
        z = F.batch_norm(x, running_mean, running_var, w, b, training=training, momentum=0.1, eps=1e-5)
        y = F.relu(z + residual if with_residual else z)
        dy = torch.tensor(randn(rng, *y.shape))
        y.backward(dy)
        record(name, x=x, w=w, b=b, y=y, dy=dy, dx=x.grad, dw=w.grad, db=b.grad,
               running_mean_after=running_mean, running_var_after=running_var)
        if with_residual:
            record(name, residual=residual, dresidual=residual.grad)
        metadata[name] = json.dumps(dict(training=training, momentum=0.1, eps=1e-5, residual=with_residual))

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "conv_ops.safetensors")
    write_safetensors(out, tensors, metadata)
    print(f"wrote {out}: {len(tensors)} tensors, {os.path.getsize(out) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
