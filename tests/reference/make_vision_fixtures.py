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

vision_layers.safetensors also holds bilinear resizing cases (F.interpolate, align_corners=False): input, output,
upstream gradient and input gradient.

classify/ (see classifiers()) and src/Nabla/Models/Vision/imagenet_classes.txt (torchvision's ImageNet class names)
serve `nabla classify`.

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

    # Bilinear resizing (align_corners=False, no antialiasing): up by a non-integer factor (digits 8×8 → 28×28),
    # down, mixed (one side up, one down), and to one pixel.
    for name, shape, size in (("resize_up", (2, 1, 8, 8), (28, 28)), ("resize_down", (2, 3, 13, 11), (5, 4)),
                              ("resize_mixed", (1, 2, 5, 7), (12, 3)), ("resize_to_one", (1, 1, 4, 6), (1, 1))):
        x = randn(*shape).requires_grad_()
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        dy = randn(*y.shape)
        y.backward(dy)
        record(name, x=x, y=y, dy=dy, dx=x.grad)
        metadata[name] = json.dumps(dict(size=size))
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


IMAGENET_CLASSES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "Nabla", "Models", "Vision",
                                "imagenet_classes.txt")


def imagenet_classes():
    """The 1000 ImageNet-1k class names in index order, from torchvision's own table (what `nabla classify` prints)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    assert len(_IMAGENET_CATEGORIES) == 1000
    with open(IMAGENET_CLASSES, "w", encoding="utf-8") as f:
        f.write("".join(name + "\n" for name in _IMAGENET_CATEGORIES))
    print(f"wrote {IMAGENET_CLASSES}: {len(_IMAGENET_CATEGORIES)} class names (torchvision {__import__('torchvision').__version__})")


def timm_config(architecture, interpolation, crop_pct, mean, std, model_args=None):
    """A config.json as timm writes it next to model.safetensors on the Hugging Face hub (push_to_hf_hub):
    the architecture, the class count and the pretrained_cfg that says how to preprocess images."""
    config = {"architecture": architecture, "num_classes": 1000,
              "pretrained_cfg": {"tag": "random_fixture", "input_size": [3, 224, 224], "interpolation": interpolation,
                                 "crop_pct": crop_pct, "crop_mode": "center", "mean": mean, "std": std, "num_classes": 1000}}
    if model_args:
        config["model_args"] = model_args
    return config


def classifiers():
    """classify/: ImageNet-shaped classifiers (1000 classes, 224×224 input) with random weights, each as a directory
    in the hub's layout (model.safetensors + timm's config.json), a real PNG file, and what torchvision's
    preprocessing (Resize(floor(224 / crop_pct)), CenterCrop(224), ToTensor, Normalize — timm's eval transform)
    and the PyTorch model make of it. resnet: torchvision's ResNet-18 class (channels divided by 8), ImageNet
    statistics, bilinear, crop_pct 0.875 (resnet18.tv_in1k's config); vit: torchvision's VisionTransformer
    renamed to timm's layout (16×16 patches of a 224 image, width 24, 2 blocks of 3 heads), mean = std = 0.5,
    bicubic, crop_pct 0.9 (vit_tiny_patch16_224.augreg_in21k_ft_in1k's config)."""
    from PIL import Image
    import torchvision.transforms as T

    out = os.path.join(FIXTURES, "classify")
    gen = torch.Generator().manual_seed(20261203)
    rng = np.random.default_rng(20261203)
    # 320×256: the shorter side is already the ResNet's 256, so its resize keeps every pixel.
    y, x = np.mgrid[0:256, 0:320].astype(np.float32)
    rgb = np.stack([x * 0.7 + 30 * np.sin(y / 9), y * 0.9, 128 + 100 * np.cos((x + y) / 23)], axis=-1)
    rgb[60:140, 90:200] = (220, 40, 60)
    rgb += rng.normal(0, 12, rgb.shape)
    image_path = os.path.join(out, "image.png")
    os.makedirs(out, exist_ok=True)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(image_path)
    image = Image.open(image_path).convert("RGB")

    tensors, metadata = {}, {"torch": torch.__version__, "source": "tests/reference/make_vision_fixtures.py"}
    imagenet_mean, imagenet_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    resnet = SlimResNet(BasicBlock, [2, 2, 2, 2], 8, num_classes=1000)
    randomize(resnet, gen)
    vit_args = dict(img_size=224, patch_size=16, embed_dim=24, depth=2, num_heads=3, mlp_ratio=2.0)
    reference = VisionTransformer(image_size=224, patch_size=16, num_layers=2, num_heads=3, hidden_dim=24, mlp_dim=48,
                                  num_classes=1000)
    randomize(reference, gen)
    vit = TimmViT(image=224, patch=16, dim=24, depth=2, heads=3, hidden=48, classes=1000)
    vit.load_state_dict(torchvision_to_timm(reference.state_dict()), strict=True)
    for name, model, config, interpolation in (
            ("resnet", resnet, timm_config("resnet18", "bilinear", 0.875, imagenet_mean, imagenet_std), T.InterpolationMode.BILINEAR),
            ("vit", vit, timm_config("vit_tiny_patch16_224", "bicubic", 0.9, [0.5] * 3, [0.5] * 3, vit_args), T.InterpolationMode.BICUBIC)):
        model.eval()
        directory = os.path.join(out, name)
        os.makedirs(directory, exist_ok=True)
        write_safetensors(os.path.join(directory, "model.safetensors"), {k: array(v) for k, v in model.state_dict().items()}, {"format": "pt"})
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        cfg = config["pretrained_cfg"]
        transform = T.Compose([T.Resize(int(224 / cfg["crop_pct"]), interpolation=interpolation), T.CenterCrop(224),
                               T.ToTensor(), T.Normalize(cfg["mean"], cfg["std"])])
        x = transform(image)
        with torch.no_grad():
            logits = model(x.unsqueeze(0))
        tensors[f"{name}/input"], tensors[f"{name}/logits"] = array(x), array(logits)
    size = write_safetensors(os.path.join(out, "expected.safetensors"), tensors, metadata)
    print(f"wrote {out}: resnet/, vit/, image.png, expected.safetensors ({size / 1024:.0f} KB)")


def main():
    torch.set_num_threads(2)
    for file, (tensors, metadata) in (("vision_layers.safetensors", layers(np.random.default_rng(20261202))),
                                      ("vision_models.safetensors", models())):
        out = os.path.join(FIXTURES, file)
        size = write_safetensors(out, tensors, metadata)
        print(f"wrote {out}: {len(tensors)} tensors, {size / 1024:.0f} KB")
    classifiers()
    imagenet_classes()


if __name__ == "__main__":
    main()
