#!/usr/bin/env bash
# ferrax (eager and jit) beside JAX and PyTorch on the workloads of ../shared/bench, in one run.
#
#   bench/compare.sh                        every workload, every system, 2 s each
#   bench/compare.sh --only W2_grad,W3      a subset (names: `peers.py list`)
#   bench/compare.sh --systems torch        only some peers (jax_jit,jax_eager,torch,torch_compile,numpy)
#   bench/compare.sh --seconds 1            shorter timing per workload
#   bench/compare.sh --rounds 3             every measurement three times, interleaved
#   bench/compare.sh --write BENCHMARKS.md  also write the table there
#
# Installs JAX and PyTorch into bench/.venv from the Python package registry
# the first time (about 3 GB: PyPI's torch is the CUDA build, which runs on
# the CPU too). Every (system, workload) runs in its own process, one after
# the other per workload, so that the times compare within one sitting and
# each peak-memory figure belongs to one workload. With --rounds R the whole
# sequence runs R times and the table gives the median over the rounds, and
# each ratio's median with its range over the rounds, a ratio taken within a
# round (its two systems measured seconds apart): on a shared machine one
# round alone can be off by a factor of two.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=2
rounds=1
only=""
systems="jax_jit,jax_eager,torch,torch_compile,numpy"
write=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --systems) systems=$2; shift 2 ;;
        --write) write=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

venv=${FERRAX_BENCH_VENV:-$here/.venv}
py=$venv/bin/python
if ! "$py" -c "import jax, torch" 2>/dev/null; then
    echo "installing JAX and PyTorch into $venv (once; several minutes)" >&2
    python3 -m venv "$venv"
    "$py" -m pip install -q -U pip
    "$py" -m pip install -q -r "$here/requirements.txt"
fi

(cd "$root" && cargo build --release --quiet --example workload)
ferrax=$root/target/release/examples/workload

workloads=${only//,/ }
[[ -n $workloads ]] || workloads=$("$py" "$here/peers.py" list)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# A process that dies (out of memory, a crash in a peer) is recorded as skipped.
record() {
    local system=$1 workload=$2
    shift 2
    local line
    if line=$("$@" 2>/dev/null | tail -n 1) && [[ $line == "{"* ]]; then
        echo "$line" >>"$results"
    else
        printf '{"system": "%s", "workload": "%s", "skipped": "the process failed"}\n' "$system" "$workload" >>"$results"
    fi
}

if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
    echo "compare.sh: --rounds takes a positive whole number, got $rounds" >&2
    exit 2
fi
for ((round = 1; round <= rounds; round++)); do
    for w in $workloads; do
        if ((rounds > 1)); then echo "  $w (round $round of $rounds)" >&2; else echo "  $w" >&2; fi
        record ferrax "$w" "$ferrax" "$w" --seconds "$seconds"
        record ferrax_jit "$w" "$ferrax" "$w" --seconds "$seconds" --jit
        for s in ${systems//,/ }; do
            record "$s" "$w" "$py" "$here/peers.py" "$s" "$w" --seconds "$seconds"
        done
    done
done

"$py" "$here/report.py" "$results" ${write:+--write "$write"}
