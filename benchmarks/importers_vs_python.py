"""Helper of benchmarks/importers_vs_python.sh (run by the venv's python; PIL and NumPy).

  importers_vs_python.py write DIR N   writes the first N Fashion-MNIST training images (Debian's dataset-fashion-mnist)
                                       as DIR/images/<label>/<index>.png (PIL), DIR/images.npy (uint8 [N, 1, 28, 28]),
                                       DIR/labels.npy (int64 [N]) and DIR/images.npz (numpy.savez: x, y)
  importers_vs_python.py time DIR R    decodes the same files with PIL (one image at a time, stacked into one array)
                                       and loads the .npy and .npz with NumPy, R times each; prints the best time of
                                       each and the pixel sum of what was read (to compare with flowlab's)
"""
import gzip
import os
import sys
import time

import numpy as np
from PIL import Image

FASHION = "/usr/share/datasets/fashion-mnist"


def write(out, n):
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n].astype(np.int64)
    for c in range(10):
        os.makedirs(os.path.join(out, "images", str(c)), exist_ok=True)
    for i, (img, c) in enumerate(zip(images, labels)):
        Image.fromarray(img).save(os.path.join(out, "images", str(c), f"{i:05d}.png"))
    np.save(os.path.join(out, "images.npy"), images[:, None])
    np.save(os.path.join(out, "labels.npy"), labels)
    np.savez(os.path.join(out, "images.npz"), x=images[:, None], y=labels)


def files(out):
    root = os.path.join(out, "images")
    return [os.path.join(root, c, f) for c in sorted(os.listdir(root)) for f in sorted(os.listdir(os.path.join(root, c)))]


def pil(out):
    return np.stack([np.asarray(Image.open(p).convert("L")) for p in files(out)])


def best(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def timing(out, repeats):
    for name, fn in (("PIL (PNG folder)", lambda: pil(out)),
                     ("NumPy np.load (.npy)", lambda: np.load(os.path.join(out, "images.npy"))),
                     ("NumPy np.load (.npz)", lambda: np.load(os.path.join(out, "images.npz"))["x"])):
        t, x = best(fn, repeats)
        print(f"python  {name:28s} {len(x):6d} images  {t:8.4f} s  {len(x) / t:12.0f} images/s  "
              f"pixel sum {int(x.astype(np.int64).sum())}")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]))
    else:
        timing(sys.argv[2], int(sys.argv[3]))
