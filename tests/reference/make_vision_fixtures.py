#!/usr/bin/python3
"""PyTorch references for the vision layers and models (tests/Nabla.Tests/NN/NormalizationParityTests.cs and
tests/Nabla.Tests/Models/VisionParityTests.cs).

vision_layers.safetensors: BatchNorm1d (training on (N, C) and (N, C, L), evaluation) and GroupNorm cases, each
with its input, parameters, output, a random upstream gradient and the gradients of input, weight and bias, and
for BatchNorm the running statistics and num_batches_tracked before and after; settings as JSON metadata.

vision_models.safetensors: state dicts (PyTorch's names, num_batches_tracked as int64, as torch.save writes it) of
  - resnet18: torchvision's own ResNet class with BasicBlock [2, 2, 2, 2], its channel counts divided by 8 so the
    file stays small (stem and stages 8, 16, 32, 64 instead of 64 ... 512), 10 classes;
  - resnet50: the same class with Bottleneck [3, 4, 6, 3], divided by 16;
  - vit: a tiny ViT written in timm's layout (cls_token, pos_embed, patch_embed.proj, blocks.N.norm1,
    blocks.N.attn.qkv, blocks.N.attn.proj, blocks.N.norm2, blocks.N.mlp.fc1/fc2, norm, head), whose weights are
    those of torchvision's VisionTransformer class with the same configuration, renamed; the script checks both
    give the same logits, so the timm layout written here is pinned to an independent implementation.
Every parameter and batch-norm statistic is random (not the initialisers' ones and zeros), the models are in
evaluation mode, and each has an input batch and its logits (the ViT also the gradients of a few parameters for a random upstream gradient). The ResNet-18 also records a training-mode forward
and backward: logits, a few gradients, and the running statistics after the step.

Run with Debian's python3-torch and python3-torchvision:  /usr/bin/python3 tests/reference/make_vision_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures")


def array(t):
    a = t.detach().numpy() if torch.is_tensor(t) else t
    return np.asarray(a).astype(np.int64 if a.dtype == np.int64 else np.float32)  # (keeps 0-d scalars 0-d)


def layers(rng):
    tensors, metadata = {}, {"torch": torch.__version__, "source": "tests/reference/make_vision_fixtures.py"}

    def record(name, **values):
        for key, value in values.items():
            tensors[f"{name}/{key}"] = array(value)

    def randn(*shape):
        return torch.tensor(rng.standard_normal(shape).astype(np.float32))

    for name, shape, training in (("batchnorm1d_2d_train", (8, 5), True), ("batchnorm1d_3d_train", (4, 3, 7), True),
                                  ("batchnorm1d_eval", (6, 5), False)):
        C = shape[1]
        bn = nn.BatchNorm1d(C, momentum=0.1, eps=1e-5)
        with torch.no_grad():
            bn.weight.copy_(randn(C)); bn.bias.copy_(randn(C))
            bn.running_mean.copy_(randn(C) * 0.1); bn.running_var.copy_(randn(C).abs() + 0.5)
            bn.num_batches_tracked.fill_(3)
        record(name, running_mean_before=bn.running_mean, running_var_before=bn.running_var,
               num_batches_tracked_before=bn.num_batches_tracked.clone())
        bn.train(training)
        x = (randn(*shape) * 2 + 1).requires_grad_()
        y = bn(x)
        dy = randn(*y.shape)
        y.backward(dy)
        record(name, x=x, w=bn.weight, b=bn.bias, y=y, dy=dy, dx=x.grad, dw=bn.weight.grad, db=bn.bias.grad,
               running_mean_after=bn.running_mean, running_var_after=bn.running_var,
               num_batches_tracked_after=bn.num_batches_tracked)
        metadata[name] = json.dumps(dict(training=training, momentum=0.1, eps=1e-5))

    for name, shape, groups, eps in (("groupnorm_4d", (3, 6, 5, 4), 3, 1e-5), ("groupnorm_3d", (2, 8, 9), 4, 1e-5),
                                     ("groupnorm_one_group", (2, 4, 3, 3), 1, 1e-3), ("groupnorm_per_channel", (2, 4, 3, 5), 4, 1e-5)):
        C = shape[1]
        gn = nn.GroupNorm(groups, C, eps=eps)
        with torch.no_grad():
            gn.weight.copy_(randn(C)); gn.bias.copy_(randn(C))
        x = (randn(*shape) * 3 - 1).requires_grad_()
        y = gn(x)
        dy = randn(*y.shape)
        y.backward(dy)
        record(name, x=x, w=gn.weight, b=gn.bias, y=y, dy=dy, dx=x.grad, dw=gn.weight.grad, db=gn.bias.grad)
        metadata[name] = json.dumps(dict(groups=groups, eps=eps))
    return tensors, metadata


class SlimResNet(ResNet):
    """torchvision's ResNet with every channel count divided by `divisor` (torchvision fixes the stem at 64 and
    the stages at 64, 128, 256, 512 planes; nothing else changes: blocks, strides, names)."""

    def __init__(self, block, layers, divisor, num_classes):
        self.divisor = divisor
        super().__init__(block, layers, num_classes=num_classes)
        stem = 64 // divisor
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.fc = nn.Linear(512 // divisor * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:
            self.inplanes = 64 // self.divisor
        return super()._make_layer(block, planes // self.divisor, blocks, stride, dilate)


def randomize(model, gen):
    """Random values for every parameter and batch-norm statistic, scaled to keep activations O(1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))


class TimmAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C))


class TimmMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TimmBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TimmAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TimmMlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmViT(nn.Module):
    """timm's VisionTransformer layout (class token, no distillation token, pre-norm, global class-token pool)."""

    def __init__(self, image, patch, dim, depth, heads, hidden, classes):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.patch_embed = PatchEmbed(patch, dim)
        self.blocks = nn.Sequential(*[TimmBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def torchvision_to_timm(state):
    """torchvision's VisionTransformer names → timm's."""
    out = {}
    for name, value in state.items():
        n = (name.replace("conv_proj.", "patch_embed.proj.").replace("class_token", "cls_token")
             .replace("encoder.pos_embedding", "pos_embed").replace("encoder.ln.", "norm.").replace("heads.head.", "head."))
        if n.startswith("encoder.layers.encoder_layer_"):
            i, rest = n[len("encoder.layers.encoder_layer_"):].split(".", 1)
            rest = (rest.replace("ln_1.", "norm1.").replace("ln_2.", "norm2.")
                    .replace("self_attention.in_proj_weight", "attn.qkv.weight").replace("self_attention.in_proj_bias", "attn.qkv.bias")
                    .replace("self_attention.out_proj.", "attn.proj.").replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2."))
            n = f"blocks.{i}.{rest}"
        out[n] = value
    return out


def models():
    gen = torch.Generator().manual_seed(20261202)
    tensors, metadata = {}, {"torch": torch.__version__, "source": "tests/reference/make_vision_fixtures.py"}

    def record_state(prefix, state):
        for name, value in state.items():
            tensors[f"{prefix}/state/{name}"] = array(value)

    for prefix, block, layers_, divisor, image in (("resnet18", BasicBlock, [2, 2, 2, 2], 8, 64),
                                                   ("resnet50", Bottleneck, [3, 4, 6, 3], 16, 64)):
        model = SlimResNet(block, layers_, divisor, num_classes=10)
        randomize(model, gen)
        model.eval()
        record_state(prefix, model.state_dict())
        x = torch.randn(2, 3, image, image, generator=gen)
        with torch.no_grad():
            logits = model(x)
        tensors[f"{prefix}/x"], tensors[f"{prefix}/logits"] = array(x), array(logits)
        metadata[prefix] = json.dumps(dict(block=block.__name__, layers=layers_, width=64 // divisor, classes=10))
        if prefix == "resnet18":
            model.train()
            logits = model(x)
            dy = torch.randn(logits.shape, generator=gen)
            logits.backward(dy)
            tensors[f"{prefix}/train/logits"], tensors[f"{prefix}/train/dy"] = array(logits), array(dy)
            for name in ("conv1.weight", "layer1.0.bn1.weight", "layer2.0.downsample.0.weight", "fc.weight"):
                tensors[f"{prefix}/train/grad/{name}"] = array(model.get_parameter(name).grad)
            for name in ("bn1.running_mean", "bn1.running_var", "layer4.1.bn2.running_var", "bn1.num_batches_tracked"):
                tensors[f"{prefix}/train/after/{name}"] = array(model.get_buffer(name))

    config = dict(image=16, patch=4, dim=24, depth=2, heads=3, hidden=48, classes=5)
    reference = VisionTransformer(image_size=config["image"], patch_size=config["patch"], num_layers=config["depth"],
                                  num_heads=config["heads"], hidden_dim=config["dim"], mlp_dim=config["hidden"],
                                  num_classes=config["classes"])
    randomize(reference, gen)
    reference.eval()
    vit = TimmViT(**config).eval()
    vit.load_state_dict(torchvision_to_timm(reference.state_dict()), strict=True)
    x = torch.randn(3, 3, config["image"], config["image"], generator=gen)
    with torch.no_grad():
        logits, expected = vit(x), reference(x)
    assert torch.allclose(logits, expected, atol=1e-5), "the timm-layout ViT differs from torchvision's"
    record_state("vit", vit.state_dict())
    tensors["vit/x"], tensors["vit/logits"] = array(x), array(logits)
    # The backward through the whole encoder (non-causal attention, exact GELU, layer norms, class token).
    logits = vit(x)
    dy = torch.randn(logits.shape, generator=gen)
    logits.backward(dy)
    tensors["vit/dy"] = array(dy)
    for name in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.bias", "norm.weight"):
        tensors[f"vit/grad/{name}"] = array(vit.get_parameter(name).grad)
    metadata["vit"] = json.dumps(config)
    return tensors, metadata


def main():
    torch.set_num_threads(2)
    for file, (tensors, metadata) in (("vision_layers.safetensors", layers(np.random.default_rng(20261202))),
                                      ("vision_models.safetensors", models())):
        out = os.path.join(FIXTURES, file)
        size = write_safetensors(out, tensors, metadata)
        print(f"wrote {out}: {len(tensors)} tensors, {size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
