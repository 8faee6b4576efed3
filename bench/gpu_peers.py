"""The GPU workloads of `ferrax/examples/gpu_bench.rs` in PyTorch and JAX, on
the same GPU, printed as the same JSON lines (one per measurement).

    python3 bench/gpu_peers.py [--seconds S] [--only NAME,...] [--systems torch,jax]

Also measures the device-to-device copy bandwidth (`copy_64M`, PyTorch's
`Tensor.copy_`), the reference for the elementwise workloads. f32 matrix
products run in full f32 in every system: PyTorch's default, and JAX with
`jax_default_matmul_precision = "highest"` (its GPU default is TF32).
"""

import argparse
import json
import statistics
import time


def timed(seconds, call, sync):
    for _ in range(3):
        call()
    sync()
    samples = []
    start = time.perf_counter()
    while len(samples) < 5 or (time.perf_counter() - start < seconds and len(samples) < 1000):
        t = time.perf_counter()
        call()
        sync()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def report(workload, system, seconds, **extra):
    print(json.dumps({"workload": workload, "system": system, "seconds": seconds, **extra}), flush=True)


N = 64 << 20
GB = 1e9
# --smoke: every code path on the CPU at small sizes, to test this script without a GPU.
SMOKE = False


def run_torch(seconds, wanted):
    import torch

    dev = torch.device("cpu" if SMOKE else "cuda:0")
    n, m = (N >> 8, 256) if SMOKE else (N, 4096)
    torch.backends.cuda.matmul.allow_tf32 = False
    sync = (lambda: None) if SMOKE else torch.cuda.synchronize
    for name, dtype in [("matmul_f32_4096", torch.float32), ("matmul_bf16_4096", torch.bfloat16)]:
        if wanted(name):
            a = torch.randn(m, m, device=dev).to(dtype)
            b = torch.randn(m, m, device=dev).to(dtype)
            t = timed(seconds, lambda: torch.matmul(a, b), sync)
            report(name, "torch", t, tflops=2 * m**3 / t / 1e12)
    if wanted("copy_64M") or wanted("tanh_64M") or wanted("add_64M"):
        x = torch.randn(n, device=dev)
        y = torch.randn(n, device=dev)
        out = torch.empty_like(x)
        t = timed(seconds, lambda: out.copy_(x), sync)
        report("copy_64M", "torch", t, gbps=8 * n / t / GB)
        t = timed(seconds, lambda: torch.tanh(x), sync)
        report("tanh_64M", "torch", t, gbps=8 * n / t / GB)
        t = timed(seconds, lambda: x + y, sync)
        report("add_64M", "torch", t, gbps=12 * n / t / GB)

    def mlp(batch):
        g = torch.Generator(device="cpu").manual_seed(0)
        shapes = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]
        p = [
            (torch.randn(*s, generator=g) * 0.05 if len(s) == 2 else torch.zeros(*s)).to(dev).requires_grad_()
            for s in shapes
        ]
        x = torch.randn(batch, 784, generator=g).to(dev)
        labels = torch.tensor([(i * 7) % 10 for i in range(batch)], device=dev)
        y = torch.nn.functional.one_hot(labels, 10).float()
        return p, x, y

    def loss_fn(p, x, y):
        h1 = torch.tanh(x @ p[0] + p[1])
        h2 = torch.tanh(h1 @ p[2] + p[3])
        z = h2 @ p[4] + p[5]
        return (torch.logsumexp(z, 1) - (y * z).sum(1)).mean()

    for batch in (256, 4096):
        name = f"W2_grad_{batch}"
        if wanted(name):
            p, x, y = mlp(batch)

            def step():
                loss = loss_fn(p, x, y)
                return loss, torch.autograd.grad(loss, p)

            report(name, "torch eager", timed(seconds, step, sync))
    if wanted("W3"):
        p0, x, y = mlp(256)

        def train():
            p = [q.detach().clone().requires_grad_() for q in p0]
            for _ in range(100):
                g = torch.autograd.grad(loss_fn(p, x, y), p)
                with torch.no_grad():
                    p = [(q - 0.1 * gq).requires_grad_() for q, gq in zip(p, g)]
            return p

        report("W3", "torch eager", timed(seconds, train, sync))


