#!/usr/bin/python3
"""Driver of benchmarks/gpu_check.sh: flowlab (`flowlab run`, its real training loop and evaluation, read back from
the results file) against the same networks in plain PyTorch (python_loops.py, run with this same python), on one
GPU, in fp32 and bf16, sampling eagerly and replayed from a CUDA graph. One experiment per network, its sweep over
train.precision x eval.cuda_graph, so each network costs one `flowlab run`; 1 repetition, short warm-ups.
  4x256 SiLU MLP on ring_gaussians: batch 4096, plain Adam; Euler (100 steps) and RK4 (25 steps) from 100 000 points
  U-Net (the default) on Fashion-MNIST 28x28: batch 128, plain Adam; Euler (20 steps) from 1000 images
Writes OUT_DIR/gpu_check.md (a header line and the table: work | precision | cuda graph | flowlab | Python | ratio)
and OUT_DIR/gpu_check.json (the raw numbers), both rewritten after every run so that a cut-off run leaves what it
measured; prints the table. A failing flowlab trial or Python run puts its error in its cell and the rest goes on;
the exit status is 1 when anything failed.
Usage: gpu_check.py BUILD_DIR OUT_DIR [--quick] [--device cuda|cpu] [--budget SECONDS]
  --quick    a few steps and samples (a test of the script, not a measurement)
  --device   cuda (default; devices: [cuda:0]) or cpu (devices: [cpu], 1 thread, no CUDA-graph axis)
  --budget   seconds after which the runs left are skipped (marked in their cells); default 210 on cuda, none on cpu
"""
import datetime
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py


def parse_args(argv):
    pos, quick, device, budget = [], False, "cuda", None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--quick":
            quick = True
        elif a in ("--device", "--budget") and i + 1 < len(argv):
            if a == "--device":
                device = argv[i + 1]
            else:
                budget = float(argv[i + 1])
            i += 1
        elif a.startswith("-"):
            sys.exit(__doc__)
        else:
            pos.append(a)
        i += 1
    if len(pos) != 2 or device not in ("cuda", "cpu"):
        sys.exit(__doc__)
    if budget is None:
        budget = 210.0 if device == "cuda" else 0.0
    return pos[0], pos[1], quick, device, budget


BUILD, OUT, QUICK, DEVICE, BUDGET = parse_args(sys.argv[1:])
HERE = os.path.dirname(os.path.abspath(__file__))
FLOWLAB = os.path.join(BUILD, "bin", "flowlab")
LOOPS = os.path.join(HERE, "python_loops.py")
ENV = dict(os.environ, FLOWLAB_PLUGIN_PATH="")
if DEVICE == "cpu":
    ENV["OMP_NUM_THREADS"] = "1"
CUDA = DEVICE == "cuda"
PRECISIONS = ["fp32", "bf16"]
GRAPHS = [False, True] if CUDA else [False]
# Seconds one command may take (the budget, when set, cuts them shorter).
FLOWLAB_TIMEOUT, PYTHON_TIMEOUT = (150, 60) if CUDA else (1800, 900)

