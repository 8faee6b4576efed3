#!/usr/bin/env bash
# Data-parallel training across MPI processes, checked as CI checks it:
# installs Open MPI and libclang (which rsmpi's bindings are generated with)
# from Debian's packages when they are missing, lints and builds the `mpi`
# feature, then under `mpirun -np 2`: the collectives and 20 data-parallel
# steps against one process on the whole batch, a rank that dies ending
# the job instead of hanging it, and `ferrax train` matching its threads.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
    packages=(libopenmpi-dev openmpi-bin libclang-dev)
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "mpi-check: installing ${packages[*]} needs root or sudo" >&2; exit 1; }
        sudo=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" \
        || { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"; }
fi

# Open MPI refuses to run as root unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe -np 2)

cargo clippy -p ferrax -p ferrax-cli --all-targets --features ferrax-cli/mpi,ferrax/mpi -- -D warnings
cargo build --release -p ferrax --features mpi --example mpi_check
cargo build --release -p ferrax-cli --features mpi

timeout 300 "${mpirun[@]}" target/release/examples/mpi_check
# Three ranks cut an operand into unequal parts; MPI's own all-reduce is
# what ranks on several machines use.
timeout 300 mpirun --oversubscribe -np 3 target/release/examples/mpi_check
FERRAX_MPI_SHM=0 timeout 300 "${mpirun[@]}" -x FERRAX_MPI_SHM target/release/examples/mpi_check

# A rank that exits before its first collective ends the job with an error.
status=0
timeout 120 "${mpirun[@]}" target/release/examples/mpi_check die >/dev/null 2>&1 || status=$?
case $status in
    0) echo "mpi-check: a job whose rank died reported success" >&2; exit 1 ;;
    124) echo "mpi-check: a job whose rank died hung" >&2; exit 1 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
accuracy() { grep '^test accuracy' "$1"; }
timeout 300 "${mpirun[@]}" target/release/ferrax train --epochs 3 --out "$tmp/mpi.safetensors" > "$tmp/mpi.txt"
target/release/ferrax train --epochs 3 --ranks 2 --out "$tmp/threads.safetensors" > "$tmp/threads.txt"
grep -q "2 data-parallel ranks" "$tmp/mpi.txt"
if [ "$(accuracy "$tmp/mpi.txt")" != "$(accuracy "$tmp/threads.txt")" ]; then
    echo "mpi-check: 2 MPI processes and 2 threads trained differently:" >&2
    cat "$tmp/mpi.txt" "$tmp/threads.txt" >&2
    exit 1
fi
echo "mpi-check: passed ($(accuracy "$tmp/mpi.txt") with 2 MPI processes, as with 2 threads)"
