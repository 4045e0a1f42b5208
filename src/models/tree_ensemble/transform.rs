//! How leaf weights combine across trees (`Aggregate`) and the ONNX post-transform applied
//! to the final scores (`PostTransform`).

use crate::models::onnx_attrs::{attr_err, AttrError, Attrs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl Aggregate {
    #[inline]
    pub(super) fn add(self, scores: &mut [f64], seen: &mut [bool], output: usize, value: f64) {
        let score = &mut scores[output];
        match self {
            Aggregate::Sum | Aggregate::Average => *score += value,
            Aggregate::Min => {
                if !seen[output] || value < *score {
                    *score = value;
                }
            }
            Aggregate::Max => {
                if !seen[output] || value > *score {
                    *score = value;
                }
            }
        }
        seen[output] = true;
    }

    pub(super) fn finish(self, score: f64, seen: bool, n_trees: usize) -> f64 {
        match self {
            Aggregate::Average if n_trees > 0 => score / n_trees as f64,
            // MIN/MAX of nothing is 0, as in onnxruntime.
            Aggregate::Min | Aggregate::Max if !seen => 0.0,
            _ => score,
        }
    }
}

impl PostTransform {
    /// The node's `post_transform` attribute (NONE when absent).
    pub(crate) fn from_attrs(a: &Attrs<'_>) -> Result<PostTransform, AttrError> {
        let name = a.string("post_transform")?.unwrap_or("NONE");
        PostTransform::parse(name)
            .ok_or_else(|| attr_err("post_transform", format!("unknown post transform `{name}`")))
    }

    fn parse(s: &str) -> Option<PostTransform> {
        Some(match s {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            _ => return None,
        })
    }

    pub(crate) fn apply(self, scores: &mut [f64]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
        }
    }
}

pub(crate) fn logistic(x: f64) -> f64 {
    // Evaluated on |x| so exp never overflows for large negative scores.
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

fn softmax(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// Softmax in which (near-)zero scores mean "no evidence" and stay 0, as in onnxruntime.
fn softmax_zero(scores: &mut [f64]) {
    const ZERO: f64 = 1e-7;
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = if s.abs() > ZERO {
            (*s - max).exp()
        } else {
            0.0
        };
        sum += *s;
    }
    if sum > 0.0 {
        scores.iter_mut().for_each(|s| *s /= sum);
    }
}

/// sqrt(2) * erfinv(2p - 1) with the same closed-form erfinv approximation (Winitzki,
/// a = 0.147) as onnxruntime and the ONNX reference implementation, evaluated in f32 step
/// by step as onnxruntime does: near p = 0.5 its float cancellation moves results by up to
/// 1e-3, so an f64 evaluation would disagree with it there.
pub(super) fn probit(p: f64) -> f64 {
    const SQRT_2: f32 = std::f32::consts::SQRT_2;
    f64::from(SQRT_2 * erf_inv(2.0 * (p as f32) - 1.0))
}

fn erf_inv(x: f32) -> f32 {
    const A: f32 = 0.147;
    // The truncated constant onnxruntime uses; the exact one would shift results slightly.
    #[allow(clippy::approx_constant)]
    const PI: f32 = 3.14159;
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let v = 2.0 / (PI * A) + 0.5 * ln;
    let v2 = 1.0 / A * ln;
    let v3 = -v + (v * v - v2).sqrt();
    sign * v3.sqrt()
}