MLP_STEPS, MLP_SAMPLES = (30, 2000) if QUICK else (300, 100000)
UNET_STEPS, UNET_SAMPLES = (5, 16) if QUICK else (100, 1000)
MLP_BATCH, UNET_BATCH = 4096, 128
PLAIN = "lr: 1.0e-3, warmup: 0, schedule: constant, ema: 0, grad_clip: 0, log_every: 100, checkpoint_every: 0"
GRID = "train.precision: [fp32, bf16]" + (", eval.cuda_graph: [false, true]" if CUDA else "")
HEAD = f"""devices: [{'cuda:0' if CUDA else 'cpu'}]
{'' if CUDA else 'threads: 1' + chr(10)}"""
EXPERIMENTS = {
    "mlp": f"""name: gpu_check_mlp
{HEAD}data: {{dataset: ring_gaussians}}
model: {{architecture: {{name: mlp, params: {{width: 256, depth: 4, activation: silu}}}}}}
train: {{steps: {MLP_STEPS}, batch_size: {MLP_BATCH}, {PLAIN}}}
eval: {{samples: {MLP_SAMPLES}, metrics: [], solvers: [{{solver: euler, steps: [100]}}, {{solver: rk4, steps: [25]}}]}}
sweep: {{grid: {{{GRID}}}}}
""",
    "unet": f"""name: gpu_check_unet
{HEAD}data: {{dataset: fashion_mnist}}
model: {{architecture: unet}}
train: {{steps: {UNET_STEPS}, batch_size: {UNET_BATCH}, {PLAIN}}}
eval: {{samples: {UNET_SAMPLES}, metrics: [], solvers: [{{solver: euler, steps: [20]}}]}}
sweep: {{grid: {{{GRID}}}}}
""",
}
# The table's works: key, network, label, unit, kind (train, or the flowlab eval row's solver), Python arguments.
WORKS = [
    ("train_mlp", "mlp", f"training, 4x256 SiLU MLP, batch {MLP_BATCH}, plain Adam", "steps/s", "train",
     ["train_mlp", "256", "4", "silu", str(MLP_BATCH), str(MLP_STEPS)]),
    ("euler_mlp", "mlp", f"Euler sampling, 4x256 MLP, {MLP_SAMPLES} points x 100 NFE", "NFE/s", "euler",
     ["sample", "euler", str(MLP_SAMPLES), "100"]),
    ("rk4_mlp", "mlp", f"RK4 sampling, 4x256 MLP, {MLP_SAMPLES} points x 25 steps (100 NFE)", "NFE/s", "rk4",
     ["sample", "rk4", str(MLP_SAMPLES), "100"]),
    ("train_unet", "unet", f"training, U-Net on Fashion-MNIST 28x28, batch {UNET_BATCH}, plain Adam", "steps/s",
     "train", ["train_unet", str(UNET_BATCH), str(UNET_STEPS)]),
    ("euler_unet", "unet", f"Euler sampling, U-Net, {UNET_SAMPLES} images x 20 NFE", "NFE/s", "euler",
     ["sample_unet", str(UNET_SAMPLES), "20"]),
]
STEPS = {"mlp": MLP_STEPS, "unet": UNET_STEPS}

T0 = time.time()
WORK = tempfile.mkdtemp(prefix="gpu_check_")
flowlab = {}   # (key, precision, graph) -> {"value": rate} or {"error": text}, plus what the trial recorded
python = {}    # the same for python_loops.py
runs = []      # every command: what ran, how long, its exit status, the tail of its output
failures = []
header = {}


def remaining():
    """Seconds left in the budget (None: no budget)."""
    return None if BUDGET <= 0 else BUDGET - (time.time() - T0)


def timeout_for(limit):
    left = remaining()
    return limit if left is None else max(1.0, min(limit, left))


def one_line(text, width=160, first=False):
    """The last line of a program's output (Python's exception), or the first of an error message (LibTorch's
    c10::Error puts its stack below it)."""
    lines = [l.strip() for l in (text or "").strip().splitlines() if l.strip()]
    line = (lines[0] if first else lines[-1]) if lines else "(no output)"
    return line if len(line) <= width else line[:width - 3] + "..."


def command(args, timeout):
    """Runs args; returns (exit status or None on a timeout, stdout, stderr), recorded in `runs`."""
    start = time.time()
    try:
        # A session of its own: on a timeout the whole group goes (flowlab's workers too, not left on the GPU).
        p = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            rc, err = None, (err or "") + f"\ntimed out after {timeout:.0f} s"
    except OSError as e:
        rc, out, err = -1, "", str(e)
    runs.append({"args": args, "seconds": time.time() - start, "rc": rc, "stdout_tail": out[-2000:],
                 "stderr_tail": err[-2000:]})
    print(f"[{time.time() - T0:5.0f} s] {'ok' if rc == 0 else 'FAILED'} ({time.time() - start:.1f} s): "
          f"{' '.join(os.path.basename(a) if i < 2 else a for i, a in enumerate(args))}", file=sys.stderr)
    return rc, out, err


def attr(group, name, default=""):
    if name not in group.attrs:
        return default
    v = group.attrs[name]
    if isinstance(v, bytes):
        return v.decode()
    return v.item() if hasattr(v, "item") else v


def trial_groups(out):
    """The trial groups of the results file, and of the per-trial files beside it for trials it lacks (a run cut
    off before its last merge)."""
    found = {}
    for path in [out] + sorted(glob.glob(os.path.join(out + ".trials", "**", "*.h5"), recursive=True)):
        if not os.path.exists(path):
            continue
        try:
            with h5py.File(path, "r") as f:
                for name, g in f.get("trials", {}).items():
                    if name not in found:
                        found[name] = read_trial(name, g)
        except (OSError, KeyError, ValueError) as e:
            found.setdefault(path, {"id": path, "read_error": str(e)})
    return list(found.values())


