#!/usr/bin/env bash
# The GPU check of the CUDA backend, in two halves, because the GPU machines
# have CUDA, PyTorch and JAX but no Rust toolchain and no network:
#
#   bash scripts/gpu-check.sh build   # here: the test and benchmark binaries, built
#                                     # with --features cuda, into target/gpu-check/
#   bash scripts/gpu-check.sh run     # on the GPU machine, from the repository root,
#                                     # with target/gpu-check/ carried over
#
# `run` prints nvidia-smi, runs the GPU tests with FERRAX_REQUIRE_GPU=1 (so
# they fail rather than skip), then ferrax's GPU benchmarks and the same
# workloads in PyTorch and JAX, and last one table with the targets. It
# writes its JSON lines and the table to $GPU_CHECK_OUT (default
# target/gpu-check/results). Well under 10 minutes on an H100.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/gpu-check

build() {
    mkdir -p "$dir"
    cargo build --release -p ferrax --features cuda --example gpu_bench
    cp target/release/examples/gpu_bench "$dir/"
    # The test binaries cargo builds, found by name in its JSON messages.
    cargo test --release -p ferrax --features cuda --test cuda --test prims --no-run --message-format=json \
        | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/test_" + m["target"]["name"])
' "$dir"
    strip "$dir"/gpu_bench "$dir"/test_* 2>/dev/null || true
    ls -la "$dir"
    du -sh "$dir"
}

# The folders holding the CUDA libraries ferrax opens at run time (the
# driver's libcuda, NVRTC, cuBLAS): the toolkit's, and those of the NVIDIA
# wheels PyTorch and JAX bring.
cuda_library_path() {
    local dirs=() d
    for d in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu; do
        [ -d "$d" ] && dirs+=("$d")
    done
    while IFS= read -r d; do dirs+=("$d"); done < <(
        python3 - <<'PY' 2>/dev/null || true
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
seen = set()
for r in roots:
    for f in glob.glob(os.path.join(r, "nvidia", "**", "lib*", "lib*.so*"), recursive=True):
        d = os.path.dirname(f)
        if d not in seen and any(k in f for k in ("nvrtc", "cublas")):
            seen.add(d)
            print(d)
PY
    )
    local IFS=:
    echo "${dirs[*]}"
}

run() {
    local out="${GPU_CHECK_OUT:-$dir/results}"
    mkdir -p "$out"
    nvidia-smi || true
    export LD_LIBRARY_PATH="$(cuda_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    export FERRAX_REQUIRE_GPU=1
    local status=0
    # Tests run where cargo runs them: in the package's folder.
    (cd ferrax && "../$dir/test_cuda" --test-threads=1) || status=1
    (cd ferrax && "../$dir/test_prims" gpu --test-threads=1) || status=1
    "$dir/gpu_bench" --seconds 1 | tee "$out/ferrax.jsonl" || status=1
    python3 bench/gpu_peers.py --seconds 1 | tee "$out/peers.jsonl" || status=1
    python3 bench/gpu_table.py "$out/ferrax.jsonl" "$out/peers.jsonl" | tee "$out/table.md"
    return $status
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    *)
        echo "usage: bash scripts/gpu-check.sh build|run" >&2
        exit 2
        ;;
esac
