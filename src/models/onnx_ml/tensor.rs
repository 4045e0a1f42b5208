//! The executor's one value type: a dense tensor whose elements are held as f64 whatever
//! their ONNX type.
//!
//! Tabular graphs hold small floats and small integers, and f64 represents every f32 and
//! every integer below 2^53 exactly, so one storage type serves all kernels. Float results
//! are rounded back to f32 after each operation: an f32 sum or product computed in f64 and
//! rounded once equals the f32 operation, so results agree with onnxruntime bit for bit
//! where the operation order is the same.

use crate::models::onnx_attrs::{
    DATA_TYPE_BOOL, DATA_TYPE_DOUBLE, DATA_TYPE_FLOAT, DATA_TYPE_INT32, DATA_TYPE_INT64,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    I64,
    I32,
    Bool,
}

impl Elem {
    /// The element type for an ONNX `TensorProto.DataType` code, if the executor holds it.
    pub fn from_onnx(code: i32) -> Option<Elem> {
        Some(match code {
            DATA_TYPE_FLOAT => Elem::F32,
            DATA_TYPE_DOUBLE => Elem::F64,
            DATA_TYPE_INT64 => Elem::I64,
            DATA_TYPE_INT32 => Elem::I32,
            DATA_TYPE_BOOL => Elem::Bool,
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, Elem::F32 | Elem::F64)
    }

    /// `v` as a value of this type: rounded to f32, truncated toward zero for integers
    /// (C++ `static_cast`, what onnxruntime's Cast does), non-zero for booleans.
    #[inline]
    pub fn coerce(self, v: f64) -> f64 {
        match self {
            Elem::F64 => v,
            Elem::F32 => f64::from(v as f32),
            // NaN becomes i64::MIN, the x86 conversion result onnxruntime gets.
            Elem::I64 if v.is_nan() => i64::MIN as f64,
            Elem::I64 => (v as i64) as f64,
            Elem::I32 if v.is_nan() => f64::from(i32::MIN),
            Elem::I32 => f64::from(v as i32),
            Elem::Bool => f64::from(v != 0.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub elem: Elem,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor whose `data` already holds values of type `elem`.
    pub fn new(elem: Elem, shape: Vec<usize>, data: Vec<f64>) -> Result<Tensor, String> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(format!(
                "shape {shape:?} needs {expected} values, got {}",
                data.len()
            ));
        }
        Ok(Tensor { elem, shape, data })
    }

    /// A tensor of `elem` from arbitrary f64 values, each coerced to the type.
    pub fn coerced(elem: Elem, shape: Vec<usize>, mut data: Vec<f64>) -> Result<Tensor, String> {
        if elem != Elem::F64 {
            data.iter_mut().for_each(|v| *v = elem.coerce(*v));
        }
        Tensor::new(elem, shape, data)
    }

    /// The size of the last axis (1 for a scalar).
    pub fn width(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// The number of rows: every axis but the last, multiplied.
    pub fn rows(&self) -> usize {
        if self.shape.is_empty() {
            1
        } else {
            self.data.len() / self.width().max(1)
        }
    }

    /// The tensor read as `[rows, width]`, which is how ONNX-ML operators see their input.
    pub fn matrix_rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.data.chunks_exact(self.width().max(1))
    }

    /// Integer values (indices, shapes) from a tensor of any type.
    pub fn to_i64s(&self) -> Vec<i64> {
        self.data.iter().map(|&v| v as i64).collect()
    }
}

/// Resolves a possibly negative `axis` against `rank`.
pub fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(resolved)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}
