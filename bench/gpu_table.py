"""Joins the JSON lines of `gpu_bench` (ferrax) and `gpu_peers.py` (PyTorch,
JAX) from one run into one markdown table, with the CUDA issue's targets.

    python3 bench/gpu_table.py FILE...
"""

import json
import sys


def load(paths):
    t = {}
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("workload") == "error":
                    print(f"note: {r['system']} failed: {r['error']}")
                    continue
                t[(r["workload"], r["system"])] = r
    return t


def fmt(s):
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def main():
    t = load(sys.argv[1:])
    sec = lambda w, s: t[(w, s)]["seconds"] if (w, s) in t else None
    print("| workload | system | time | rate |")
    print("|---|---|---|---|")
    for (w, s), r in sorted(t.items()):
        rate = f"{r['tflops']:.1f} TFLOP/s" if "tflops" in r else (f"{r['gbps']:.0f} GB/s" if "gbps" in r else "")
        print(f"| {w} | {s} | {fmt(r['seconds'])} | {rate} |")
    print()
    print("| target | measured | goal | met |")
    print("|---|---|---|---|")

    def target(what, value, goal, at_most):
        if value is None:
            print(f"| {what} | missing | {'≤' if at_most else '≥'} {goal} | — |")
            return
        ok = value <= goal if at_most else value >= goal
        print(f"| {what} | {value:.2f} | {'≤' if at_most else '≥'} {goal} | {'yes' if ok else 'NO'} |")

    def ratio(a, b):
        return a / b if a is not None and b is not None else None

    for dt in ("f32", "bf16"):
        w = f"matmul_{dt}_4096"
        target(f"matmul {dt} 4096²: ferrax ÷ torch throughput", ratio(sec(w, "torch"), sec(w, "ferrax")), 0.95, False)
    copy = t.get(("copy_64M", "torch"), {}).get("gbps")
    for w in ("tanh_64M", "add_64M"):
        got = t.get((w, "ferrax"), {}).get("gbps")
        target(f"{w}: ferrax bandwidth ÷ device copy", ratio(got, copy), 0.8, False)
    for b in (256, 4096):
        w = f"W2_grad_{b}"
        target(f"{w}: ferrax eager ÷ torch eager", ratio(sec(w, "ferrax eager"), sec(w, "torch eager")), 1.0, True)
        target(f"{w}: ferrax jit ÷ torch eager", ratio(sec(w, "ferrax jit"), sec(w, "torch eager")), 0.8, True)
        target(f"{w}: ferrax jit ÷ jax jit", ratio(sec(w, "ferrax jit"), sec(w, "jax jit")), 1.0, True)
    target("W3 100 steps: ferrax jit ÷ jax fori_loop", ratio(sec("W3", "ferrax jit"), sec("W3", "jax jit")), 1.0, True)


if __name__ == "__main__":
    main()
