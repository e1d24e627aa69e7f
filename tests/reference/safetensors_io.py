"""Writes safetensors files by hand (PyPI's safetensors is not installable here): an 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}} plus "__metadata__" strings, padded with spaces to 8
bytes, then the raw little-endian data. Shared by the fixture scripts in this folder."""
import json
import struct

import numpy as np


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, array in tensors.items():
        dtype = None
        if isinstance(array, tuple):  # (safetensors dtype, array of its bit patterns): for BF16, which numpy lacks
            dtype, array = array
        array = np.ascontiguousarray(array).reshape(np.shape(array))  # (ascontiguousarray makes 0-d arrays 1-d)
        dtype = dtype or {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32",
                          np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}[array.dtype]
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    return 8 + len(text) + offset
