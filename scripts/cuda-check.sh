#!/usr/bin/env bash
# The CUDA backend checked without a GPU, as CI checks it: the `cuda`
# feature lints and builds (cudarc loads CUDA at run time, so nothing of
# CUDA is needed to build), and every kernel the backend generates is
# compiled to machine code by NVRTC, so a kernel that does not compile is
# caught here rather than on a GPU; and the kernels' formulas and index
# arithmetic run on the host against the CPU backend. NVRTC comes from NVIDIA's
# `nvidia-cuda-nvrtc` wheel on the Python package registry, pinned to
# 13.0.x (the CUDA of the GPU machines' driver), unpacked under target/.
set -euo pipefail
cd "$(dirname "$0")/.."

nvrtc=target/nvrtc-13.0
if ! ls "$nvrtc"/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        sudo=""
        [ "$(id -u)" != 0 ] && sudo=sudo
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get install -y -q --no-install-recommends python3-pip \
            || { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends python3-pip; }
    fi
    rm -rf "$nvrtc" && mkdir -p "$nvrtc"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$nvrtc" "nvidia-cuda-nvrtc==13.0.*"
    python3 -m zipfile -e "$nvrtc"/nvidia_cuda_nvrtc-*.whl "$nvrtc"
fi

cargo clippy -p ferrax --all-targets --features cuda -- -D warnings
cargo build --release -p ferrax --features cuda --example gpu_bench
# The index arithmetic of the kernels' launches against the CPU's layout
# kernels, and the kernels themselves built for the host by the C++
# compiler and run against the CPU backend.
cargo test --release -p ferrax --features cuda --lib cuda::
LD_LIBRARY_PATH="$PWD/$nvrtc/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" FERRAX_REQUIRE_NVRTC=1 \
    cargo test --release -p ferrax --features cuda --test cuda
