//! Operators that select, join or reshape values without computing new ones: Gather,
//! ArrayFeatureExtractor, Concat, FeatureVectorizer, Reshape, Flatten.

use std::borrow::Cow;

use super::{only, Kernel, NodeCtx};
use crate::models::onnx_attrs::attr_err;
use crate::models::onnx_ml::tensor::{axis, Elem, Tensor};

/// Gather along `axis` with indices fixed at load time (column selection in pipelines).
struct Gather {
    axis: i64,
    indices: Tensor,
    /// ArrayFeatureExtractor: the last axis, and a 1-D input counts as one row.
    as_feature_extractor: bool,
}

pub(super) fn gather(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Gather {
        axis: ctx.attrs().int("axis")?.unwrap_or(0),
        indices: ctx.const_input(1, "indices")?.clone(),
        as_feature_extractor: false,
    }))
}

pub(super) fn array_feature_extractor(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Gather {
        axis: -1,
        indices: ctx.const_input(1, "indices")?.clone(),
        as_feature_extractor: true,
    }))
}

impl Kernel for Gather {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let data = args.first().ok_or("missing data input")?;
        let axis = axis(self.axis, data.shape.len().max(1))?;
        let n = data.shape.get(axis).copied().unwrap_or(1);
        let outer: usize = data.shape[..axis.min(data.shape.len())].iter().product();
        let inner: usize = data.shape.get(axis + 1..).map_or(1, |s| s.iter().product());
        let picks = self
            .indices
            .to_i64s()
            .into_iter()
            .map(|i| {
                let resolved = if i < 0 { i + n as i64 } else { i };
                usize::try_from(resolved)
                    .ok()
                    .filter(|&i| i < n)
                    .ok_or_else(|| format!("index {i} is out of range for an axis of {n}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(outer * picks.len() * inner);
        for o in 0..outer {
            for &i in &picks {
                let start = (o * n + i) * inner;
                out.extend_from_slice(&data.data[start..start + inner]);
            }
        }
        let mut shape = data.shape[..axis.min(data.shape.len())].to_vec();
        if self.as_feature_extractor {
            shape.push(picks.len());
            if shape.len() == 1 {
                shape.insert(0, 1);
            }
        } else {
            shape.extend_from_slice(&self.indices.shape);
            shape.extend_from_slice(data.shape.get(axis + 1..).unwrap_or(&[]));
        }
        Ok(vec![Tensor::new(data.elem, shape, out)?])
    }
}

struct Concat(i64);

pub(super) fn concat(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let axis = ctx
        .attrs()
        .int("axis")?
        .ok_or_else(|| attr_err("axis", "is required"))?;
    Ok(Box::new(Concat(axis)))
}

impl Kernel for Concat {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let first = args.first().ok_or("Concat needs at least one input")?;
        let rank = first.shape.len();
        let axis = axis(self.0, rank)?;
        for t in &args {
            let same_rank = t.shape.len() == rank;
            let same_other_dims = same_rank
                && t.shape
                    .iter()
                    .zip(&first.shape)
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !same_other_dims || t.elem != first.elem {
                return Err(format!(
                    "cannot concatenate {:?} {:?} with {:?} {:?} on axis {axis}",
                    t.elem, t.shape, first.elem, first.shape
                ));
            }
        }
        let outer: usize = first.shape[..axis].iter().product();
        let chunks: Vec<usize> = args
            .iter()
            .map(|t| t.shape[axis..].iter().product())
            .collect();
        let mut data = Vec::with_capacity(outer * chunks.iter().sum::<usize>());
        for o in 0..outer {
            for (t, &chunk) in args.iter().zip(&chunks) {
                data.extend_from_slice(&t.data[o * chunk..(o + 1) * chunk]);
            }
        }
        let mut shape = first.shape.clone();
        shape[axis] = args.iter().map(|t| t.shape[axis]).sum();
        Ok(vec![Tensor::new(first.elem, shape, data)?])
    }
}

/// Rows of each input cut or zero-padded to its declared width, side by side, as floats.
struct FeatureVectorizer(Vec<usize>);

pub(super) fn feature_vectorizer(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let dims = ctx
        .attrs()
        .ints("inputdimensions")?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| attr_err("inputdimensions", "negative width")))
        .collect::<Result<Vec<_>, _>>()?;
    if dims.len() != ctx.node.input.len() {
        return Err(attr_err(
            "inputdimensions",
            format!(
                "has {} entries for {} inputs",
                dims.len(),
                ctx.node.input.len()
            ),
        )
        .into());
    }
    Ok(Box::new(FeatureVectorizer(dims)))
}

impl Kernel for FeatureVectorizer {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let rows = args.first().map_or(0, |t| t.rows());
        if args.iter().any(|t| t.rows() != rows) {
            return Err("inputs have different numbers of rows".into());
        }
        let width: usize = self.0.iter().sum();
        let mut data = vec![0.0; rows * width];
        let mut offset = 0;
        for (t, &dim) in args.iter().zip(&self.0) {
            for (r, row) in t.matrix_rows().enumerate() {
                let take = row.len().min(dim);
                let at = r * width + offset;
                data[at..at + take].copy_from_slice(&row[..take]);
            }
            offset += dim;
        }
        Ok(vec![Tensor::coerced(Elem::F32, vec![rows, width], data)?])
    }
}

struct Reshape {
    shape: Vec<i64>,
    allow_zero: bool,
}

pub(super) fn reshape(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Reshape {
        shape: ctx.const_input(1, "shape")?.to_i64s(),
        allow_zero: ctx.attrs().int("allowzero")?.unwrap_or(0) != 0,
    }))
}

impl Kernel for Reshape {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = args
            .into_iter()
            .next()
            .ok_or("missing data input")?
            .into_owned();
        let total = t.data.len();
        let mut shape = Vec::with_capacity(self.shape.len());
        let mut infer = None;
        for (i, &d) in self.shape.iter().enumerate() {
            match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    shape.push(1);
                }
                0 if !self.allow_zero => shape.push(*t.shape.get(i).ok_or_else(|| {
                    format!("shape {:?} copies axis {i} of {:?}", self.shape, t.shape)
                })?),
                d => shape.push(
                    usize::try_from(d)
                        .map_err(|_| format!("invalid target shape {:?}", self.shape))?,
                ),
            }
        }
        if let Some(i) = infer {
            let known: usize = shape.iter().product();
            if known == 0 || !total.is_multiple_of(known) {
                return Err(format!("cannot reshape {:?} to {:?}", t.shape, self.shape));
            }
            shape[i] = total / known;
        }
        if shape.iter().product::<usize>() != total {
            return Err(format!("cannot reshape {:?} to {:?}", t.shape, self.shape));
        }
        t.shape = shape;
        Ok(vec![t])
    }
}

struct Flatten(i64);

pub(super) fn flatten(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    Ok(Box::new(Flatten(ctx.attrs().int("axis")?.unwrap_or(1))))
}

impl Kernel for Flatten {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let mut t = only(args)?.into_owned();
        let rank = t.shape.len();
        // Flatten's axis may equal the rank (everything in the first dimension).
        let split = if self.0 == rank as i64 {
            rank
        } else {
            axis(self.0, rank)?
        };
        let outer = t.shape[..split].iter().product();
        t.shape = vec![outer, t.shape[split..].iter().product()];
        Ok(vec![t])
    }
}
