//! The plan of fused programs (chains, registers, in-place outputs) and
//! their results against the eager operations.

use super::*;

fn program(steps: &[(FusedOp, &[Operand])], outputs: &[usize]) -> FusedProgram {
    FusedProgram::new(steps.iter().map(|(op, a)| FusedStep { op: *op, args: a.to_vec() }).collect(), outputs.to_vec())
}

#[test]
fn registers_are_reused_after_the_last_use_and_never_read_while_written() {
    use Operand::*;
    // t0 = sin x; t1 = t0 * x; t2 = exp t1; t3 = t2 ^ t0 (no step is a link)
    let p = program(
        &[
            (FusedOp::Unary(UnaryOp::Sin), &[Input(0)]),
            (FusedOp::Binary(BinaryOp::Mul), &[Step(0), Input(0)]),
            (FusedOp::Unary(UnaryOp::Exp), &[Step(1)]),
            (FusedOp::Binary(BinaryOp::Pow), &[Step(2), Step(0)]),
        ],
        &[3],
    );
    // The output is written to its array; the rest take three registers.
    assert_eq!(p.exec.len(), 4);
    assert_eq!(p.n_regs, 3);
    assert_eq!(p.places[3], Place::Out(0));
    for (i, e) in p.exec.iter().enumerate() {
        for a in e.operands() {
            if let Step(j) = a {
                assert_ne!(p.places[*j], p.places[i], "pass {i} writes the register it reads");
            }
        }
    }
}

