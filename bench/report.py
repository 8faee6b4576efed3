"""The table of bench/compare.sh: one row per workload, one column per system.

    python report.py RESULTS.jsonl [--write FILE]

RESULTS holds one JSON line per (system, workload) and round from `workload`
(ferrax) and peers.py, the rounds in order. Prints markdown: the machine, the
medians, ferrax's time over the best peer's and over PyTorch eager's, and the
peak resident memory of each process. With several rounds a time is the
median over the rounds, and a ratio is the median of the ratios taken round
by round, with their range. With --write, FILE gets the same text.
"""

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

SYSTEMS = [
    ("ferrax", "ferrax eager"),
    ("ferrax_jit", "ferrax jit"),
    ("jax_jit", "JAX jit"),
    ("jax_eager", "JAX eager"),
    ("torch", "PyTorch eager"),
    ("torch_compile", "torch.compile"),
    ("numpy", "numpy"),
]
ISA = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile"]


HEADER = """# Benchmarks

The latest table of `bench/compare.sh`: ferrax (eager, and through `jit`)
against JAX (jit and eager) and PyTorch (eager, and `torch.compile` where it applies) on the
workloads of `../shared/bench`, measured in one run on one machine. Figures from
another machine or another run do not compare: rerun the script.

"""


def machine():
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    isa = " ".join(x for x in ISA if x in flags) or "unknown"
    hypervisor = ", virtual machine" if "hypervisor" in flags else ""
    return f"{model}; {os.cpu_count()} logical cores{hypervisor}; {isa}"


def versions():
    out = []
    for cmd, name in [(["rustc", "--version"], None)]:
        try:
            out.append(subprocess.run(cmd, capture_output=True, text=True).stdout.strip())
        except OSError:
            pass
    for module in ["jax", "torch"]:
        try:
            out.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return ", ".join(out)


def fmt_time(s):
    # Rounded to three figures before the unit is chosen, so that 999.6 µs
    # reads "1 ms" and not "1e+03 µs".
    for scale, unit in ((1e6, "µs"), (1e3, "ms")):
        v = float(f"{s * scale:.3g}")
        if v < 1000:
            return f"{v:g} {unit}"
    return f"{float(f'{s:.3g}'):g} s"


def merge(runs):
    """One record for the rounds of one (system, workload): the median time
    over the rounds, the largest peak memory, the first reason to skip."""
    timed = [r for r in runs if "median_s" in r]
    if not timed:
        return runs[0]
    out = dict(timed[0])
    out["median_s"] = statistics.median(r["median_s"] for r in timed)
    out["peak_rss_kb"] = max(r.get("peak_rss_kb", 0) for r in timed)
    return out


def times(runs):
    """The median time of each round (None where it was skipped)."""
    return [r.get("median_s") for r in runs]


def ratio(mine, theirs):
    """The ratio of two systems' times (`times`) round by round: "median"
    for one round, "median (min–max)" for several; "" where either is missing."""
    values = [a / b for a, b in zip(mine, theirs) if a and b]
    if not values:
        return ""
    mid = f"{statistics.median(values):.2f}"
    return mid if len(values) == 1 else f"{mid} ({min(values):.2f}–{max(values):.2f})"


def main():
    args = sys.argv[1:]
    runs = {}
    order = []
    with open(args[0]) as f:
        for line in f:
            r = json.loads(line)
            if r["workload"] not in runs:
                order.append(r["workload"])
            runs.setdefault(r["workload"], {}).setdefault(r["system"], []).append(r)
    rows = {w: {k: merge(v) for k, v in systems.items()} for w, systems in runs.items()}
    rounds = max(len(v) for systems in runs.values() for v in systems.values())
    present = [(k, name) for k, name in SYSTEMS if any(k in rows[w] for w in order)]
    how = "each system and workload in its own process, one after the other"
    if rounds > 1:
        how += f"; the median over {rounds} rounds, and each ratio's median and range over the rounds"
    lines = [
        f"Machine: {machine()}. Measured {datetime.date.today()} with {versions()}.",
        "",
        f"Median time of one call ({how}).",
        "",
        "| workload | " + " | ".join(name for _, name in present)
        + " | eager ÷ best peer | eager ÷ PyTorch | jit ÷ JAX jit |",
        "|---" * (len(present) + 4) + "|",
    ]
    notes = set()
    for w in order:
        r = rows[w]
        cells = []
        for k, _ in present:
            x = r.get(k)
            if x is None:
                cells.append("")
            elif "skipped" in x:
                cells.append("—")
                notes.add(f"{k} {w}: {x['skipped']}")
            else:
                cells.append(fmt_time(x["median_s"]))
        by_round = {k: times(v) for k, v in runs[w].items()}
        mine = by_round.get("ferrax", [])
        # The best peer of each round: the fastest system other than ferrax.
        peers = [v for k, v in by_round.items() if not k.startswith("ferrax")]
        fastest = [min((t for t in ts if t), default=None) for ts in zip(*peers)]
        best = ratio(mine, fastest)
        vs_torch = ratio(mine, by_round.get("torch", []))
        vs_jax = ratio(by_round.get("ferrax_jit", []), by_round.get("jax_jit", []))
        lines.append(f"| {w} | " + " | ".join(cells) + f" | {best} | {vs_torch} | {vs_jax} |")
    lines += [
        "",
        "Peak resident memory of the process during the timed calls, MB (in brackets: before them,"
        " after imports and inputs).",
        "",
        "| workload | " + " | ".join(name for _, name in present) + " |",
        "|---" * (len(present) + 1) + "|",
    ]
    for w in order:
        cells = []
        for k, _ in present:
            x = rows[w].get(k)
            if x is None or "peak_rss_kb" not in x:
                cells.append("")
            else:
                cells.append(f"{x['peak_rss_kb'] / 1024:.0f} ({x['rss_before_kb'] / 1024:.0f})")
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Not measured:", ""] + [f"- {n}" for n in sorted(notes)]
    text = "\n".join(lines) + "\n"
    print(text)
    if "--write" in args:
        with open(args[args.index("--write") + 1], "w") as f:
            f.write(HEADER + text)


if __name__ == "__main__":
    main()
