#!/usr/bin/python3
"""Rebuilds flowlab's MLP from the weights stored in a results file, with NumPy and h5py only (no torch, no
flowlab), integrates the stored noise x0 with Euler, and compares with the samples flowlab stored for each Euler
row. Usage: check_stored_model.py FILE.h5. Exits 1 when a sample differs by more than 1e-5."""
import sys

import h5py
import numpy as np


def activation(name):
    if name == "relu":
        return lambda h: np.maximum(h, 0)
    if name == "gelu":
        from math import erf, sqrt
        verf = np.vectorize(erf)
        return lambda h: 0.5 * h * (1 + verf(h / sqrt(2)))
    if name == "selu":
        a, s = 1.6732632423543772, 1.0507009873554805
        return lambda h: s * np.where(h > 0, h, a * (np.exp(h) - 1))
    return lambda h: h / (1 + np.exp(-h))  # silu


def sinusoidal(t, dim, max_frequency=1000.0):
    """flowlab's time features: (cos f_k t, sin f_k t), f_k geometric from pi to max_frequency, 2t - 1 if odd."""
    half = dim // 2
    t = t.reshape(-1, 1)
    parts = []
    if half > 0:
        k = np.arange(half, dtype=np.float64)
        f = np.full(1, np.pi) if half == 1 else np.pi * (max_frequency / np.pi) ** (k / (half - 1))
        args = t * f.astype(np.float32)[None, :]
        parts += [np.cos(args), np.sin(args)]
    if dim % 2:
        parts.append(2 * t - 1)
    return np.concatenate(parts, axis=1)


def mlp(weights, params):
    act = activation(params["activation"])
    depth, time_dim = int(params["depth"]), int(params["time_dim"])
    embedding = params["time_embedding"]
    layers = [(weights[f"layers.{i}.weight"], weights[f"layers.{i}.bias"]) for i in range(depth)]
    w_out, b_out = weights["out.weight"], weights["out.bias"]

    def v(x, t):
        b = x.shape[0]
        tt = np.full(b, t, dtype=np.float32)
        if embedding == "raw":
            temb = tt.reshape(b, 1)
        elif embedding == "sinusoidal":
            temb = sinusoidal(tt, time_dim, float(params.get("max_frequency", "1000")))
        else:
            h = act(tt.reshape(b, 1) @ weights["time_in.weight"].T + weights["time_in.bias"])
            temb = h @ weights["time_out.weight"].T + weights["time_out.bias"]
        h = np.concatenate([x.reshape(b, -1), temb], axis=1).astype(np.float32)
        for w, bias in layers:
            h = act(h @ w.T + bias)
        return (h @ w_out.T + b_out).reshape(x.shape)

    return v


def main():
    f = h5py.File(sys.argv[1], "r")
    checked, failures = 0, []
    for tid, g in f["trials"].items():
        if g.attrs["status"] != "completed" or g["weights"].attrs["architecture"] != "mlp":
            continue
        params = {k[len("param:"):]: v for k, v in g["weights"].attrs.items() if k.startswith("param:")}
        weights = {k: np.asarray(d[...], dtype=np.float32) for k, d in g["weights"].items()}
        v = mlp(weights, params)
        x0 = g["samples/x0"][...].astype(np.float32)
        for name, row in g["rows"].items():
            if row.attrs["solver"] != "euler" or row.attrs["error"] != "":
                continue
            steps = int(row.attrs["steps"])
            x = x0.copy()
            for i in range(steps):
                t = np.float32(i / steps)
                x = x + np.float32(1.0 / steps) * v(x, t)
            stored = row["samples"][...]
            err = float(np.max(np.abs(x[: len(stored)] - stored)))
            checked += 1
            if not err <= 1e-5:
                failures.append(f"{tid} {row.attrs['label']}: max |numpy - flowlab| = {err:.3g}")
    if checked == 0:
        failures.append("no Euler row of an MLP trial to check")
    if failures:
        print("stored model check FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"stored model check: {checked} Euler rows reproduced to 1e-5 with NumPy")


if __name__ == "__main__":
    main()
