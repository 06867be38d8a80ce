#!/usr/bin/python3
"""The training loop of benchmarks/bench_training.cpp as a plain PyTorch script (Debian's python3-torch): ring of
Gaussians, Gaussian noise, uniform t, rectified path, the flowlab mlp (sinusoidal time features of width 64,
4 x 256 SiLU), AdamW with warmup and cosine, gradient clipping, EMA, loss read every step. Prints steps/s."""
import math
import sys
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
STEPS, BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 200, 512


def sinusoidal(t, dim=64):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    args = (t[:, None] * 1000.0) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], 1)


layers, width, inp = [], 256, 2 + 64
for _ in range(4):
    layers += [torch.nn.Linear(inp, width), torch.nn.SiLU()]
    inp = width
model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 2))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
ema = [p.detach().clone() for p in model.parameters()]

start = time.perf_counter()
for step in range(STEPS):
    lr = 1e-3 * (step + 1) / 10 if step < 10 else 1e-3 * 0.5 * (1 + math.cos(math.pi * (step - 10) / (STEPS - 10)))
    for g in opt.param_groups:
        g["lr"] = lr
    k = torch.randint(8, (BATCH,))
    angle = k.float() * (2 * math.pi / 8)
    x1 = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * 4 + 0.3 * torch.randn(BATCH, 2)
    x0 = torch.randn(BATCH, 2)
    t = torch.rand(BATCH)
    tt = t[:, None]
    xt = (1 - tt) * x0 + tt * x1
    loss = (model(torch.cat([xt, sinusoidal(t)], 1)) - (x1 - x0)).pow(2).mean()
    last = loss.item()
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, model.parameters()):
            e.mul_(0.999).add_(p.detach(), alpha=0.001)
elapsed = time.perf_counter() - start
print(f"python: {STEPS / elapsed:.2f} steps/s ({elapsed:.2f} s for {STEPS} steps)")
