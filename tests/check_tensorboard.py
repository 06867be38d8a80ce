#!/usr/bin/env python3
"""Reads a TensorBoard run directory with TensorBoard's own EventAccumulator and checks its scalars and images.

    check_tensorboard.py LOGDIR [--spec SPEC.json] [--scalar TAG STEP VALUE]... [--image TAG STEP WxH]...
                         [--rtol R] [--atol A]

LOGDIR is one run: the directory whose events.out.tfevents.* files TensorBoard reads in name order (the events
purged by a SessionLog START, as TensorBoard purges them, are gone). What it finds is printed first, then each check.

SPEC.json ('-': standard input) gives, per tag, the exact list of steps TensorBoard shows, in its order (a step
there twice, as after a restart without a SessionLog START, is a mismatch), and optionally the values (scalars) or
the size (images, checked against the PNG's own header too):
    {"scalars": {"loss": {"steps": [0, 1, 2], "values": [1.0, 0.5, 0.33], "rtol": 1e-6}},
     "images": {"samples": {"steps": [5], "width": 96, "height": 96}},
     "rtol": 1e-6, "atol": 0, "only": true}
("only": no tag may be there beyond the spec's.)
--scalar and --image check one point each: that the tag has that step once, with that value or size (other steps
may be there too). Scalars are stored as float32: a value matches when |found - expected| <= atol + rtol * |expected|
(defaults: rtol 1e-6, atol 0; per tag in the spec, else top-level in the spec, else the options); NaN matches NaN.
Exit status: 0 when everything matches, 1 on a mismatch (each one printed), 2 on bad arguments or an unreadable spec.
"""
import argparse
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea


def load(logdir):
    """Every scalar and image TensorBoard keeps for LOGDIR, in its order: {tag: [(step, value)]} and
    {tag: [(step, (width, height))]}. A step can be there twice: a restart that TensorBoard did not purge."""
    # size_guidance 0 keeps every event (the default samples 10000 scalars and 4 images per tag).
    acc = ea.EventAccumulator(logdir, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0}, purge_orphaned_data=True)
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags[ea.SCALARS]}
    images = {}
    for t in tags[ea.IMAGES]:
        images[t] = []
        for e in acc.Images(t):
            png = e.encoded_image_string
            if png[:8] != b"\x89PNG\r\n\x1a\n":
                raise SystemExit(f"check_tensorboard: image '{t}' step {e.step} is not a PNG")
            width, height = struct.unpack(">II", png[16:24])  # IHDR, the first chunk
            if (width, height) != (e.width, e.height):
                raise SystemExit(f"check_tensorboard: image '{t}' step {e.step}: the event says {e.width}x{e.height}, "
                                 f"its PNG is {width}x{height}")
            images[t].append((e.step, (width, height)))
    return scalars, images


def show(points, limit=8):
    items = [f"{s}: {v}" for s, v in points]
    return "{" + ", ".join(items if len(items) <= limit else items[:limit // 2] + ["..."] + items[-limit // 2:]) + "}"


def at_step(points, step):
    """The value at `step`, or a mismatch's description when the step is missing or there more than once."""
    found = [v for s, v in points if s == step]
    return (found[0], None) if len(found) == 1 else (None, "none" if not found else f"{len(found)} points")


def close(found, expected, rtol, atol):
    if math.isnan(expected) or math.isnan(found):
        return math.isnan(expected) and math.isnan(found)
    return abs(found - expected) <= atol + rtol * abs(expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logdir")
    parser.add_argument("--spec", help="JSON spec file, '-' for standard input")
    parser.add_argument("--scalar", nargs=3, action="append", default=[], metavar=("TAG", "STEP", "VALUE"))
    parser.add_argument("--image", nargs=3, action="append", default=[], metavar=("TAG", "STEP", "WxH"))
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--atol", type=float, default=0.0)
    args = parser.parse_args()
    if not os.path.isdir(args.logdir):
        parser.error(f"{args.logdir} is not a directory")
    spec = {}
    if args.spec:
        try:
            spec = json.load(sys.stdin if args.spec == "-" else open(args.spec))
        except (OSError, ValueError) as e:
            parser.error(f"cannot read the spec {args.spec}: {e}")
    rtol, atol = spec.get("rtol", args.rtol), spec.get("atol", args.atol)
    try:
        args.scalar = [(t, int(s), float(v)) for t, s, v in args.scalar]
        args.image = [(t, int(s), size) for t, s, size in args.image]
    except ValueError as e:
        parser.error(f"--scalar TAG STEP VALUE / --image TAG STEP WxH: {e}")

    scalars, images = load(args.logdir)
    print(f"{args.logdir}: {len(scalars)} scalar tag(s), {len(images)} image tag(s)")
    for t, points in sorted(scalars.items()):
        print(f"  scalar {t}: {len(points)} point(s) {show(points)}")
    for t, points in sorted(images.items()):
        print(f"  image {t}: {len(points)} point(s) {show([(s, f'{w}x{h}') for s, (w, h) in points])}")

    failures = []
    if spec.get("only"):  # no tag beyond the spec's
        for kind, found, want in (("scalar", scalars, spec.get("scalars", {})), ("image", images, spec.get("images", {}))):
            extra = sorted(set(found) - set(want))
            if extra:
                failures.append(f"{kind} tags not in the spec: {extra}")
    for tag, want in spec.get("scalars", {}).items():
        found = scalars.get(tag, [])
        if [s for s, _ in found] != list(want["steps"]):
            failures.append(f"scalar {tag}: steps {[s for s, _ in found]}, expected {want['steps']}")
            continue
        for (step, value), expected in zip(found, want.get("values", [])):
            if not close(value, expected, want.get("rtol", rtol), want.get("atol", atol)):
                failures.append(f"scalar {tag} step {step}: {value}, expected {expected}")
    for tag, want in spec.get("images", {}).items():
        found = images.get(tag, [])
        if [s for s, _ in found] != list(want["steps"]):
            failures.append(f"image {tag}: steps {[s for s, _ in found]}, expected {want['steps']}")
            continue
        for step, (w, h) in found:
            if (w, h) != (want.get("width", w), want.get("height", h)):
                failures.append(f"image {tag} step {step}: {w}x{h}, expected {want.get('width', w)}x{want.get('height', h)}")
    for tag, step, expected in args.scalar:
        value, problem = at_step(scalars.get(tag, []), step)
        if problem or not close(value, expected, rtol, atol):
            failures.append(f"scalar {tag} step {step}: {problem or value}, expected {expected}")
    for tag, step, size in args.image:
        wh, problem = at_step(images.get(tag, []), step)
        if problem or f"{wh[0]}x{wh[1]}" != size:
            failures.append(f"image {tag} step {step}: {problem or f'{wh[0]}x{wh[1]}'}, expected {size}")

    for f in failures:
        print(f"MISMATCH {f}")
    checks = sum(len(w["steps"]) for k in ("scalars", "images") for w in spec.get(k, {}).values())
    checks += len(args.scalar) + len(args.image)
    print(f"check_tensorboard: {'FAILED' if failures else 'ok'}: {checks} point(s) checked, {len(failures)} mismatch(es)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
