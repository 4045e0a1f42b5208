//! ReduceSum over the last axis: how converters normalise probabilities (divide each row by
//! its sum).

use std::borrow::Cow;

use super::{Kernel, NodeCtx};
use crate::models::onnx_ml::tensor::{axis, Tensor};

struct ReduceSum {
    /// The axes, as given (constant input from opset 13, attribute before).
    axes: Vec<i64>,
    keep_dims: bool,
}

pub(super) fn reduce_sum(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    let axes = match ctx.node.input.get(1) {
        Some(name) if !name.is_empty() => ctx.const_input(1, "axes")?.to_i64s(),
        _ => a.ints("axes")?.to_vec(),
    };
    if axes.is_empty() && a.int("noop_with_empty_axes")?.unwrap_or(0) != 0 {
        return Err("ReduceSum with noop_with_empty_axes is not supported".into());
    }
    Ok(Box::new(ReduceSum {
        axes,
        keep_dims: a.int("keepdims")?.unwrap_or(1) != 0,
    }))
}

impl Kernel for ReduceSum {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let t = args.first().ok_or("missing input")?;
        let rank = t.shape.len().max(1);
        let resolved = self
            .axes
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>, _>>()?;
        if resolved != [rank - 1] {
            return Err(format!(
                "ReduceSum over axes {:?} of a rank-{rank} tensor is not supported (the last axis is)",
                self.axes
            ));
        }
        let data: Vec<f64> = t
            .matrix_rows()
            .map(|row| t.elem.coerce(row.iter().sum()))
            .collect();
        let mut shape = t.shape.clone();
        if self.keep_dims {
            if let Some(last) = shape.last_mut() {
                *last = 1;
            }
        } else {
            shape.pop();
        }
        Ok(vec![Tensor::new(t.elem, shape, data)?])
    }
}
