"""The benchmark workloads of ../shared/bench in JAX and PyTorch, one per process.

    python peers.py SYSTEM WORKLOAD [--seconds S]
    python peers.py list

SYSTEM is jax_jit, jax_eager, torch or torch_compile. Prints one JSON line
with the median and minimum time of one call and the process's peak resident
memory during the timed calls, or {"skipped": reason} where the system has no
sensible form of the workload. Timing matches ferrax's `workload` example:
two warm-up calls (compilation happens there), then calls until S seconds
have passed and at least five; JAX results are waited for with
block_until_ready. Inputs are normal draws of the defined shapes and dtypes.
"""

import json
import sys
import time

WORKLOADS = [
    "W1", "W2_loss", "W2_grad", "W3", "W4_jacfwd", "W4_jacrev", "W5_hessian",
    "W5_hvp", "W6", "W7_f32", "W7_f64", "memcpy_1M", "exp_1M", "tanh_1M", "gelu_1M", "softplus_1M", "cheap8_1M",
    "exp_1M_f64", "tanh_1M_f64", "softplus_1M_f64",
    "conv1_fb", "conv2_fb", "conv3_fb", "cnn_digits", "cnn_large", "gpt_step", "rnn_scan",
]
# Issue 19's linear algebra, f64: la_OP_N is the factorisation or solve of an
# N x N matrix, la_OP_N_grad the value and gradient of a scalar function of
# it (solve: sum(solve(A, b)); cholesky: sum(L); eigh: sum(w) + sum(V^4);
# svd: sum(s) + sum(U^4), the fourth powers keeping the vectors' signs out).
# la_OP_BxN is a batch of B such matrices, forward only (qr: the reduced
# factorisation of general matrices).
LINALG = [f"la_{op}_{n}{g}" for op in ("solve", "cholesky", "eigh", "svd") for n in (256, 1024) for g in ("", "_grad")]
LINALG += [f"la_{op}_1024x16" for op in ("eigh", "svd", "qr")]
WORKLOADS += LINALG
# Issue 15's networks, f32, measured against PyTorch eager (its target). The
# convolutions are the larger CNN's three layers (3x3, padding 1), forward
# and backward to both operands; the CNN steps are one SGD step (loss,
# gradient, update) of conv-relu[-pool] stacks with a linear head.
CONVS = {"conv1_fb": (3, 32, 32), "conv2_fb": (32, 64, 16), "conv3_fb": (64, 128, 8)}
CNN = {"cnn_digits": (64, 1, 8, [16, 32], False), "cnn_large": (128, 3, 32, [32, 64, 128], True)}
# Issue 16's recurrent workload: loss and gradient through RNN_STEPS (1000)
# steps of an Elman cell, input 32, hidden 128, batch 32, f32; the loss is the
# mean square of every state. PyTorch runs the unrolled loop eagerly, JAX a
# jitted lax.scan.
RNN = (32, 32, 128)
# The _f64 kernels are the same functions of 2^20 f64.
KERNELS = ("memcpy_1M", "exp_1M", "tanh_1M", "gelu_1M", "softplus_1M", "cheap8_1M", "exp_1M_f64", "tanh_1M_f64",
           "softplus_1M_f64")
SYSTEMS = ["jax_jit", "jax_eager", "torch", "torch_compile", "numpy"]


class Skip(Exception):
    """This system has no sensible form of this workload."""


def memory_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def timed(call, seconds):
    call()
    call()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], times[0], len(times)


