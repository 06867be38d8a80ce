#!/usr/bin/python3
"""NumPy-written .npy and .npz files for the `array` dataset and `frechet` statistics tests ([importers]).

Run: /usr/bin/python3 tests/data/make_importers_reference.py   (writes tests/data/importers/; NumPy only)
Every array is a closed formula of np.arange, so tests/test_importers.cpp rebuilds the expected values itself:
  images_u8.npy       uint8 [10, 1, 3, 4], (arange * 7) % 256
  table_f4.npy        float32 [5, 3], arange / 4 - 1
  fortran_f8.npy      float64 [3, 4], arange(12) reshaped in C order, stored with fortran_order True
  labels_i8.npy       int64 [10], arange % 3
  complex.npy         complex128 [2]: an unsupported element type
  nhwc.npz            numpy.savez: x uint8 [10, 4, 3, 2] = (arange * 5) % 256, y int64 [10] = arange % 4
  nhwc_compressed.npz numpy.savez_compressed of the same arrays (deflated members)
  stats.npz           pytorch-fid's layout: mu [3] and sigma [3, 3] (float64) of the second set of case 0 of
                      frechet_reference.csv (np.cov, ddof 1), made with the same RandomState(0) draws
"""
import os

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "importers")
os.makedirs(out, exist_ok=True)


def path(name):
    return os.path.join(out, name)


np.save(path("images_u8.npy"), ((np.arange(10 * 1 * 3 * 4) * 7) % 256).astype(np.uint8).reshape(10, 1, 3, 4))
np.save(path("table_f4.npy"), (np.arange(15) / 4 - 1).astype(np.float32).reshape(5, 3))
np.save(path("fortran_f8.npy"), np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)))
np.save(path("labels_i8.npy"), (np.arange(10) % 3).astype(np.int64))
np.save(path("complex.npy"), np.array([1 + 2j, 3 - 1j]))
x = ((np.arange(10 * 4 * 3 * 2) * 5) % 256).astype(np.uint8).reshape(10, 4, 3, 2)
y = (np.arange(10) % 4).astype(np.int64)
np.savez(path("nhwc.npz"), x=x, y=y)
np.savez_compressed(path("nhwc_compressed.npz"), x=x, y=y)

# the same draws as make_frechet_reference.py's case 0
rng = np.random.RandomState(0)
a = rng.normal(size=(200, 3))
b = rng.normal(loc=[1.0, -0.5, 0.0], scale=[1.0, 2.0, 0.5], size=(300, 3))
np.savez(path("stats.npz"), mu=b.mean(0), sigma=np.cov(b, rowvar=False))
