#!/usr/bin/python3
"""Reference run for the MLP parity test (tests/Nabla.Tests/Models/MlpParityTests.cs).

Trains a small MLP on scikit-learn's wine data (178 rows, 13 features, 3 classes) with PyTorch and records
everything the C# test needs to repeat the same run in Nabla: the train/validation split, the initial
weights, the order of the mini-batches in every epoch, the hyper-parameters, and PyTorch's losses and
accuracies. Preprocessing is the one Nabla's TabularPreprocessor does: standardise each feature with the
training split's mean and population standard deviation (float64), class labels as given.

Run with Debian's python3-torch (see ../../../shared/DATA.md):
    /usr/bin/python3 tests/reference/make_mlp_fixture.py [path/to/wine_data.csv]
The default path is $NABLA_TEST_DATA/sklearn/wine_data.csv (tests/data/fetch-test-data.sh puts it there).
Writes tests/Nabla.Tests/Fixtures/mlp_wine.safetensors.
"""
import json
import os
import sys

import numpy as np
import torch

from safetensors_io import write_safetensors

SEED = 1234
HIDDEN = [32, 16]
EPOCHS = 25
BATCH = 16
LR = 1e-2
WEIGHT_DECAY = 1e-2
VAL_FRACTION = 0.2


def main():
    default = os.path.join(os.environ.get("NABLA_TEST_DATA", os.path.expanduser("~/.cache/nabla-test-data")), "sklearn", "wine_data.csv")
    path = sys.argv[1] if len(sys.argv) > 1 else default
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    x_all, y_all = data[:, :-1], data[:, -1].astype(np.int64)
    n = len(data)

    rng = np.random.default_rng(SEED)
    order = rng.permutation(n)
    n_val = int(round(n * VAL_FRACTION))
    val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])

    mean = x_all[train_rows].mean(axis=0)
    std = x_all[train_rows].std(axis=0)  # population std, as Nabla's preprocessor
    std[std == 0] = 1
    x_train = torch.tensor((x_all[train_rows] - mean) / std, dtype=torch.float32)
    x_val = torch.tensor((x_all[val_rows] - mean) / std, dtype=torch.float32)
    y_train = torch.tensor(y_all[train_rows])
    y_val = torch.tensor(y_all[val_rows])

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    sizes = [x_train.shape[1]] + HIDDEN + [3]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    tensors = {}
    for name, p in model.state_dict().items():  # "0.weight", "2.weight", ... -> Nabla's "layers.0.weight"
        tensors["init/layers." + name] = p.detach().numpy().astype(np.float32)

    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    batch_orders, train_losses, val_losses, val_accs = [], [], [], []
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(SEED + epoch))
        batch_orders.append(perm.numpy().astype(np.int32))
        total = 0.0
        for start in range(0, len(perm), BATCH):
            idx = perm[start:start + BATCH]
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_losses.append(total / len(perm))
        with torch.no_grad():
            logits = model(x_val)
            val_losses.append(torch.nn.functional.cross_entropy(logits, y_val).item())
            val_accs.append((logits.argmax(1) == y_val).float().mean().item())

    tensors.update({
        "train_rows": train_rows.astype(np.int32),
        "val_rows": val_rows.astype(np.int32),
        "batch_orders": np.stack(batch_orders),
        "torch/train_loss": np.array(train_losses, dtype=np.float32),
        "torch/val_loss": np.array(val_losses, dtype=np.float32),
        "torch/val_accuracy": np.array(val_accs, dtype=np.float32),
    })
    metadata = {"hidden": json.dumps(HIDDEN), "epochs": str(EPOCHS), "batch_size": str(BATCH), "lr": str(LR),
                "weight_decay": str(WEIGHT_DECAY), "optimizer": "adamw", "seed": str(SEED), "torch": torch.__version__,
                "source": "tests/reference/make_mlp_fixture.py"}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures", "mlp_wine.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, tensors, metadata)
    print(f"wrote {out}: final val accuracy {val_accs[-1]:.4f}, val loss {val_losses[-1]:.4f}")


if __name__ == "__main__":
    main()