def inputs(workload):
    """numpy inputs of the workload's shapes, as in ../shared/bench/README.md."""
    import numpy as np

    rng = np.random.default_rng(0)
    f32 = np.float32
    if workload.startswith("W2") or workload == "W3":
        w = [(rng.normal(size=s) * 0.05).astype(f32) for s in [(784, 512), (512, 512), (512, 10)]]
        b = [np.zeros(n, f32) for n in (512, 512, 10)]
        x = rng.normal(size=(256, 784)).astype(f32)
        y = np.eye(10, dtype=f32)[rng.integers(0, 10, size=256)]
        return [w[0], b[0], w[1], b[1], w[2], b[2]], x, y
    if workload.startswith("W4"):
        w1, w2 = (rng.normal(size=(256, 256)) * 0.05 for _ in range(2))
        return w1, w2, rng.normal(size=256)
    if workload.startswith("W5"):
        a = rng.normal(size=(300, 200)) * 0.05
        return a, rng.normal(size=200), rng.normal(size=200)
    if workload == "W6":
        w = (rng.normal(size=128) * 0.05).astype(f32)
        x = rng.normal(size=(512, 128)).astype(f32)
        y = rng.integers(0, 2, size=512).astype(f32)
        return w, np.zeros((), f32), x, y
    if workload.startswith("W7"):
        dt = f32 if workload == "W7_f32" else np.float64
        return rng.normal(size=(1024, 1024)).astype(dt), rng.normal(size=(1024, 1024)).astype(dt)
    if workload in CONVS:
        c, o, hw = CONVS[workload]
        x = rng.normal(size=(128, c, hw, hw)).astype(f32)
        w = (rng.normal(size=(o, c, 3, 3)) * 0.1).astype(f32)
        return x, w, rng.normal(size=(128, o, hw, hw)).astype(f32)
    if workload in LINALG:
        size = workload.split("_")[2]
        batch, n = (int(s) for s in size.split("x")) if "x" in size else (None, int(size))
        a = rng.normal(size=(batch, n, n) if batch else (n, n))
        if "cholesky" in workload or "eigh" in workload:
            a = a @ np.swapaxes(a, -1, -2) / n + np.eye(n)
        elif "solve" in workload:
            a = a + n**0.5 * np.eye(n)
        return a, rng.normal(size=n)
    if workload == "rnn_scan":
        import os

        steps = int(os.environ.get("RNN_STEPS", "1000"))
        b, i, h = RNN
        p = [(rng.normal(size=(i, h)) * 0.1).astype(f32), (rng.normal(size=(h, h)) / h**0.5).astype(f32),
             np.zeros(h, f32)]
        return p, rng.normal(size=(steps, b, i)).astype(f32)
    if workload in CNN:
        n, c, hw, chans, pool_each = CNN[workload]
        x = rng.normal(size=(n, c, hw, hw)).astype(f32)
        params, cin = [], c
        for o in chans:
            params += [(rng.normal(size=(o, cin, 3, 3)) * (2 / (9 * cin)) ** 0.5).astype(f32), np.zeros(o, f32)]
            cin = o
        side = hw // (2 ** len(chans) if pool_each else 2)
        params += [(rng.normal(size=(cin * side * side, 10)) * 0.05).astype(f32), np.zeros(10, f32)]
        return params, x, rng.integers(0, 10, size=n)
    if workload.endswith("_f64"):
        return rng.normal(size=1 << 20)
    return rng.normal(size=1 << 20).astype(f32)


