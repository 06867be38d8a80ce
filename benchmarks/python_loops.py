#!/usr/bin/python3
"""The Python side of benchmarks/python_vs_flowlab.sh: the networks of flowlab's mlp and unet plugins written in
plain PyTorch (Debian's python3-torch, the same LibTorch and OpenBLAS as flowlab), the loops a researcher writes
around them, and sgemm at the shapes those networks multiply (the roofline). 1 thread on the CPU. Each mode prints
one JSON line. Also the Python side of benchmarks/gpu_check.py (any PyTorch, on a GPU). Modes:
  train_mlp WIDTH DEPTH ACT BATCH STEPS   plain Adam loop on the flowlab task (ring of Gaussians, Gaussian noise,
                                          uniform t, rectified path, MSE): forward + backward + optimizer only
  train_mlp_recipe WIDTH DEPTH ACT BATCH STEPS   the README's recipe: AdamW with warmup (10) and cosine, gradient
                                          clipping at 1, EMA 0.999 with warm-up, the loss read every step
  train_unet BATCH STEPS                  the same for the default U-Net on Fashion-MNIST 28x28
  sample SOLVER N NFE                     euler or rk4 from N Gaussian points, NFE network calls, inference mode,
                                          4x256 SiLU MLP
  sample_unet N NFE                       euler from N Gaussian images [N, 1, 28, 28], the default U-Net
  sgemm_train WIDTH DEPTH BATCH REPS      time of the sgemms of one training step (forward + backward), no other op
  sgemm_sample WIDTH DEPTH N REPS         time of the sgemms of one network call on N points: the faster of all N
                                          rows at once and 512 rows at a time (flowlab's blocked evaluation)
Flags, anywhere on the command line (for the train and sample modes; the JSON line then also names them):
  --device cpu|cuda                       where tensors live (default cpu; 1 thread only on cpu); on cuda every timed
                                          region ends with torch.cuda.synchronize(), and the data is made on the GPU
  --precision fp32|bf16|tf32              bf16: torch.autocast(bfloat16) around the forward and the loss (the loss
                                          in float32); tf32: CUDA's TF32 matmul and cuDNN modes (default fp32)
  --cuda-graph                            sample modes, cuda: the whole fixed-step loop captured once with
                                          torch.cuda.graph (after a warm-up on a side stream); only the replay is timed
"""
import contextlib
import gzip
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def flags(argv):
    """Removes --device D, --precision P and --cuda-graph from argv; returns (device, precision, cuda_graph, given)."""
    device, precision, graph, given, rest = "cpu", "fp32", False, False, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--device", "--precision") and i + 1 < len(argv):
            if a == "--device":
                device = argv[i + 1]
            else:
                precision = argv[i + 1]
            given, i = True, i + 2
            continue
        if a == "--cuda-graph":
            graph, given = True, True
        else:
            rest.append(a)
        i += 1
    if device not in ("cpu", "cuda") or precision not in ("fp32", "bf16", "tf32"):
        sys.exit(f"--device cpu|cuda, --precision fp32|bf16|tf32 (got {device}, {precision})")
    argv[:] = rest
    return device, precision, graph, given


DEVICE, PRECISION, CUDA_GRAPH, FLAGS_GIVEN = flags(sys.argv)
if DEVICE == "cpu":
    torch.set_num_threads(1)
elif not torch.cuda.is_available():
    sys.exit("--device cuda: torch.cuda.is_available() is False")
if PRECISION == "tf32":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
torch.manual_seed(0)
TIME_DIM = 64  # flowlab mlp: time_dim, as python_vs_flowlab.py sets it (the default before mlp 1.4.0)
CPU = 0.0  # CPU seconds of the last timed loop


