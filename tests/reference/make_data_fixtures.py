#!/usr/bin/python3
"""References for the data readers (tests/Nabla.Tests/Data/*Tests.cs), written independently of Nabla.

Fixtures/data/:
  - IDX files written following the format's definition (LeCun's MNIST page: magic 0x00 0x00 TYPE RANK, big-endian
    int32 sizes, big-endian elements) with struct and numpy: unsigned-byte images and labels (raw and gzip), a
    float32 array, an int16 array (gzip); their values are in idx_reference.safetensors.
  - fashion_mnist_reference.safetensors: Debian's Fashion-MNIST test split read with gzip + numpy: the labels, the
    pixel sum of every image, and two whole images (in [0, 1]).
  - photo.png / photo.jpg (RGB 40×30) and grey.png, drawn with PIL, and what torchvision's transforms make of them:
    ToTensor (exact for PNG), Resize(20) + CenterCrop(16) + ToTensor + Normalize(ImageNet), and the JPEG decoded by PIL.

Run with Debian's python3-torch, python3-torchvision, python3-pil and dataset-fashion-mnist:
    /usr/bin/python3 tests/reference/make_data_fixtures.py
"""
import gzip
import os
import struct
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "data")
FASHION = "/usr/share/datasets/fashion-mnist"
IDX_TYPES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array):
    header = struct.pack(">BBBB", 0, 0, IDX_TYPES[array.dtype], array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


def write(name, data, compress=False):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(gzip.compress(data, mtime=0) if compress else data)


def idx_files(rng):
    images = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    floats = rng.standard_normal((2, 3, 4)).astype(">f4")
    shorts = np.array([-32768, -1, 0, 1, 32767], dtype=">i2")
    write("images-idx3-ubyte", idx_bytes(images))
    write("images-idx3-ubyte.gz", idx_bytes(images), compress=True)
    write("labels-idx1-ubyte", idx_bytes(labels))
    write("floats.idx", idx_bytes(floats))
    write("shorts.idx.gz", idx_bytes(shorts), compress=True)
    return {"images": images.astype(np.float32) / 255, "labels": labels.astype(np.int32),
            "floats": floats.astype(np.float32), "shorts": shorts.astype(np.float32)}


def fashion_mnist():
    def read(name, offset):
        with gzip.open(os.path.join(FASHION, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    images = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read("t10k-labels-idx1-ubyte.gz", 8)
    return {"labels": labels.astype(np.int32), "pixel_sums": images.reshape(len(images), -1).sum(axis=1).astype(np.float32),
            "image_0": images[0].astype(np.float32) / 255, "image_9999": images[9999].astype(np.float32) / 255}


def image_files(rng):
    # Smooth gradients plus mild noise: realistic for resampling and JPEG, and every channel differs.
    y, x = np.mgrid[0:30, 0:40]
    rgb = np.stack([x * 6, y * 8, 255 - (x + y) * 3], axis=-1) + rng.integers(0, 20, size=(30, 40, 3))
    photo = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    photo.save(os.path.join(OUT, "photo.png"))
    # 4:4:4 (no chroma subsampling): decoders differ most in how they upsample chroma, which is not what is tested.
    photo.save(os.path.join(OUT, "photo.jpg"), quality=95, subsampling=0)
    grey = Image.fromarray(np.clip(x * 5 + y * 2, 0, 255).astype(np.uint8), "L")
    grey.save(os.path.join(OUT, "grey.png"))
    to_tensor = transforms.ToTensor()
    imagenet = transforms.Compose([transforms.Resize(20), transforms.CenterCrop(16), transforms.ToTensor(),
                                   transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    return {"png": to_tensor(Image.open(os.path.join(OUT, "photo.png")).convert("RGB")),
            "png_imagenet": imagenet(Image.open(os.path.join(OUT, "photo.png")).convert("RGB")),
            "jpg": to_tensor(Image.open(os.path.join(OUT, "photo.jpg")).convert("RGB")),
            "grey": to_tensor(Image.open(os.path.join(OUT, "grey.png")).convert("L"))}


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261202)
    meta = {"torch": torch.__version__, "source": "tests/reference/make_data_fixtures.py"}
    for name, tensors in (("idx_reference.safetensors", idx_files(rng)), ("fashion_mnist_reference.safetensors", fashion_mnist()),
                          ("images_reference.safetensors", image_files(rng))):
        tensors = {k: (v.numpy() if torch.is_tensor(v) else v) for k, v in tensors.items()}
        size = write_safetensors(os.path.join(OUT, name), tensors, meta)
        print(f"wrote {name}: {len(tensors)} tensors, {size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
