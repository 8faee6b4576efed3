use ferrax::prelude::*;

fn main() {
    let f = |x: &(Tensor, Tensor)| x.0.ln() + &x.0 * &x.1 - x.1.sin();
    let at = (Tensor::scalar(2.0), Tensor::scalar(5.0));
    let (y, d1) = jvp(f, &at, &(Tensor::scalar(1.0), Tensor::scalar(0.0)));
    let (_, d2) = jvp(f, &at, &(Tensor::scalar(0.0), Tensor::scalar(1.0)));
    println!("{} {} {}", y, d1, d2);
    let x = Tensor::randn(&[3, 4], DType::F64, 1);
    println!("{x}\n{:?}", x.sum_axes(&[1], true));
    let r = check_grads(|x: &Tensor| (x.sin() * x).sum_axes(&[0], false).tanh(), &x, 2);
    println!("{r:?}");
    let big = Tensor::arange(2000, DType::F32).reshape(&[2, 1000]);
    println!("{big}");
    println!("{}", Tensor::from_vec(vec![1e-5, 1.0, 1e5], &[3]));
    println!("{}", Tensor::from_vec(vec![1.5, 2.25, -3.0], &[3]));
}