def run_jax(seconds, wanted):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_default_matmul_precision", "highest")
    gpu = jax.devices("cpu" if SMOKE else "gpu")[0]
    n, m = (N >> 8, 256) if SMOKE else (N, 4096)
    key = jax.random.PRNGKey(0)

    def bench(f, *args):
        last = [None]

        def call():
            last[0] = f(*args)

        return timed(seconds, call, lambda: jax.block_until_ready(last[0]))

    for name, dtype in [("matmul_f32_4096", jnp.float32), ("matmul_bf16_4096", jnp.bfloat16)]:
        if wanted(name):
            a = jax.device_put(jax.random.normal(key, (m, m)).astype(dtype), gpu)
            b = jax.device_put(jax.random.normal(jax.random.PRNGKey(1), (m, m)).astype(dtype), gpu)
            t = bench(jax.jit(jnp.matmul), a, b)
            report(name, "jax jit", t, tflops=2 * m**3 / t / 1e12)
    if wanted("tanh_64M") or wanted("add_64M"):
        x = jax.device_put(jax.random.normal(key, (n,)), gpu)
        y = jax.device_put(jax.random.normal(jax.random.PRNGKey(1), (n,)), gpu)
        t = bench(jax.jit(jnp.tanh), x)
        report("tanh_64M", "jax jit", t, gbps=8 * n / t / GB)
        t = bench(jax.jit(jnp.add), x, y)
        report("add_64M", "jax jit", t, gbps=12 * n / t / GB)

    def mlp(batch):
        ks = jax.random.split(key, 4)
        p = [
            jax.random.normal(ks[0], (784, 512)) * 0.05,
            jnp.zeros(512),
            jax.random.normal(ks[1], (512, 512)) * 0.05,
            jnp.zeros(512),
            jax.random.normal(ks[2], (512, 10)) * 0.05,
            jnp.zeros(10),
        ]
        x = jax.random.normal(ks[3], (batch, 784))
        y = jax.nn.one_hot(jnp.array([(i * 7) % 10 for i in range(batch)]), 10)
        return jax.device_put(p, gpu), jax.device_put(x, gpu), jax.device_put(y, gpu)

    def loss_fn(p, x, y):
        h1 = jnp.tanh(x @ p[0] + p[1])
        h2 = jnp.tanh(h1 @ p[2] + p[3])
        z = h2 @ p[4] + p[5]
        return (jax.nn.logsumexp(z, 1) - (y * z).sum(1)).mean()

    for batch in (256, 4096):
        name = f"W2_grad_{batch}"
        if wanted(name):
            p, x, y = mlp(batch)
            report(name, "jax jit", bench(jax.jit(jax.value_and_grad(loss_fn)), p, x, y))
    if wanted("W3"):
        p0, x, y = mlp(256)

        @jax.jit
        def train(p):
            def body(_, p):
                g = jax.grad(loss_fn)(p, x, y)
                return [q - 0.1 * gq for q, gq in zip(p, g)]

            return jax.lax.fori_loop(0, 100, body, p)

        report("W3", "jax jit", bench(train, p0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--only", default=None)
    ap.add_argument("--systems", default="torch,jax")
    ap.add_argument("--smoke", action="store_true", help="run every path on the CPU at small sizes")
    a = ap.parse_args()
    global SMOKE
    SMOKE = a.smoke
    only = set(a.only.split(",")) if a.only else None

    def wanted(w):
        return only is None or w in only

    for system in a.systems.split(","):
        try:
            {"torch": run_torch, "jax": run_jax}[system](a.seconds, wanted)
        except Exception as e:  # one peer missing must not lose the other's figures
            print(json.dumps({"workload": "error", "system": system, "error": repr(e)}), flush=True)


if __name__ == "__main__":
    main()
