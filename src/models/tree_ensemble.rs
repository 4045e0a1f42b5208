//! TEMPORARY stub until the native evaluator lands.
use tract_onnx::pb;
#[derive(Debug, thiserror::Error)]
#[error("tree ensemble")]
pub struct TreeEnsembleError;
pub struct TreeEnsemble;
impl TreeEnsemble {
    pub fn from_model(_model: &pb::ModelProto) -> Result<Option<TreeEnsemble>, TreeEnsembleError> { Ok(None) }
    pub fn n_features(&self) -> usize { 0 }
    pub fn n_outputs(&self) -> usize { 0 }
    pub fn scores_output_name(&self) -> &str { "" }
    pub fn predict(&self, _rows: &[f32]) -> Vec<f32> { Vec::new() }
}
