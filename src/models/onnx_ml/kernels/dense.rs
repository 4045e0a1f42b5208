//! Dense layers and element-wise functions (MatMul, Gemm, Relu, Sigmoid, Tanh, Softmax,
//! Abs, Neg, Exp, Log, Sqrt), so that a
//! pipeline mixing ONNX-ML preprocessing with a small neural network (scikit-learn's
//! MLPClassifier after a StandardScaler) runs here; tract, which lacks the preprocessing,
//! could not load it at all.

use std::borrow::Cow;

use super::{only, Kernel, NodeCtx};
use crate::models::onnx_ml::tensor::{axis, Tensor};
use crate::models::tree_ensemble::transform::{logistic, PostTransform};

/// `alpha * A · B' + beta * C` with B' (`[K, M]`, transposed when `trans_b`) and C fixed at
/// load; A is `[.., K]` and keeps its leading axes.
struct Affine {
    /// Weights as `[M][K]`, so each output is a dot product over contiguous memory.
    columns: Vec<f64>,
    k: usize,
    m: usize,
    bias: Option<Tensor>,
    alpha: f64,
    beta: f64,
}

/// `B` as `[M][K]` from `[K, M]`, or from `[M, K]` when already transposed.
fn columns(b: &Tensor, transposed: bool) -> Result<(Vec<f64>, usize, usize), String> {
    let [rows, cols] = b.shape[..] else {
        return Err(format!(
            "the weights have shape {:?}, expected 2-D",
            b.shape
        ));
    };
    if rows == 0 || cols == 0 {
        return Err(format!("the weights have an empty shape {:?}", b.shape));
    }
    if transposed {
        return Ok((b.data.clone(), cols, rows));
    }
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = b.data[r * cols + c];
        }
    }
    Ok((out, rows, cols))
}

pub(super) fn matmul(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let (columns, k, m) = columns(ctx.const_input(1, "weights")?, false)?;
    Ok(Box::new(Affine {
        columns,
        k,
        m,
        bias: None,
        alpha: 1.0,
        beta: 0.0,
    }))
}

pub(super) fn gemm(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    if a.int("transA")?.unwrap_or(0) != 0 {
        return Err("Gemm with transA is not supported (the rows are the input)".into());
    }
    let (columns, k, m) = columns(
        ctx.const_input(1, "weights")?,
        a.int("transB")?.unwrap_or(0) != 0,
    )?;
    let bias = match ctx.node.input.get(2) {
        Some(name) if !name.is_empty() => Some(ctx.const_input(2, "bias")?.clone()),
        _ => None,
    };
    if bias.as_ref().is_some_and(|b| b.data.is_empty()) {
        return Err("the bias is empty".into());
    }
    Ok(Box::new(Affine {
        columns,
        k,
        m,
        bias,
        alpha: a.float("alpha")?.map_or(1.0, f64::from),
        beta: a.float("beta")?.map_or(1.0, f64::from),
    }))
}

impl Kernel for Affine {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let input = args.first().ok_or("missing input")?;
        if input.width() != self.k {
            return Err(format!(
                "rows have {} values but the weights expect {}",
                input.width(),
                self.k
            ));
        }
        let mut data = Vec::with_capacity(input.rows() * self.m);
        for row in input.matrix_rows() {
            for (j, column) in self.columns.chunks_exact(self.k).enumerate() {
                let dot: f64 = row.iter().zip(column).map(|(x, w)| x * w).sum();
                let bias = self.bias.as_ref().map_or(0.0, |b| {
                    b.data[if b.data.len() == 1 {
                        0
                    } else {
                        j % b.data.len()
                    }]
                });
                data.push(input.elem.coerce(self.alpha * dot + self.beta * bias));
            }
        }
        let mut shape = input.shape.clone();
        match shape.last_mut() {
            Some(last) => *last = self.m,
            None => shape.push(self.m),
        }
        Ok(vec![Tensor::new(input.elem, shape, data)?])
    }
}

/// An element-wise function, generic so that it is inlined into the loop.
struct Activation<F>(F);

pub(super) fn relu(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(|x: f64| x.max(0.0))))
}

pub(super) fn sigmoid(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(logistic)))
}

pub(super) fn tanh(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(f64::tanh)))
}

pub(super) fn abs(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(f64::abs)))
}

pub(super) fn neg(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(|x: f64| -x)))
}

pub(super) fn exp(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(f64::exp)))
}

pub(super) fn log(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(f64::ln)))
}

pub(super) fn sqrt(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Activation(f64::sqrt)))
}

impl<F: Fn(f64) -> f64 + Send + Sync> Kernel for Activation<F> {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        let elem = t.elem;
        t.data
            .iter_mut()
            .for_each(|x| *x = elem.coerce((self.0)(*x)));
        Ok(vec![t])
    }
}

/// Softmax over the last axis, the only one classifiers export it over.
struct Softmax(i64);

pub(super) fn softmax(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Softmax(ctx.attrs().int("axis")?.unwrap_or(-1))))
}

impl Kernel for Softmax {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        let rank = t.shape.len().max(1);
        if axis(self.0, rank)? != rank - 1 {
            return Err(format!(
                "Softmax over axis {} of a rank-{rank} tensor is not supported (the last axis is)",
                self.0
            ));
        }
        let elem = t.elem;
        let width = t.width().max(1);
        for row in t.data.chunks_exact_mut(width) {
            PostTransform::Softmax.apply(row);
            row.iter_mut().for_each(|x| *x = elem.coerce(*x));
        }
        Ok(vec![t])
    }
}