def jax_call(workload, jit):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    wrap = jax.jit if jit else (lambda f, **_: f)

    def ready(f):
        return lambda: jax.block_until_ready(f())

    if workload in CONVS or workload in CNN or workload == "gpt_step":
        raise Skip("issue 15's workloads are measured against PyTorch eager")
    if workload in LINALG:
        a, b = (jnp.asarray(t) for t in inputs(workload))
        op = workload.split("_")[1]
        forward = {
            "solve": lambda a: jnp.linalg.solve(a, b),
            "cholesky": jnp.linalg.cholesky,
            "eigh": jnp.linalg.eigh,
            "svd": lambda a: jnp.linalg.svd(a, full_matrices=False),
            "qr": jnp.linalg.qr,
        }[op]
        if not workload.endswith("_grad"):
            f = wrap(forward)
            return ready(lambda: f(a))
        scalar = {
            "solve": lambda a: jnp.sum(jnp.linalg.solve(a, b)),
            "cholesky": lambda a: jnp.sum(jnp.linalg.cholesky(a)),
            "eigh": lambda a: (lambda w, v: jnp.sum(w) + jnp.sum(v**4))(*jnp.linalg.eigh(a)),
            "svd": lambda a: (lambda u, s, vt: jnp.sum(s) + jnp.sum(u**4))(*jnp.linalg.svd(a, full_matrices=False)),
        }[op]
        f = wrap(jax.value_and_grad(scalar))
        return ready(lambda: f(a))
    if workload == "rnn_scan":
        p, xs = inputs(workload)
        p, xs = [jnp.asarray(a) for a in p], jnp.asarray(xs)
        h0 = jnp.zeros((RNN[0], RNN[2]), jnp.float32)

        def rnn_loss(p):
            def cell(h, x):
                h = jnp.tanh(x @ p[0] + h @ p[1] + p[2])
                return h, h

            return jnp.mean(jax.lax.scan(cell, h0, xs)[1] ** 2)

        f = wrap(jax.value_and_grad(rnn_loss))
        return ready(lambda: f(p))

    def mlp_loss(p, x, y):
        h1 = jnp.tanh(x @ p[0] + p[1])
        h2 = jnp.tanh(h1 @ p[2] + p[3])
        z = h2 @ p[4] + p[5]
        m = jax.lax.stop_gradient(z.max(axis=1, keepdims=True))
        lse = m[:, 0] + jnp.log(jnp.exp(z - m).sum(axis=1))
        return jnp.mean(lse - (y * z).sum(axis=1))

    if workload == "W1":
        f = lambda x1, x2: jnp.log(x1) + x1 * x2 - jnp.sin(x2)  # noqa: E731
        g = wrap(jax.value_and_grad(f, argnums=(0, 1)))
        x1, x2 = jnp.float32(2.0), jnp.float32(5.0)
        return ready(lambda: g(x1, x2))
    if workload.startswith("W2") or workload == "W3":
        p, x, y = inputs(workload)
        p, x, y = [jnp.asarray(a) for a in p], jnp.asarray(x), jnp.asarray(y)
        if workload == "W2_loss":
            f = wrap(mlp_loss)
            return ready(lambda: f(p, x, y))
        if workload == "W2_grad":
            f = wrap(jax.value_and_grad(mlp_loss))
            return ready(lambda: f(p, x, y))
        step = lambda p: [a - 0.1 * g for a, g in zip(p, jax.grad(mlp_loss)(p, x, y))]  # noqa: E731
        if jit:
            train = jax.jit(lambda p: jax.lax.fori_loop(0, 100, lambda i, p: step(p), p))
            return ready(lambda: train(p))

        def train_eager():
            q = p
            for _ in range(100):
                q = step(q)
            return q

        return ready(train_eager)
    if workload.startswith("W4"):
        w1, w2, x = (jnp.asarray(a) for a in inputs(workload))
        f = lambda x: jnp.tanh(w2 @ jnp.tanh(w1 @ x))  # noqa: E731
        j = wrap(jax.jacfwd(f) if workload == "W4_jacfwd" else jax.jacrev(f))
        return ready(lambda: j(x))
    if workload.startswith("W5"):
        a, x, v = (jnp.asarray(t) for t in inputs(workload))

        def f(x):
            z = a @ x
            return jnp.sum(jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z)))) + 0.5 * jnp.sum(x * x)

        if workload == "W5_hessian":
            h = wrap(jax.hessian(f))
            return ready(lambda: h(x))
        hv = wrap(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])
        return ready(lambda: hv(x, v))
    if workload == "W6":
        w, b, x, y = (jnp.asarray(t) for t in inputs(workload))

        def loss(p, xi, yi):
            z = xi @ p[0] + p[1]
            return jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z))) - yi * z

        per_example = wrap(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))
        return ready(lambda: per_example((w, b), x, y))
    if workload.startswith("W7"):
        a, b = (jnp.asarray(t) for t in inputs(workload))
        mm = wrap(jnp.matmul)
        return ready(lambda: mm(a, b))
    x = jnp.asarray(inputs(workload))
    op = {
        "memcpy_1M": jnp.copy,
        "exp_1M": jnp.exp,
        "tanh_1M": jnp.tanh,
        "gelu_1M": lambda x: jax.nn.gelu(x, approximate=True),
        "softplus_1M": lambda x: jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x))),
        "cheap8_1M": lambda x: -jnp.square(jnp.maximum(jnp.abs((x * 0.5 + 1) * x - 0.25), 0)),
    }[workload.removesuffix("_f64")]
    k = wrap(op)
    return ready(lambda: k(x))


