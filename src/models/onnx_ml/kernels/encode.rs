//! Categorical encoders: OneHotEncoder and LabelEncoder, for numeric categories.
//!
//! String categories need string tensors, which the executor does not hold: such a node is
//! refused at load with its name, so the model fails to load instead of mis-scoring.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{only, Kernel, NodeCtx};
use crate::models::onnx_attrs::{attr_err, numeric_values, Attrs};
use crate::models::onnx_ml::tensor::{Elem, Tensor};

const NO_STRINGS: &str = "string categories are not supported (numeric ones are)";

/// Input values (cast to int64) → their position among the categories.
struct OneHotEncoder {
    positions: HashMap<i64, usize>,
    n_categories: usize,
    /// Unknown categories give a row of zeros rather than an error.
    zeros: bool,
}

pub(super) fn one_hot_encoder(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    if !a.strings("cats_strings")?.is_empty() {
        return Err(attr_err("cats_strings", NO_STRINGS).into());
    }
    let cats = a.ints("cats_int64s")?;
    if cats.is_empty() {
        return Err(attr_err("cats_int64s", "is required").into());
    }
    Ok(Box::new(OneHotEncoder {
        positions: cats.iter().enumerate().map(|(i, &c)| (c, i)).collect(),
        n_categories: cats.len(),
        zeros: a.int("zeros")?.unwrap_or(1) != 0,
    }))
}

impl Kernel for OneHotEncoder {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let t = only(args)?;
        let k = self.n_categories;
        let mut data = vec![0.0; t.data.len() * k];
        for (i, &v) in t.data.iter().enumerate() {
            match self.positions.get(&(Elem::I64.coerce(v) as i64)) {
                Some(&at) => data[i * k + at] = 1.0,
                None if self.zeros => {}
                None => return Err(format!("unknown category {v}")),
            }
        }
        let mut shape = t.shape.clone();
        shape.push(k);
        Ok(vec![Tensor::new(Elem::F32, shape, data)?])
    }
}

/// A numeric key → value table with a default for keys it does not hold.
struct LabelEncoder {
    table: HashMap<u64, f64>,
    default: f64,
    elem: Elem,
}

/// Keys compare by value: -0.0 equals 0.0 and every NaN equals every other.
fn key_bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        (v + 0.0).to_bits()
    }
}

/// One of the encoder's numeric lists, from whichever attribute form the node uses.
fn numeric_list(
    a: &Attrs<'_>,
    ints: &'static str,
    floats: &'static str,
    tensor: &'static str,
    strings: &'static str,
) -> Result<(Vec<f64>, Elem), String> {
    if let Some(t) = a.tensor(tensor)? {
        let elem = Elem::from_onnx(t.data_type).ok_or_else(|| attr_err(tensor, NO_STRINGS))?;
        return Ok((numeric_values(tensor, t)?, elem));
    }
    if !a.strings(strings)?.is_empty() {
        return Err(attr_err(strings, NO_STRINGS).into());
    }
    let i = a.ints(ints)?;
    if !i.is_empty() {
        return Ok((i.iter().map(|&v| v as f64).collect(), Elem::I64));
    }
    let f = a.floats(floats)?;
    if !f.is_empty() {
        return Ok((f.iter().map(|&v| f64::from(v)).collect(), Elem::F32));
    }
    Err(attr_err(ints, format!("is required (or {floats} or {tensor})")).into())
}

pub(super) fn label_encoder(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    if !a.strings("classes_strings")?.is_empty() {
        return Err(attr_err("classes_strings", NO_STRINGS).into());
    }
    let (keys, _) = numeric_list(
        &a,
        "keys_int64s",
        "keys_floats",
        "keys_tensor",
        "keys_strings",
    )?;
    let (values, elem) = numeric_list(
        &a,
        "values_int64s",
        "values_floats",
        "values_tensor",
        "values_strings",
    )?;
    if keys.len() != values.len() {
        return Err(format!(
            "LabelEncoder has {} keys but {} values",
            keys.len(),
            values.len()
        ));
    }
    let default = match a.tensor("default_tensor")? {
        Some(t) => numeric_values("default_tensor", t)?
            .first()
            .copied()
            .ok_or_else(|| attr_err("default_tensor", "is empty"))?,
        None if elem == Elem::I64 => a.int("default_int64")?.unwrap_or(-1) as f64,
        None => a.float("default_float")?.map_or(-0.0, f64::from),
    };
    Ok(Box::new(LabelEncoder {
        table: keys.iter().map(|&k| key_bits(k)).zip(values).collect(),
        default,
        elem,
    }))
}

impl Kernel for LabelEncoder {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        for x in t.data.iter_mut() {
            *x = self
                .table
                .get(&key_bits(*x))
                .copied()
                .unwrap_or(self.default);
        }
        t.elem = self.elem;
        Ok(vec![t])
    }
}