def sync():
    """The end of a timed region: on a GPU, the work queued so far has finished."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def autocast(cache_enabled=None):
    """bf16: autocast to bfloat16 on DEVICE; otherwise nothing."""
    if PRECISION != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(DEVICE, dtype=torch.bfloat16, cache_enabled=cache_enabled)


class Sinusoidal(torch.nn.Module):
    """flowlab::sinusoidal_embedding: [cos(f_k t), sin(f_k t)], f_k = pi (max_f / pi)^(k / (half - 1))."""

    def __init__(self, dim, max_frequency=1000.0):
        super().__init__()
        half = dim // 2
        k = torch.arange(half, dtype=torch.float64)
        self.register_buffer("freqs", (math.pi * (max_frequency / math.pi) ** (k / (half - 1))).float())

    def forward(self, t):
        args = t[:, None] * self.freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], 1)


class Mlp(torch.nn.Module):
    """flowlab's architecture/mlp: MLP([x, emb(t)]), depth hidden layers of width, activation act."""

    def __init__(self, d, width, depth, act):
        super().__init__()
        self.emb = Sinusoidal(TIME_DIM)
        dims = [d + TIME_DIM] + [width] * depth
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = torch.nn.Linear(width, d)
        self.act = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu, "selu": F.selu}[act]

    def forward(self, x, t):
        h = torch.cat([x, self.emb(t)], 1)
        for layer in self.layers:
            h = self.act(layer(h))
        return self.out(h)


def groups(c):
    return math.gcd(c, 8)


class ResBlock(torch.nn.Module):
    def __init__(self, cin, cout, e):
        super().__init__()
        self.norm1, self.conv1 = torch.nn.GroupNorm(groups(cin), cin), torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.film = torch.nn.Linear(e, 2 * cout)
        self.norm2, self.conv2 = torch.nn.GroupNorm(groups(cout), cout), torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = torch.nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm, self.qkv, self.proj = torch.nn.GroupNorm(groups(c), c), torch.nn.Conv2d(c, 3 * c, 1), torch.nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), -1)
        return x + self.proj((v @ attn.transpose(1, 2)).reshape(b, c, h, w))