def torch_call(workload, compiled):
    import torch

    torch.set_grad_enabled(True)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    maybe = torch.compile if compiled else (lambda f: f)

    def mlp_loss(p, x, y):
        h1 = torch.tanh(x @ p[0] + p[1])
        h2 = torch.tanh(h1 @ p[2] + p[3])
        z = h2 @ p[4] + p[5]
        m = z.max(dim=1, keepdim=True).values.detach()
        lse = m[:, 0] + torch.log(torch.exp(z - m).sum(dim=1))
        return (lse - (y * z).sum(dim=1)).mean()

    if workload == "W1":
        if compiled:
            raise Skip("a scalar workload: compilation has nothing to fuse")
        x1 = torch.tensor(2.0, requires_grad=True)
        x2 = torch.tensor(5.0, requires_grad=True)

        def call():
            v = torch.log(x1) + x1 * x2 - torch.sin(x2)
            return v, torch.autograd.grad(v, (x1, x2))

        return call
    if workload.startswith("W2") or workload == "W3":
        p, x, y = inputs(workload)
        p0, x, y = [t(a) for a in p], t(x), t(y)
        if workload == "W2_loss":
            f = maybe(mlp_loss)

            def loss_only():
                with torch.no_grad():
                    return f(p0, x, y)

            return loss_only
        p = [a.clone().requires_grad_(True) for a in p0]

        def loss_and_grad(p):
            v = mlp_loss(p, x, y)
            return v, torch.autograd.grad(v, p)

        if workload == "W2_grad":
            f = maybe(loss_and_grad)
            return lambda: f(p)
        g = maybe(loss_and_grad)

        def train():
            q = [a.clone().requires_grad_(True) for a in p0]
            for _ in range(100):
                _, gs = g(q)
                with torch.no_grad():
                    q = [(a - 0.1 * d).requires_grad_(True) for a, d in zip(q, gs)]
            return q

        return train
    if workload in CONVS or workload in CNN or workload == "gpt_step":
        if compiled:
            raise Skip("issue 15's workloads are measured against PyTorch eager")
        return torch_network(workload, t)
    if workload in LINALG:
        if compiled:
            raise Skip("linear algebra is measured against JAX jit and numpy")
        a, b = (t(x) for x in inputs(workload))
        op = workload.split("_")[1]
        forward = {
            "solve": lambda a: torch.linalg.solve(a, b),
            "cholesky": torch.linalg.cholesky,
            "eigh": torch.linalg.eigh,
            "svd": lambda a: torch.linalg.svd(a, full_matrices=False),
            "qr": torch.linalg.qr,
        }[op]
        if not workload.endswith("_grad"):
            def forward_only():
                with torch.no_grad():
                    return forward(a)

            return forward_only
        scalar = {
            "solve": lambda a: forward(a).sum(),
            "cholesky": lambda a: forward(a).sum(),
            "eigh": lambda a: (lambda w, v: w.sum() + (v**4).sum())(*forward(a)),
            "svd": lambda a: (lambda u, s, vt: s.sum() + (u**4).sum())(*forward(a)),
        }[op]
        leaf = a.clone().requires_grad_(True)

        def value_and_grad():
            y = scalar(leaf)
            return y, torch.autograd.grad(y, leaf)

        return value_and_grad
    if workload == "rnn_scan":
        if compiled:
            raise Skip("the recurrent workload is measured against PyTorch eager")
        p, xs = inputs(workload)
        p, xs = [t(a).requires_grad_(True) for a in p], t(xs)

        def rnn_step():
            h = torch.zeros(RNN[0], RNN[2])
            hs = []
            for x in xs:
                h = torch.tanh(x @ p[0] + h @ p[1] + p[2])
                hs.append(h)
            loss = (torch.stack(hs) ** 2).mean()
            return loss, torch.autograd.grad(loss, p)

        return rnn_step
    if compiled and not workload.startswith("W7") and workload not in KERNELS:
        raise Skip("torch.func transformations under torch.compile are not measured")
    from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

    if workload.startswith("W4"):
        w1, w2, x = (t(a) for a in inputs(workload))
        f = lambda x: torch.tanh(w2 @ torch.tanh(w1 @ x))  # noqa: E731
        j = jacfwd(f) if workload == "W4_jacfwd" else jacrev(f)
        return lambda: j(x)
    if workload.startswith("W5"):
        a, x, v = (t(s) for s in inputs(workload))

        def f(x):
            z = a @ x
            return torch.sum(torch.clamp(z, min=0) + torch.log1p(torch.exp(-torch.abs(z)))) + 0.5 * torch.sum(x * x)

        if workload == "W5_hessian":
            h = hessian(f)
            return lambda: h(x)
        # Double backward: the faster of PyTorch's two HVPs (torch.func's jvp of grad is 4x slower).
        xg = x.clone().requires_grad_(True)

        def hv():
            (g,) = torch.autograd.grad(f(xg), xg, create_graph=True)
            return torch.autograd.grad(g, xg, v)

        return hv
    if workload == "W6":
        w, b, x, y = (t(s) for s in inputs(workload))

        def loss(p, xi, yi):
            z = xi @ p[0] + p[1]
            return torch.clamp(z, min=0) + torch.log1p(torch.exp(-torch.abs(z))) - yi * z

        per_example = vmap(grad(loss), in_dims=(None, 0, 0))
        return lambda: per_example((w, b), x, y)
    if workload.startswith("W7"):
        a, b = (t(s) for s in inputs(workload))
        mm = maybe(torch.matmul)
        return lambda: mm(a, b)
    x = t(inputs(workload))
    if workload == "memcpy_1M":
        dst = torch.empty_like(x)
        return lambda: dst.copy_(x)
    op = {
        "exp_1M": torch.exp,
        "tanh_1M": torch.tanh,
        "gelu_1M": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        "softplus_1M": lambda x: torch.clamp(x, min=0) + torch.log1p(torch.exp(-torch.abs(x))),
        "cheap8_1M": lambda x: -torch.square(torch.relu(torch.abs((x * 0.5 + 1) * x - 0.25))),
    }[workload.removesuffix("_f64")]
    k = maybe(op)

    def elementwise():
        with torch.no_grad():
            return k(x)

    return elementwise