def read_trial(name, g):
    t = {"id": name}
    for k in ("status", "error", "device", "precision", "cuda_graph", "sweep:train.precision", "sweep:eval.cuda_graph"):
        t[k] = str(attr(g, k))
    t["train_seconds"] = float(attr(g, "train_seconds", float("nan")))
    t["eval"] = []
    if "eval" in g:
        for row in g["eval"][:]:
            t["eval"].append({k: (row[k].decode() if isinstance(row[k], bytes) else row[k].item())
                              for k in ("solver", "steps", "nfe", "seconds", "error")})
    return t


def run_flowlab(net):
    yaml = os.path.join(WORK, net + ".yaml")
    out = os.path.join(WORK, net + ".h5")
    with open(yaml, "w") as f:
        f.write(EXPERIMENTS[net])
    cells = [(k, p, g) for k, n, *_ in WORKS if n == net for p in PRECISIONS for g in GRAPHS]
    left = remaining()
    if left is not None and left < 5:
        for c in cells:
            flowlab[c] = {"error": "skipped: out of the time budget"}
        return
    rc, stdout, stderr = command([FLOWLAB, "run", yaml, "--out", out], timeout_for(FLOWLAB_TIMEOUT))
    trials = trial_groups(out)
    header.setdefault("flowlab_trials", {})[net] = trials
    run_error = None if rc == 0 else f"flowlab run exit {rc}: {one_line(stderr or stdout)}"
    by_swept = {}
    for t in trials:
        if "read_error" in t:
            continue
        precision = t["sweep:train.precision"] or "fp32"
        graph = t["sweep:eval.cuda_graph"].lower() in ("true", "yes", "on", "1")
        by_swept[(precision, graph)] = t
    for key, n, label, unit, kind, _ in WORKS:
        if n != net:
            continue
        for p in PRECISIONS:
            for g in GRAPHS:
                # Training is the same in both CUDA-graph trials: the eager one's, else the other's.
                t = by_swept.get((p, g if kind != "train" else False)) or \
                    (by_swept.get((p, True)) if kind == "train" else None)
                flowlab[(key, p, g)] = cell_of_trial(t, net, kind, p, g, run_error)


def cell_of_trial(t, net, kind, precision, graph, run_error):
    if t is None:
        return {"error": run_error or "no trial in the results"}
    cell = {"trial": t["id"],
            "ran": {"precision": t["precision"], "cuda_graph": t["cuda_graph"], "device": t["device"]}}
    if kind == "train":
        if not t["train_seconds"] > 0:  # a trial that failed in its evaluation still timed its training
            cell["error"] = f"trial {t['status']}: {one_line(t['error'], first=True)}"
            return cell
        cell["value"] = STEPS[net] / t["train_seconds"]
        cell["seconds"] = t["train_seconds"]
    else:
        rows = [r for r in t["eval"] if r["solver"] == kind]
        if not rows:
            cell["error"] = f"no {kind} row" if t["status"] == "completed" else \
                f"trial {t['status']}: {one_line(t['error'], first=True)}"
            return cell
        r = rows[0]
        if r["error"]:
            cell["error"] = f"{kind}: {one_line(r['error'], first=True)}"
            return cell
        cell["value"] = r["nfe"] / r["seconds"]
        cell["seconds"], cell["nfe"] = r["seconds"], r["nfe"]
    # What ran must be what was asked: otherwise the comparison is not the one in the table.
    want_graph = "on" if graph and kind != "train" else None
    if t["precision"] != precision or (want_graph and t["cuda_graph"] != want_graph) or \
            (kind != "train" and not graph and t["cuda_graph"] == "on"):
        cell["error"] = f"the trial ran precision={t['precision']}, cuda_graph={t['cuda_graph']}"
    return cell


def run_python(key, args, precision, graph):
    left = remaining()
    if left is not None and left < 3:
        python[(key, precision, graph)] = {"error": "skipped: out of the time budget"}
        return
    full = [sys.executable, LOOPS] + args + ["--device", DEVICE, "--precision", precision] + \
        (["--cuda-graph"] if graph else [])
    rc, stdout, stderr = command(full, timeout_for(PYTHON_TIMEOUT))
    if rc != 0:
        python[(key, precision, graph)] = {"error": f"exit {rc}: {one_line(stderr or stdout)}"}
        return
    try:
        r = json.loads(stdout.strip().splitlines()[-1])
        python[(key, precision, graph)] = {"value": r.get("steps_per_s") or r["nfe_per_s"], "seconds": r["seconds"],
                                           "output": r}
    except (ValueError, IndexError, KeyError) as e:
        python[(key, precision, graph)] = {"error": f"unreadable output ({e}): {one_line(stdout)}"}