#[test]
fn a_fused_chain_equals_the_eager_operations_bit_for_bit_with_broadcast_inputs() {
    use Operand::*;
    // tanh(x * c + row) > 0 ? tanh(..) : exp(x), over a [3, 1500] tile-crossing shape.
    let shape = [3usize, 1500];
    let n = 3 * 1500;
    let x = Array::from_vec((0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect(), &shape);
    let row = Array::from_vec((0..1500).map(|i| (i % 7) as f32 - 3.0).collect(), &[1500]);
    let c = Array::from_vec(vec![0.75f32], &[]);
    let p = program(
        &[
            (FusedOp::Binary(BinaryOp::Mul), &[Input(0), Input(1)]),
            (FusedOp::Binary(BinaryOp::Add), &[Step(0), Input(2)]),
            (FusedOp::Unary(UnaryOp::Tanh), &[Step(1)]),
            (FusedOp::Compare(CompareOp::Gt), &[Step(2), Input(3)]),
            (FusedOp::Unary(UnaryOp::Exp), &[Input(0)]),
            (FusedOp::Select, &[Step(3), Step(2), Step(4)]),
        ],
        &[5, 3],
    );
    let zero = Array::from_vec(vec![0.0f32], &[]);
    let got = p.run(&[&x, &c, &row, &zero], DType::F32, &shape);
    let t = UnaryOp::Tanh.cpu(&BinaryOp::Add.cpu(&BinaryOp::Mul.cpu(&x, &c, &shape), &row, &shape));
    let mask = CompareOp::Gt.cpu(&t, &zero, &shape);
    let want = super::super::ops::select_cpu(&mask, &t, &UnaryOp::Exp.cpu(&x), &shape);
    assert_eq!(got[0].as_slice::<f32>(), want.as_slice::<f32>());
    assert_eq!(got[1].dtype(), DType::Bool);
    assert_eq!(got[1].as_slice::<bool>(), mask.as_slice::<bool>());
}

#[test]
fn an_output_overwrites_an_input_that_dies_only_when_no_later_step_reads_it() {
    use Operand::*;
    let shape = [3000usize];
    let fresh = || Array::from_vec((0..3000).map(|i| (i as f32 - 1500.0) / 300.0).collect(), &shape);
    // Runs `p` on a fresh `x` given up (and `rest`): whether the output
    // is written over `x`, after checking it against a run on a copy.
    let in_place = |p: &FusedProgram, rest: &[Array]| {
        let kept: Vec<Array> = std::iter::once(fresh()).chain(rest.iter().cloned()).collect();
        let want = p.run(&kept.iter().collect::<Vec<_>>(), DType::F32, &shape);
        let x = fresh();
        let at = x.as_slice::<f32>().as_ptr();
        let got = p.run_owned(std::iter::once(x).chain(rest.iter().cloned()).collect(), DType::F32, &shape);
        assert_eq!(got[0].as_slice::<f32>(), want[0].as_slice::<f32>());
        got[0].as_slice::<f32>().as_ptr() == at
    };
    // sin(x * x): the output's step reads only a register, so x's buffer is reused.
    let p = program(
        &[(FusedOp::Binary(BinaryOp::Mul), &[Input(0), Input(0)]), (FusedOp::Unary(UnaryOp::Sin), &[Step(0)])],
        &[1],
    );
    assert!(in_place(&p, &[]), "written in place");
    // A shared input is never written.
    let x = fresh();
    let kept = x.clone();
    let got = p.run_owned(vec![x], DType::F32, &shape);
    assert_ne!(got[0].as_slice::<f32>().as_ptr(), kept.as_slice::<f32>().as_ptr());
    assert_eq!(kept.as_slice::<f32>(), fresh().as_slice::<f32>());
    // sin(x) * x: the output's pass writes sin x before its link reads
    // x, so it may not overwrite x.
    let q = program(
        &[(FusedOp::Unary(UnaryOp::Sin), &[Input(0)]), (FusedOp::Binary(BinaryOp::Mul), &[Step(0), Input(0)])],
        &[1],
    );
    assert!(!in_place(&q, &[]));
    // |x · x - 2| · x: one chain from x, which reads each block of x
    // before it writes the block, so it may write over x (3000 is not
    // a whole number of blocks: the tail is read before it is written too).
    let c = program(
        &[
            (FusedOp::Binary(BinaryOp::Mul), &[Input(0), Input(0)]),
            (FusedOp::Binary(BinaryOp::Sub), &[Step(0), Input(1)]),
            (FusedOp::Unary(UnaryOp::Abs), &[Step(1)]),
            (FusedOp::Binary(BinaryOp::Mul), &[Step(2), Input(0)]),
        ],
        &[3],
    );
    assert_eq!(c.exec.len(), 1);
    assert!(in_place(&c, &[Array::from_vec(vec![2.0f32], &[])]), "written in place");
}

#[test]
fn a_cheap_step_that_alone_reads_a_value_joins_its_chain() {
    use Operand::*;
    // -(relu(|x - c|))², then · y: one pass, the square a link of its own.
    let p = program(
        &[
            (FusedOp::Binary(BinaryOp::Sub), &[Input(0), Input(1)]),
            (FusedOp::Unary(UnaryOp::Abs), &[Step(0)]),
            (FusedOp::Unary(UnaryOp::Relu), &[Step(1)]),
            (FusedOp::Binary(BinaryOp::Mul), &[Step(2), Step(2)]),
            (FusedOp::Unary(UnaryOp::Neg), &[Step(3)]),
            (FusedOp::Binary(BinaryOp::Div), &[Input(2), Step(4)]),
        ],
        &[5],
    );
    assert_eq!(p.exec.len(), 1);
    assert_eq!(p.exec[0].op, FusedOp::Binary(BinaryOp::Sub));
    assert_eq!(
        p.exec[0].links,
        [
            (Link::Unary(UnaryOp::Abs), None),
            (Link::Unary(UnaryOp::Relu), None),
            (Link::Unary(UnaryOp::PowI(2)), None),
            (Link::Unary(UnaryOp::Neg), None),
            (Link::Binary(BinaryOp::Div, true), Some(Input(2))),
        ]
    );
    // A value read twice, or returned, is not a link's.
    let q = program(
        &[(FusedOp::Binary(BinaryOp::Add), &[Input(0), Input(0)]), (FusedOp::Unary(UnaryOp::Neg), &[Step(0)])],
        &[1, 0],
    );
    assert_eq!(q.exec.len(), 2);
    // t0 = exp x; t1 = sin x; t2 = t0 + t1: t1 is computed after t0's
    // pass, so t2 joins t1's (its operands swapped), not t0's.
    let r = program(
        &[
            (FusedOp::Unary(UnaryOp::Exp), &[Input(0)]),
            (FusedOp::Unary(UnaryOp::Sin), &[Input(0)]),
            (FusedOp::Binary(BinaryOp::Add), &[Step(0), Step(1)]),
        ],
        &[2],
    );
    assert_eq!(r.exec.len(), 2);
    assert!(r.exec[0].links.is_empty());
    assert_eq!(r.exec[1].links, [(Link::Binary(BinaryOp::Add, true), Some(Step(0)))]);
    // Nothing joins a comparison's mask.
    let c = program(
        &[(FusedOp::Compare(CompareOp::Gt), &[Input(0), Input(1)]), (FusedOp::Unary(UnaryOp::Neg), &[Step(0)])],
        &[1],
    );
    assert_eq!(c.exec.len(), 2);
}

/// Values where the cheap ops' bits are delicate: NaNs of two payloads
/// and both signs, signed zeros, infinities, subnormals.
fn awkward<T: Float>(i: usize, seed: usize, from: impl Fn(f64) -> T, nan: [T; 2]) -> T {
    let h = (i * 2654435761 + seed * 40503) % 1000;
    match h % 23 {
        0 => nan[h % 2],
        1 => -nan[h % 2],
        2 => T::ZERO,
        3 => -T::ZERO,
        4 => from(f64::INFINITY),
        5 => from(f64::NEG_INFINITY),
        6 => from(if h % 2 == 0 { 1e-40 } else { -1e-40 }),
        7 => from(((h % 7) as f64) - 3.0),
        _ => from((h as f64 - 500.0) / 37.0),
    }
}

/// Random programs of links over awkward inputs, run fused against the
/// ops one at a time: the chain's vector path (whole blocks), its tail,
/// and splatted, broadcast and full operands, in f32 and f64, on `rows`
/// rows of 1109, the program's `outputs` among its twelve steps. Returns
/// how many of the programs held no value in registers.
fn chains_match_the_eager_ops<T: FloatRuns>(
    from: impl Fn(f64) -> T + Copy,
    nan: [T; 2],
    rows: usize,
    outputs: &[usize],
) -> usize {
    use Operand::*;
    let links = [
        FusedOp::Binary(BinaryOp::Add),
        FusedOp::Binary(BinaryOp::Sub),
        FusedOp::Binary(BinaryOp::Mul),
        FusedOp::Binary(BinaryOp::Div),
        FusedOp::Binary(BinaryOp::Max),
        FusedOp::Binary(BinaryOp::Min),
        FusedOp::Unary(UnaryOp::Neg),
        FusedOp::Unary(UnaryOp::Abs),
        FusedOp::Unary(UnaryOp::Relu),
        FusedOp::Unary(UnaryOp::PowI(2)),
    ];
    let shape = [rows, 1109];
    let n = rows * 1109;
    let input = |seed: usize, len: usize, shape: &[usize]| {
        Array::from_vec((0..len).map(|i| awkward(i, seed, from, nan)).collect::<Vec<T>>(), shape)
    };
    let ins = [input(1, n, &shape), input(2, n, &shape), input(3, 1109, &[1109]), input(4, 1, &[])];
    let mut without_registers = 0;
    for seed in 0..60 {
        let mut rng = seed * 7919 + 13;
        let mut next = |k: usize| {
            rng = (rng * 1103515245 + 12345) % (1 << 31);
            rng % k
        };
        // A first step on two inputs, then links on the last value with
        // an input or an earlier step; now and then a step that reads an
        // earlier one twice, so chains break and values live on.
        let mut steps = vec![FusedStep { op: FusedOp::Binary(BinaryOp::Mul), args: vec![Input(0), Input(1)] }];
        for i in 1..12 {
            let op = links[next(links.len())];
            let other = if next(3) == 0 && i > 1 { Step(next(i - 1)) } else { Input(next(4)) };
            let value = Step(i - 1);
            let args = match op {
                FusedOp::Unary(_) => vec![value],
                _ if next(2) == 0 => vec![other, value],
                _ => vec![value, other],
            };
            steps.push(FusedStep { op, args });
        }
        let p = FusedProgram::new(steps.clone(), outputs.to_vec());
        without_registers += usize::from(p.n_regs == 0);
        assert!(p.exec.iter().any(|e| e.links.len() > 2), "seed {seed}: the program has a chain");
        let got = p.run(&ins.iter().collect::<Vec<_>>(), T::DTYPE, &shape);
        // The same steps, one eager op at a time.
        let mut vals: Vec<Array> = Vec::new();
        for s in &steps {
            let a = |k: usize| match s.args[k] {
                Input(j) => ins[j].clone(),
                Step(j) => vals[j].clone(),
            };
            vals.push(match s.op {
                FusedOp::Unary(op) => op.cpu(&a(0)),
                FusedOp::Binary(op) => op.cpu(&a(0), &a(1), &shape),
                _ => unreachable!(),
            });
        }
        for (k, want) in outputs.iter().map(|&o| &vals[o]).enumerate() {
            // Bits, signed zeros included, where the value is a number: a
            // NaN's sign and payload are not specified by Rust (LLVM may
            // swap a product's operands), only that it is NaN.
            let (g, w) = (got[k].as_slice::<T>(), want.as_slice::<T>());
            let same = |a: T, b: T| {
                let (a, b) = (a.to_f64(), b.to_f64());
                if a.is_nan() {
                    b.is_nan()
                } else {
                    a.to_bits() == b.to_bits()
                }
            };
            if let Some(e) = (0..g.len()).find(|&i| !same(g[i], w[i])) {
                let (g, w) = (g[e], w[e]);
                panic!("seed {seed}, output {k}, element {e}: {g:?} against the eager {w:?}: {steps:?}");
            }
        }
    }
    without_registers
}

#[test]
fn chains_give_the_eager_bits_with_nans_zeros_and_infinities() {
    let (nan32, nan64) = ([f32::NAN, f32::from_bits(0x7fc0_1234)], [f64::NAN, f64::from_bits(0x7ff8_0000_0000_1234)]);
    chains_match_the_eager_ops::<f32>(|v| v as f32, nan32, 3, &[11, 5]);
    chains_match_the_eager_ops::<f64>(|v| v, nan64, 3, &[11, 5]);
    // One output: programs whose values all go to it take the long tiles,
    // several of them per thread's share.
    assert!(chains_match_the_eager_ops::<f32>(|v| v as f32, nan32, 41, &[11]) > 0);
    assert!(chains_match_the_eager_ops::<f64>(|v| v, nan64, 41, &[11]) > 0);
}
