//! Column-wise preprocessing from scikit-learn pipelines: Scaler, Imputer, Normalizer,
//! Binarizer.

use std::borrow::Cow;

use super::{only, Kernel, NodeCtx};
use crate::models::onnx_attrs::attr_err;
use crate::models::onnx_ml::tensor::{Elem, Tensor};

/// One value per column, or a single value for every column.
fn per_column(values: &[f64], width: usize, what: &str) -> Result<(), String> {
    if values.len() == 1 || values.len() == width {
        Ok(())
    } else {
        Err(format!(
            "{what} has {} values for rows of {width}",
            values.len()
        ))
    }
}

#[inline]
fn column(values: &[f64], c: usize) -> f64 {
    if values.len() == 1 {
        values[0]
    } else {
        values[c]
    }
}

/// `(x - offset) * scale`, as floats.
struct Scaler {
    offset: Vec<f64>,
    scale: Vec<f64>,
}

pub(super) fn scaler(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let mut offset = widen(a.floats("offset")?);
    let mut scale = widen(a.floats("scale")?);
    if offset.is_empty() {
        offset.push(0.0);
    }
    if scale.is_empty() {
        scale.push(1.0);
    }
    Ok(Box::new(Scaler { offset, scale }))
}

impl Kernel for Scaler {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        let width = t.width();
        per_column(&self.offset, width, "offset")?;
        per_column(&self.scale, width, "scale")?;
        // Float input is computed in float, step by step; wider types in double.
        let step = if t.elem == Elem::F64 {
            Elem::F64
        } else {
            Elem::F32
        };
        for row in t.data.chunks_exact_mut(width.max(1)) {
            for (c, x) in row.iter_mut().enumerate() {
                let shifted = step.coerce(*x - column(&self.offset, c));
                *x = Elem::F32.coerce(shifted * column(&self.scale, c));
            }
        }
        t.elem = Elem::F32;
        Ok(vec![t])
    }
}

/// Replaces `replaced` (0 by default; scikit-learn's exports say NaN) with each column's
/// imputed value.
struct Imputer {
    imputed: Vec<f64>,
    replaced: f64,
}

pub(super) fn imputer(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    let floats = a.floats("imputed_value_floats")?;
    let ints = a.ints("imputed_value_int64s")?;
    let (imputed, replaced) = if !floats.is_empty() {
        // The spec's default is 0.0: NaN is replaced only when the attribute says NaN.
        let replaced = a.float("replaced_value_float")?.map_or(0.0, f64::from);
        (floats.iter().map(|&v| f64::from(v)).collect(), replaced)
    } else if !ints.is_empty() {
        let replaced = a.int("replaced_value_int64")?.unwrap_or(0) as f64;
        (ints.iter().map(|&v| v as f64).collect(), replaced)
    } else {
        return Err(attr_err(
            "imputed_value_floats",
            "is required (or imputed_value_int64s)",
        )
        .into());
    };
    Ok(Box::new(Imputer { imputed, replaced }))
}

impl Kernel for Imputer {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        let width = t.width();
        per_column(&self.imputed, width, "imputed values")?;
        let nan = self.replaced.is_nan();
        for row in t.data.chunks_exact_mut(width.max(1)) {
            for (c, x) in row.iter_mut().enumerate() {
                if (nan && x.is_nan()) || *x == self.replaced {
                    *x = t.elem.coerce(column(&self.imputed, c));
                }
            }
        }
        Ok(vec![t])
    }
}

#[derive(Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

/// Each row divided by its norm, as floats.
struct Normalizer(Norm);

pub(super) fn normalizer(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let norm = match ctx.attrs().string("norm")?.unwrap_or("MAX") {
        "MAX" => Norm::Max,
        "L1" => Norm::L1,
        "L2" => Norm::L2,
        other => return Err(attr_err("norm", format!("unknown norm `{other}`")).into()),
    };
    Ok(Box::new(Normalizer(norm)))
}

impl Kernel for Normalizer {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        let width = t.width().max(1);
        for row in t.data.chunks_exact_mut(width) {
            // MAX is the signed maximum, as in onnxruntime (scikit-learn takes max |x|).
            let norm = match self.0 {
                Norm::Max => row.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Norm::L1 => row.iter().map(|x| x.abs()).sum(),
                Norm::L2 => row.iter().map(|x| x * x).sum::<f64>().sqrt(),
            };
            // A zero norm leaves the row as it is rather than dividing by zero.
            let divisor = if norm == 0.0 { 1.0 } else { norm };
            for x in row.iter_mut() {
                *x = Elem::F32.coerce(*x / divisor);
            }
        }
        t.elem = Elem::F32;
        Ok(vec![t])
    }
}

/// 1 where `x > threshold`, else 0, in the input's type.
struct Binarizer(f64);

pub(super) fn binarizer(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let threshold = ctx.attrs().float("threshold")?.map_or(0.0, f64::from);
    Ok(Box::new(Binarizer(threshold)))
}

impl Kernel for Binarizer {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        t.data.iter_mut().for_each(|x| *x = f64::from(*x > self.0));
        Ok(vec![t])
    }
}
