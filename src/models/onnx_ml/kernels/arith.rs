//! Element-wise arithmetic with numpy broadcasting, Cast and Identity.

use std::borrow::Cow;

use super::{only, Kernel, NodeCtx};
use crate::models::onnx_attrs::attr_err;
use crate::models::onnx_ml::tensor::{Elem, Tensor};

/// Generic over the operation so that it is inlined into the element loops.
struct Binary<F>(F);

pub(super) fn add(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Binary(|a, b| a + b)))
}

pub(super) fn sub(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Binary(|a, b| a - b)))
}

pub(super) fn mul(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Binary(|a, b| a * b)))
}

pub(super) fn div(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Binary(|a, b| a / b)))
}

impl<F: Fn(f64, f64) -> f64 + Send + Sync> Kernel for Binary<F> {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let [a, b]: [Cow<'_, Tensor>; 2] = args
            .try_into()
            .map_err(|args: Vec<_>| format!("expected 2 inputs, got {}", args.len()))?;
        if a.elem != b.elem {
            return Err(format!(
                "operands have different types ({:?} and {:?})",
                a.elem, b.elem
            ));
        }
        let shape = broadcast_shape(&a.shape, &b.shape)?;
        let elem = a.elem;
        let op = &self.0;
        let integer_div = !elem.is_float();
        let apply = |x: f64, y: f64| {
            let v = op(x, y);
            // Integer division truncates, as in C++.
            if integer_div {
                v.trunc()
            } else {
                v
            }
        };
        // The common cases in tabular graphs, without index arithmetic: a whole tensor
        // combined with a scalar or with one value per column (shape [C], [1, C], ...), on
        // either side.
        let is_row_of = |v: &Tensor, full: &Tensor| {
            v.shape.iter().rev().skip(1).all(|&d| d == 1)
                && !v.data.is_empty()
                && (v.data.len() == 1 || v.data.len() == full.width())
        };
        if shape == a.shape && is_row_of(&b, &a) {
            return Ok(vec![by_rows(a.into_owned(), &b.data, |x, y| {
                elem.coerce(apply(x, y))
            })]);
        }
        if shape == b.shape && is_row_of(&a, &b) {
            return Ok(vec![by_rows(b.into_owned(), &a.data, |x, y| {
                elem.coerce(apply(y, x))
            })]);
        }
        let a_index = Strides::new(&a.shape, &shape);
        let b_index = Strides::new(&b.shape, &shape);
        let total: usize = shape.iter().product();
        let data = (0..total)
            .map(|i| {
                let x = a.data[a_index.source(i, &shape)];
                let y = b.data[b_index.source(i, &shape)];
                elem.coerce(apply(x, y))
            })
            .collect();
        Ok(vec![Tensor::new(elem, shape, data)?])
    }
}

/// `full` with each row's values replaced by `f(value, row[column])`, in place.
fn by_rows(mut full: Tensor, row: &[f64], f: impl Fn(f64, f64) -> f64) -> Tensor {
    for chunk in full.data.chunks_exact_mut(row.len()) {
        for (x, &y) in chunk.iter_mut().zip(row) {
            *x = f(*x, y);
        }
    }
    full
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// Maps a flat index of the broadcast output to the flat index of one operand.
struct Strides(Vec<usize>);

impl Strides {
    fn new(shape: &[usize], out: &[usize]) -> Strides {
        let pad = out.len() - shape.len();
        let mut strides = vec![0; out.len()];
        let mut step = 1;
        for (i, &d) in shape.iter().enumerate().rev() {
            strides[pad + i] = if d == 1 { 0 } else { step };
            step *= d;
        }
        Strides(strides)
    }

    fn source(&self, mut flat: usize, out: &[usize]) -> usize {
        let mut at = 0;
        for (&d, &stride) in out.iter().zip(&self.0).rev() {
            at += (flat % d) * stride;
            flat /= d;
        }
        at
    }
}

struct Cast(Elem);

pub(super) fn cast(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let to = ctx
        .attrs()
        .int("to")?
        .ok_or_else(|| attr_err("to", "is required"))?;
    let elem = i32::try_from(to)
        .ok()
        .and_then(Elem::from_onnx)
        .ok_or_else(|| attr_err("to", format!("casting to data type {to} is not supported")))?;
    Ok(Box::new(Cast(elem)))
}

impl Kernel for Cast {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        if t.elem != self.0 {
            t.data.iter_mut().for_each(|v| *v = self.0.coerce(*v));
            t.elem = self.0;
        }
        Ok(vec![t])
    }
}

struct Identity;

pub(super) fn identity(_: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Identity))
}

impl Kernel for Identity {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        Ok(vec![only(args)?.into_owned()])
    }
}
