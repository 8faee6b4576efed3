//! Runs the peer benchmark workloads W2–W6 on their exact inputs and prints
//! each result next to the reference value of `../shared/bench/README.md`.
//!
//! The inputs come from the peer script, as numpy `.npy` files:
//!
//! ```sh
//! python peers.py --dump-inputs /tmp/peer-inputs
//! cargo run --release --example peer_workloads -- /tmp/peer-inputs
//! ```

use std::path::PathBuf;

use ferrax::io::load_npy;
use ferrax::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir =
        PathBuf::from(std::env::args().nth(1).ok_or("usage: peer_workloads <dir written by peers.py --dump-inputs>")?);
    let load = |name: &str| load_npy(dir.join(format!("{name}.npy"))).map_err(|e| format!("{name}.npy: {e}"));

    let p = vec![load("w2_W1")?, load("w2_b1")?, load("w2_W2")?, load("w2_b2")?, load("w2_W3")?, load("w2_b3")?];
    let (x, y) = (load("w2_X")?, load("w2_Y")?);
    let loss = |p: &Vec<Tensor>| {
        let h1 = (x.matmul(&p[0]) + &p[1]).tanh();
        let h2 = (h1.matmul(&p[2]) + &p[3]).tanh();
        let z = h2.matmul(&p[4]) + &p[5];
        (z.logsumexp_axes(&[1], false) - (&y * &z).sum_axes(&[1], false)).mean()
    };
    let (v, g) = value_and_grad(loss)(&p);
    let norm = |t: &Tensor| t.to_dtype(DType::F64).square().sum().sqrt().item();
    println!("W2 loss at init   {:.6}   (reference 2.420824)", v.item());
    let norms: Vec<String> = g.iter().map(|t| format!("{:.6e}", norm(t))).collect();
    println!("W2 gradient norms {}", norms.join(", "));
    println!("       (reference 9.245727e-01, 2.736318e-02, 8.132447e-01, 3.732592e-02, 7.706975e-01, 4.168742e-02)");

    let mut q = p.clone();
    for _ in 0..100 {
        let g = grad(loss)(&q);
        q = q.iter().zip(&g).map(|(a, b)| a - b * 0.1).collect();
    }
    println!("W3 loss after 100 SGD steps {:.6}   (reference 0.024061)", loss(&q).item());

    let (w1, w2, x4) = (load("w4_W1")?, load("w4_W2")?, load("w4_x")?);
    let f = |x: &Tensor| w2.matmul(&w1.matmul(x).tanh()).tanh();
    let j = jacrev(f)(&x4);
    println!(
        "W4 |J|_F {:.12e}, J[0,0] {:.12e}, ΣJ {:.12e}   (reference 6.512210379128e+00, 1.850415890530e-02, 5.367436920239e+00)",
        norm(&j),
        j.to_vec::<f64>()[0],
        j.sum().item()
    );
    println!("W4 jacfwd and jacrev differ by {:.1e}", (jacfwd(f)(&x4) - &j).abs().max().item());

    let (a, x5, v5) = (load("w5_A")?, load("w5_x")?, load("w5_v")?);
    let f5 = |x: &Tensor| a.matmul(x).softplus().sum() + x.square().sum() * 0.5;
    let h = hessian(f5)(&x5);
    println!(
        "W5 f {:.12e}, trace H {:.12e}, |Hv| {:.12e}   (reference 3.131209581360e+02, 2.341796843414e+02, 1.662763444978e+01)",
        f5(&x5).item(),
        (h * Tensor::eye(x5.size(), DType::F64)).sum().item(),
        norm(&hvp(f5, &x5, &v5))
    );

    let (w6, b6, x6, y6) = (load("w6_w")?, load("w6_b")?, load("w6_X")?, load("w6_y")?);
    let (b6, y6) = (b6.to_dtype(w6.dtype()).reshape(&[]), y6.to_dtype(w6.dtype()));
    let loss6 = |p: &(Tensor, Tensor), x: &Tensor, y: &Tensor| {
        let z = x.matmul(&p.0) + &p.1;
        (z.softplus() - y * &z).sum()
    };
    let per_example = vmap_axes(
        |a: &((Tensor, Tensor), Tensor, Tensor)| grad(|p: &(Tensor, Tensor)| loss6(p, &a.1, &a.2))(&a.0),
        &[None, None, Some(0), Some(0)],
        &[0],
    );
    let (gw, gb) = per_example(&((w6, b6), x6, y6));
    println!(
        "W6 |G_w|_F {:.6e}, Σ g_b {:.6e}   (reference 1.335885e+02, 9.179583e-01; f32)",
        norm(&gw),
        gb.to_dtype(DType::F64).sum().item()
    );
    Ok(())
}