def device_info():
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "device": DEVICE,
            "quick": QUICK, "python": sys.executable}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        if CUDA:
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception as e:  # noqa: BLE001 (the header is not worth aborting for)
        info["torch_error"] = str(e)
    try:
        info["flowlab"] = one_line(subprocess.run([FLOWLAB, "--version"], capture_output=True, text=True,
                                                  env=ENV, timeout=30).stdout)
    except (OSError, subprocess.TimeoutExpired) as e:
        info["flowlab"] = f"? ({e})"
    return info


def fmt(cell, unit):
    if cell is None:
        return "not run"
    if "error" in cell:
        text = ("%.1f %s, but " % (cell["value"], unit) if "value" in cell else "") + "error: " + cell["error"]
        return text.replace("|", "\\|")
    return f"{cell['value']:.1f} {unit}"


def rows():
    out = []
    for key, net, label, unit, kind, _ in WORKS:
        for p in PRECISIONS:
            for g in (GRAPHS if kind != "train" else [False]):
                f, q = flowlab.get((key, p, g)), python.get((key, p, g))
                ok = lambda c: c is not None and "error" not in c
                ratio = f["value"] / q["value"] if ok(f) and ok(q) else None
                out.append({"key": key, "work": label, "unit": unit, "precision": p,
                            "cuda_graph": ("on" if g else "off") if kind != "train" else None,
                            "flowlab": f, "python": q, "ratio": ratio})
    return out


def table():
    lines = ["| work | precision | cuda graph | flowlab | Python | ratio (flowlab/Python) |",
             "|---|---|---|---|---|---|"]
    for r in rows():
        lines.append(f"| {r['work']} | {r['precision']} | {r['cuda_graph'] or '-'} | {fmt(r['flowlab'], r['unit'])} | "
                     f"{fmt(r['python'], r['unit'])} | {'%.2f' % r['ratio'] if r['ratio'] is not None else '-'} |")
    return "\n".join(lines)


def header_line():
    h = header
    parts = [h.get("date", "?"), f"torch {h.get('torch', '?')}", f"CUDA {h.get('torch_cuda')}"]
    if CUDA:
        parts.append(f"GPU {h.get('gpu', '?')}")
    else:
        parts.append("CPU, 1 thread")
    parts.append(h.get("flowlab", "flowlab ?"))
    if QUICK:
        parts.append("--quick (not a measurement)")
    return "gpu_check: " + ", ".join(parts) + "; 1 repetition."


def write(final=False):
    os.makedirs(OUT, exist_ok=True)
    text = header_line() + "\n\n" + table() + "\n"
    if not final:
        text += "\n(partial: the check is still running or was cut off)\n"
    else:
        text += f"\n{time.time() - T0:.0f} s in all" + (f"; {len(failures)} failed: " + "; ".join(failures)
                                                          if failures else "") + ".\n"
    with open(os.path.join(OUT, "gpu_check.md"), "w") as f:
        f.write(text)
    raw = {"header": {k: v for k, v in header.items() if k != "flowlab_trials"},
           "settings": {"mlp_steps": MLP_STEPS, "mlp_batch": MLP_BATCH, "mlp_samples": MLP_SAMPLES,
                        "unet_steps": UNET_STEPS, "unet_batch": UNET_BATCH, "unet_samples": UNET_SAMPLES,
                        "budget_s": BUDGET, "experiments": EXPERIMENTS},
           "rows": rows(), "flowlab_trials": header.get("flowlab_trials", {}), "runs": runs, "failures": failures,
           "finished": final, "seconds": time.time() - T0}
    with open(os.path.join(OUT, "gpu_check.json"), "w") as f:
        json.dump(raw, f, indent=1, default=str)
    return text


def main():
    header.update(device_info())
    write()
    for net in EXPERIMENTS:
        run_flowlab(net)
        write()
        for key, n, label, unit, kind, args in WORKS:
            if n != net:
                continue
            for p in PRECISIONS:
                for g in (GRAPHS if kind != "train" else [False]):
                    run_python(key, args, p, g)
                    write()
    for r in rows():
        for side in ("flowlab", "python"):
            c = r[side]
            if c is None or "error" in c:
                where = f"{r['key']} {r['precision']}" + (f" graph {r['cuda_graph']}" if r["cuda_graph"] else "")
                failures.append(f"{side} {where}")
    text = write(final=True)
    print(text, end="")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(code)