class Unet(torch.nn.Module):
    """flowlab's architecture/unet with its defaults: channels 32, mult 1,2,2, 1 ResNet block per level, attention
    in the middle only, time_dim 128."""

    def __init__(self, cin=1, channels=32, mult=(1, 2, 2), e=128):
        super().__init__()
        self.emb = Sinusoidal(e)
        self.time1, self.time2 = torch.nn.Linear(e, 4 * e), torch.nn.Linear(4 * e, e)
        self.conv_in = torch.nn.Conv2d(cin, channels, 3, padding=1)
        ch = [channels * m for m in mult]
        self.down, self.downsample, prev = torch.nn.ModuleList(), torch.nn.ModuleList(), channels
        for i, c in enumerate(ch):
            self.down.append(ResBlock(prev, c, e))
            prev = c
            if i + 1 < len(ch):
                self.downsample.append(torch.nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1, self.mid_attn, self.mid2 = ResBlock(prev, prev, e), Attention(prev), ResBlock(prev, prev, e)
        self.up, self.upsample = torch.nn.ModuleList(), torch.nn.ModuleList()
        for i in reversed(range(len(ch))):
            if i + 1 < len(ch):
                self.upsample.append(torch.nn.Conv2d(prev, ch[i], 3, padding=1))
                prev = ch[i]
            self.up.append(ResBlock(prev + ch[i], ch[i], e))
            prev = ch[i]
        self.norm_out, self.conv_out = torch.nn.GroupNorm(groups(prev), prev), torch.nn.Conv2d(prev, cin, 3, padding=1)

    def forward(self, x, t):
        emb = self.time2(F.silu(self.time1(self.emb(t))))
        h, skips = self.conv_in(x), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for j, block in enumerate(self.up):
            skip = skips[len(skips) - 1 - j]
            if j > 0:
                h = self.upsample[j - 1](F.interpolate(h, size=skip.shape[2:], mode="nearest"))
            h = block(torch.cat([h, skip], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def ring(n, modes=8, radius=4.0, std=0.3):
    """flowlab's dataset/ring_gaussians."""
    angle = torch.randint(modes, (n,), device=DEVICE).float() * (2 * math.pi / modes)
    return torch.stack([torch.cos(angle), torch.sin(angle)], 1) * radius + std * torch.randn(n, 2, device=DEVICE)


def fashion_mnist(path="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    with gzip.open(path) as f:
        raw = f.read()
    images = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(-1, 1, 28, 28).float() / 127.5 - 1
    return images.to(DEVICE)  # moved once


def train(model, batch_fn, steps):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    global CPU
    sync()
    cpu, start = time.thread_time(), time.perf_counter()
    for _ in range(steps):
        x1 = batch_fn()
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=DEVICE)
        tt = t.reshape(-1, *([1] * (x1.dim() - 1)))
        with autocast():
            loss = (model((1 - tt) * x0 + tt * x1, t).float() - (x1 - x0)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync()
    CPU = time.thread_time() - cpu
    return time.perf_counter() - start


def train_recipe(model, batch_fn, steps, warmup=10):
    """flowlab's engine recipe, as python_train.py had it: AdamW, warmup + cosine, clip_grad_norm_, EMA."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
    ema = [p.detach().clone() for p in model.parameters()]
    global CPU
    sync()
    cpu, start = time.thread_time(), time.perf_counter()
    for step in range(steps):
        lr = 1e-3 * (step + 1) / warmup if step < warmup else \
            1e-3 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        x1 = batch_fn()
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=DEVICE)
        tt = t[:, None]
        with autocast():
            loss = (model((1 - tt) * x0 + tt * x1, t).float() - (x1 - x0)).pow(2).mean()
        if not math.isfinite(loss.item()):
            raise RuntimeError("diverged")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, model.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    sync()
    CPU = time.thread_time() - cpu
    return time.perf_counter() - start


def solve(model, solver, x, nfe):
    """The fixed-step loop: Euler (NFE steps) or RK4 (NFE / 4 steps). Under bf16 the network answers in bf16, cast to
    x's float32 at once, as flowlab's engine does."""
    n = x.shape[0]
    full = lambda t: torch.full((n,), t, device=x.device)
    v = lambda x, t: model(x, t).to(x.dtype)  # a no-op in fp32
    if solver == "euler":
        h = 1.0 / nfe
        for i in range(nfe):
            x = x + h * v(x, full(i * h))
    else:  # rk4: 4 calls per step
        steps = nfe // 4
        h = 1.0 / steps
        for i in range(steps):
            t = i * h
            k1 = v(x, full(t))
            k2 = v(x + 0.5 * h * k1, full(t + 0.5 * h))
            k3 = v(x + 0.5 * h * k2, full(t + 0.5 * h))
            k4 = v(x + h * k3, full(t + h))
            x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def sample(model, solver, n, nfe, shape=(2,)):
    x = torch.randn(n, *shape, device=DEVICE)
    global CPU
    sync()
    cpu, start = time.thread_time(), time.perf_counter()
    with torch.inference_mode(), autocast():
        x = solve(model, solver, x, nfe)
    sync()
    CPU = time.thread_time() - cpu
    return time.perf_counter() - start


def sample_graph(model, solver, n, nfe, shape=(2,)):
    """The whole loop captured as one CUDA graph after an eager warm-up on a side stream; the replay is timed.
    Autocast's weight cache is off (cached casts made during capture would outlive it)."""
    x = torch.randn(n, *shape, device=DEVICE)
    global CPU
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode(), autocast(cache_enabled=False):
        solve(model, solver, x, nfe)
    torch.cuda.current_stream().wait_stream(side)
    sync()
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), autocast(cache_enabled=False):
        with torch.cuda.graph(graph):
            out = solve(model, solver, x, nfe)
    sync()
    cpu, start = time.thread_time(), time.perf_counter()
    graph.replay()
    sync()
    CPU = time.thread_time() - cpu
    s = time.perf_counter() - start
    if not torch.isfinite(out).all():
        raise RuntimeError("the replayed samples hold NaN or Inf")
    return s


def layer_dims(width, depth, d=2):
    dims = [d + TIME_DIM] + [width] * depth + [d]
    return list(zip(dims[:-1], dims[1:]))


def sgemm_time(products, reps):
    """Seconds for one pass over `products` (pairs of operands), the median of `reps` passes. Products of the same
    output shape share one output buffer (as a blocked evaluation reuses its freed blocks)."""
    buffers = {}
    outs = [buffers.setdefault((a.shape[0], b.shape[1]), torch.empty(a.shape[0], b.shape[1])) for a, b in products]
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for (a, b), o in zip(products, outs):
            torch.mm(a, b, out=o)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def extra():
    """The flags in the JSON line, when any was given (the CPU lines of python_vs_flowlab.py stay as they were)."""
    return {"device": DEVICE, "precision": PRECISION, "cuda_graph": CUDA_GRAPH} if FLAGS_GIVEN else {}


def timed_sample(model, solver, n, nfe, shape=(2,)):
    if CUDA_GRAPH:
        if DEVICE != "cuda":
            sys.exit("--cuda-graph needs --device cuda")
        return sample_graph(model, solver, n, nfe, shape)
    sample(model, solver, n, 4, shape)  # warm-up
    return sample(model, solver, n, nfe, shape)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "train_mlp":
        width, depth, act, batch, steps = int(args[0]), int(args[1]), args[2], int(args[3]), int(args[4])
        model = Mlp(2, width, depth, act).to(DEVICE)
        train(model, lambda: ring(batch), 20)  # warm-up
        s = train(model, lambda: ring(batch), steps)
        print(json.dumps({"mode": mode, "seconds": s, "steps": steps, "steps_per_s": steps / s, "cpu_seconds": CPU,
                          **extra()}))
    elif mode == "train_mlp_recipe":
        width, depth, act, batch, steps = int(args[0]), int(args[1]), args[2], int(args[3]), int(args[4])
        model = Mlp(2, width, depth, act).to(DEVICE)
        train_recipe(model, lambda: ring(batch), 20)
        s = train_recipe(model, lambda: ring(batch), steps)
        print(json.dumps({"mode": mode, "seconds": s, "steps": steps, "steps_per_s": steps / s, "cpu_seconds": CPU,
                          **extra()}))
    elif mode == "train_unet":
        batch, steps = int(args[0]), int(args[1])
        images = fashion_mnist()
        model = Unet().to(DEVICE)
        batch_fn = lambda: images.index_select(0, torch.randint(images.shape[0], (batch,), device=DEVICE))
        train(model, batch_fn, 3)
        s = train(model, batch_fn, steps)
        print(json.dumps({"mode": mode, "seconds": s, "steps": steps, "steps_per_s": steps / s, "cpu_seconds": CPU,
                          **extra()}))
    elif mode == "sample":
        solver, n, nfe = args[0], int(args[1]), int(args[2])
        model = Mlp(2, 256, 4, "silu").to(DEVICE).eval()
        s = timed_sample(model, solver, n, nfe)
        print(json.dumps({"mode": mode, "solver": solver, "seconds": s, "nfe": nfe, "nfe_per_s": nfe / s,
                          "cpu_seconds": CPU, **extra()}))
    elif mode == "sample_unet":
        n, nfe = int(args[0]), int(args[1])
        model = Unet().to(DEVICE).eval()
        s = timed_sample(model, "euler", n, nfe, (1, 28, 28))
        print(json.dumps({"mode": mode, "solver": "euler", "seconds": s, "nfe": nfe, "nfe_per_s": nfe / s,
                          "cpu_seconds": CPU, **extra()}))
    elif mode == "sgemm_train":
        width, depth, batch, reps = int(args[0]), int(args[1]), int(args[2]), int(args[3])
        products = []
        for i, (fan_in, fan_out) in enumerate(layer_dims(width, depth)):
            x, w, g = torch.randn(batch, fan_in), torch.randn(fan_out, fan_in), torch.randn(batch, fan_out)
            products.append((x, w.t()))  # forward: x W^T
            products.append((g.t(), x))  # dW = g^T x
            if i > 0:
                products.append((g, w))  # dx = g W (not needed for the input layer)
        s = sgemm_time(products, reps)
        flop = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)
        print(json.dumps({"mode": mode, "seconds": s, "gflop": flop / 1e9, "gflop_per_s": flop / s / 1e9}))
    elif mode == "sgemm_sample":
        width, depth, n, reps = int(args[0]), int(args[1]), int(args[2]), int(args[3])
        products = [(torch.randn(n, a), torch.randn(b, a).t()) for a, b in layer_dims(width, depth)]
        blocked = [(x[r:r + 512], w) for r in range(0, n, 512) for x, w in products]
        s = min(sgemm_time(products, reps), sgemm_time(blocked, reps))
        flop = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)
        print(json.dumps({"mode": mode, "seconds": s, "gflop": flop / 1e9, "gflop_per_s": flop / s / 1e9}))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
