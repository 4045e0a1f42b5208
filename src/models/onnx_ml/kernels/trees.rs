//! TreeEnsembleClassifier / TreeEnsembleRegressor nodes inside a graph, run by the native
//! tree evaluator (`models::tree_ensemble`).

use std::borrow::Cow;

use super::{best_label, only, Kernel, NodeCtx};
use crate::models::onnx_ml::tensor::{Elem, Tensor};
use crate::models::tree_ensemble::{ClassLabels, TreeEnsemble};

struct Ensemble {
    trees: TreeEnsemble,
    /// Integer class labels, for a classifier whose label output is read.
    labels: Option<Vec<i64>>,
    classifier: bool,
}

pub(super) fn ensemble(ctx: &NodeCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let trees = TreeEnsemble::from_node(ctx.node).map_err(|e| e.to_string())?;
    let classifier = trees.class_labels().is_some();
    let labels = match trees.class_labels() {
        Some(_) if !ctx.used.first().copied().unwrap_or(false) => None,
        Some(ClassLabels::Int64(labels)) => Some(labels.clone()),
        Some(ClassLabels::Strings(_)) => {
            return Err(
                "the label output is read by the graph, and string labels are not supported".into(),
            )
        }
        None => None,
    };
    Ok(Box::new(Ensemble {
        trees,
        labels,
        classifier,
    }))
}

impl Kernel for Ensemble {
    fn run(&self, args: Vec<Cow<'_, Tensor>>) -> Result<Vec<Tensor>, String> {
        let input = only(args)?;
        let features = self.trees.n_features();
        let width = input.width();
        if width < features {
            return Err(format!(
                "rows have {width} values but the trees read feature {}",
                features - 1
            ));
        }
        // The evaluator reads f32 rows of exactly its width.
        let rows: Vec<f32> = input
            .matrix_rows()
            .flat_map(|row| row[..features].iter().map(|&v| v as f32))
            .collect();
        let n = input.rows();
        let k = self.trees.n_outputs();
        let scores = self.trees.predict(&rows);
        let scores_tensor = Tensor::new(
            Elem::F32,
            vec![n, k],
            scores.iter().map(|&v| f64::from(v)).collect(),
        )?;
        if !self.classifier {
            return Ok(vec![scores_tensor]);
        }
        let labels: Vec<f64> = match &self.labels {
            Some(labels) => scores
                .chunks_exact(k.max(1))
                .map(|row| best_label(row, labels))
                .collect(),
            None => Vec::new(),
        };
        let label_rows = labels.len();
        Ok(vec![
            Tensor::new(Elem::I64, vec![label_rows], labels)?,
            scores_tensor,
        ])
    }
}