def torch_network(workload, t):
    import torch
    import torch.nn.functional as F

    if workload == "gpt_step":
        return torch_gpt_step()
    if workload in CONVS:
        x, w, ct = (t(a) for a in inputs(workload))
        x.requires_grad_(True)
        w.requires_grad_(True)

        def conv_fb():
            y = F.conv2d(x, w, padding=1)
            return torch.autograd.grad(y, (x, w), ct)

        return conv_fb
    params, x, labels = inputs(workload)
    p0, x, labels = [t(a) for a in params], t(x), t(labels)
    pool_each = CNN[workload][4]

    def loss(p):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = torch.relu(F.conv2d(h, p[i], p[i + 1], padding=1))
            if pool_each:
                h = F.max_pool2d(h, 2)
        if not pool_each:
            h = F.max_pool2d(h, 2)
        return F.cross_entropy(h.flatten(1) @ p[-2] + p[-1], labels)

    def step():
        p = [a.requires_grad_(True) for a in p0]
        gs = torch.autograd.grad(loss(p), p)
        with torch.no_grad():
            return [a - 0.1 * g for a, g in zip(p, gs)]

    return step


def torch_gpt_step():
    """One Adam step of the character transformer of ferrax's Gpt: pre-norm
    blocks with F.scaled_dot_product_attention (causal) and an exact-GELU MLP."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    vocab, dim, heads, context, batch = 60, 64, 4, 32, 32

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

        def forward(self, x):
            b, l, _ = x.shape
            h = self.ln1(x)
            split = lambda z: z.view(b, l, heads, dim // heads).transpose(1, 2)  # noqa: E731
            a = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)), is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(b, l, dim))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(vocab, dim)
            self.positions = nn.Parameter(torch.randn(context, dim) * 0.02)
            self.blocks = nn.ModuleList([Block(), Block()])
            self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

        def forward(self, ids):
            x = self.tokens(ids) + self.positions[: ids.shape[1]]
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.ln(x))

    torch.manual_seed(0)
    model = Gpt()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randint(0, vocab, (batch, context))
    y = torch.randint(0, vocab, (batch, context))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    return step


def numpy_call(workload):
    """numpy's LAPACK on the linear-algebra workloads' forward passes (it has no gradients)."""
    import numpy as np

    if workload not in LINALG:
        raise Skip("numpy is measured on the linear-algebra workloads")
    if workload.endswith("_grad"):
        raise Skip("numpy has no gradients")
    a, b = inputs(workload)
    op = workload.split("_")[1]
    return {
        "solve": lambda: np.linalg.solve(a, b),
        "cholesky": lambda: np.linalg.cholesky(a),
        "eigh": lambda: np.linalg.eigh(a),
        "svd": lambda: np.linalg.svd(a, full_matrices=False),
        "qr": lambda: np.linalg.qr(a),
    }[op]


def main():
    args = sys.argv[1:]
    if args[:1] == ["list"]:
        print(" ".join(WORKLOADS))
        return
    if len(args) < 2 or args[0] not in SYSTEMS or args[1] not in WORKLOADS:
        sys.exit(f"usage: peers.py {{{','.join(SYSTEMS)}}} WORKLOAD [--seconds S]; peers.py list")
    system, workload = args[0], args[1]
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 2.0
    out = {"system": system, "workload": workload}
    try:
        if system.startswith("jax"):
            call = jax_call(workload, jit=system == "jax_jit")
        elif system == "numpy":
            call = numpy_call(workload)
        else:
            call = torch_call(workload, compiled=system == "torch_compile")
        out["rss_before_kb"] = memory_kb("VmRSS:")
        reset_peak()
        median, best, reps = timed(call, seconds)
        out.update(median_s=median, min_s=best, reps=reps, peak_rss_kb=memory_kb("VmHWM:"))
    except Skip as e:
        out["skipped"] = str(e)
    except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal to the run
        out["skipped"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
