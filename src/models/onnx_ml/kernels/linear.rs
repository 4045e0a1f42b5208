//! LinearClassifier and LinearRegressor: one dot product per class or target, then the
//! node's post-transform.

use std::borrow::Cow;

use super::{best_label, only, Kernel, NodeCtx};
use crate::models::onnx_attrs::{attr_err, Attrs};
use crate::models::onnx_ml::tensor::{Elem, Tensor};
use crate::models::tree_ensemble::transform::PostTransform;

/// `k` rows of coefficients over the input's columns, and their intercepts.
struct Weights {
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    k: usize,
    post_transform: PostTransform,
}

impl Weights {
    fn parse(a: &Attrs<'_>, k: usize) -> Result<Weights, String> {
        let coefficients: Vec<f64> = a
            .floats("coefficients")?
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        if k == 0 || coefficients.is_empty() || !coefficients.len().is_multiple_of(k) {
            return Err(attr_err(
                "coefficients",
                format!(
                    "has {} values, not a multiple of {k} rows",
                    coefficients.len()
                ),
            )
            .into());
        }
        let mut intercepts: Vec<f64> = a
            .floats("intercepts")?
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        if intercepts.is_empty() {
            intercepts = vec![0.0; k];
        }
        if intercepts.len() != k {
            return Err(attr_err(
                "intercepts",
                format!(
                    "has {} values for {k} rows of coefficients",
                    intercepts.len()
                ),
            )
            .into());
        }
        Ok(Weights {
            coefficients,
            intercepts,
            k,
            post_transform: PostTransform::from_attrs(a)?,
        })
    }

    /// Each row's `k` raw scores, accumulated in double and handed to `emit`.
    fn score(&self, input: &Tensor, mut emit: impl FnMut(&mut [f64])) -> Result<(), String> {
        let width = self.coefficients.len() / self.k;
        if input.width() != width {
            return Err(format!(
                "rows have {} values but the coefficients expect {width}",
                input.width()
            ));
        }
        let mut scores = vec![0.0; self.k];
        for row in input.matrix_rows() {
            for (j, (s, coef)) in scores
                .iter_mut()
                .zip(self.coefficients.chunks_exact(width))
                .enumerate()
            {
                *s = row.iter().zip(coef).map(|(x, c)| x * c).sum::<f64>() + self.intercepts[j];
            }
            emit(&mut scores);
        }
        Ok(())
    }
}

struct Regressor(Weights);

pub(super) fn regressor(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    let targets = a.int("targets")?.unwrap_or(1);
    let k = usize::try_from(targets)
        .ok()
        .filter(|&k| k > 0)
        .ok_or_else(|| attr_err("targets", format!("must be positive, got {targets}")))?;
    Ok(Box::new(Regressor(Weights::parse(&a, k)?)))
}

impl Kernel for Regressor {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let input = only(args)?;
        let mut out = Vec::with_capacity(input.rows() * self.0.k);
        self.0.score(&input, |scores| {
            self.0.post_transform.apply(scores);
            out.extend(scores.iter().map(|&s| Elem::F32.coerce(s)));
        })?;
        Ok(vec![Tensor::new(
            Elem::F32,
            vec![input.rows(), self.0.k],
            out,
        )?])
    }
}

struct Classifier {
    weights: Weights,
    /// Integer class labels, when the label output is read.
    labels: Option<Vec<i64>>,
    /// One row of coefficients for two labels: the row scores the second class.
    binary: bool,
}

pub(super) fn classifier(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let a = ctx.attrs();
    let ints = a.ints("classlabels_ints")?;
    let strings = a.strings("classlabels_strings")?;
    let n_labels = ints.len().max(strings.len());
    let label_used = ctx.used.first().copied().unwrap_or(false);
    if label_used && ints.is_empty() {
        return Err(attr_err(
            "classlabels_strings",
            "the label output is read by the graph, and string labels are not supported",
        )
        .into());
    }
    let n_coefficients = a.floats("coefficients")?.len();
    let k = a.floats("intercepts")?.len().max(1);
    let binary = k == 1 && n_labels == 2;
    if !binary && k != n_labels {
        return Err(attr_err(
            "intercepts",
            format!("has {k} classes but there are {n_labels} class labels ({n_coefficients} coefficients)"),
        )
        .into());
    }
    Ok(Box::new(Classifier {
        weights: Weights::parse(&a, k)?,
        labels: label_used.then(|| ints.to_vec()),
        binary,
    }))
}

impl Kernel for Classifier {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let input = only(args)?;
        let n_out = if self.binary { 2 } else { self.weights.k };
        let mut scores_out = Vec::with_capacity(input.rows() * n_out);
        let mut labels_out = Vec::new();
        let post = self.weights.post_transform;
        self.weights.score(&input, |scores| {
            let mut pair;
            let row: &mut [f64] = if self.binary {
                // onnxruntime's binary convention: the score s of the second class becomes
                // [1 - p, p] with p = σ(s) under LOGISTIC, p = s under NONE, SOFTMAX and
                // SOFTMAX_ZERO (a softmax of one value would be 1).
                let s = scores[0];
                let p = match post {
                    PostTransform::None | PostTransform::Softmax | PostTransform::SoftmaxZero => s,
                    other => {
                        let mut one = [s];
                        other.apply(&mut one);
                        one[0]
                    }
                };
                pair = [1.0 - p, p];
                &mut pair
            } else {
                post.apply(scores);
                scores
            };
            if let Some(labels) = &self.labels {
                labels_out.push(best_label(row, labels));
            }
            scores_out.extend(row.iter().map(|&s| Elem::F32.coerce(s)));
        })?;
        let rows = input.rows();
        Ok(vec![
            Tensor::new(
                Elem::I64,
                vec![if self.labels.is_some() { rows } else { 0 }],
                labels_out,
            )?,
            Tensor::new(Elem::F32, vec![rows, n_out], scores_out)?,
        ])
    }
}
