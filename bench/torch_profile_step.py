#!/usr/bin/python3
"""Where PyTorch's ResNet-20 (or LeNet-5) training step goes, op by op: the step bench/kernels_peer.py times against
Nabla's (`bench vision`), after 5 untimed steps, under torch.autograd.profiler, for comparison with Nabla's
`bench vision --profile --threads T --only resnet20`.
Usage: /usr/bin/python3 bench/torch_profile_step.py [THREADS] [MODEL]   (MODEL 1 = ResNet-20, the default; 0 = LeNet-5)
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels_peer  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
model = int(sys.argv[2]) if len(sys.argv) > 2 else 1
torch.set_num_threads(threads)
step = kernels_peer.train_step(model, 64, 1)
for _ in range(5):
    step()
with torch.autograd.profiler.profile() as prof:
    for _ in range(10):
        step()
print(f"{threads} thread(s), 10 steps, batch 64; totals over the 10 steps")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
