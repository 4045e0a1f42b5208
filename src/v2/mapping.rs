//! A model as the protocol sees it: each manifest input is a named tensor with one element
//! per row, each prediction field an output tensor. The rows a model scores are built from
//! the input tensors, so V2 requests take the same validation, defaults, scoring and record
//! as `/api/v1` predictions.

use serde::Serialize;
use serde_json::{Map, Value};

use super::datatype::DataType;
use super::tensor::Elements;
use crate::models::manifest::{InputType, Manifest, ModelKind};

/// A tensor of a model's metadata; `shape` is always `[-1]`: one element per row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: [i64; 1],
}

impl TensorSpec {
    fn new(name: &str, datatype: DataType) -> TensorSpec {
        TensorSpec {
            name: name.to_string(),
            datatype,
            shape: [-1],
        }
    }
}

/// How a prediction field becomes an output tensor.
fn input_datatype(kind: InputType) -> DataType {
    match kind {
        InputType::Number => DataType::F64,
        InputType::Boolean => DataType::Bool,
        InputType::String => DataType::Bytes,
    }
}

/// Whether an input declared `kind` reads a tensor of `datatype`.
fn reads(kind: InputType, datatype: DataType) -> bool {
    match kind {
        InputType::Number => datatype.is_numeric(),
        InputType::Boolean => datatype == DataType::Bool,
        InputType::String => datatype == DataType::Bytes,
    }
}

pub fn inputs(manifest: &Manifest) -> Vec<TensorSpec> {
    manifest
        .inputs
        .iter()
        .map(|input| TensorSpec::new(&input.name, input_datatype(input.kind)))
        .collect()
}

/// The prediction fields the manifest declares, in the order `render` fills them.
pub fn outputs(manifest: &Manifest) -> Vec<TensorSpec> {
    let spec = &manifest.output;
    let mut outputs = Vec::new();
    if let Some(field) = &spec.probability_field {
        outputs.push(TensorSpec::new(field, DataType::F64));
    }
    if let Some(score) = &spec.score {
        outputs.push(TensorSpec::new(&score.field, DataType::I64));
    }
    if let Some(label) = &spec.label {
        outputs.push(TensorSpec::new(&label.field, DataType::Bytes));
    }
    if let (Some(field), ModelKind::Classifier) = (&spec.confidence_field, manifest.kind) {
        outputs.push(TensorSpec::new(field, DataType::F64));
    }
    if let Some(factors) = &spec.factors {
        outputs.push(TensorSpec::new(&factors.field, DataType::Bytes));
    }
    outputs
}

/// An input tensor of a request, decoded.
#[derive(Debug, Clone)]
pub struct InputTensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    pub elements: Elements,
}

/// The rows the model scores, one object per batch row: each given input's element under
/// its name. Inputs not given are left out, for the model to treat as `/api/v1` does (its
/// default, an encoder's fallback, or `validation_failed` naming it). Every mismatch is
/// named in the message.
pub fn rows(manifest: &Manifest, tensors: &[InputTensor]) -> Result<Vec<Value>, String> {
    let mut batch: Option<usize> = None;
    let mut specs = Vec::with_capacity(tensors.len());
    for (i, tensor) in tensors.iter().enumerate() {
        let name = &tensor.name;
        if tensors[..i].iter().any(|t| t.name == *name) {
            return Err(format!("input {name:?} is given twice"));
        }
        let spec = manifest
            .inputs
            .iter()
            .find(|spec| spec.name == *name)
            .ok_or_else(|| {
                format!(
                    "the model has no input {name:?}; its inputs are {}",
                    names(&inputs(manifest))
                )
            })?;
        if !reads(spec.kind, tensor.datatype) {
            return Err(format!(
                "input {name:?} has datatype {}; it takes {}",
                tensor.datatype,
                input_datatype(spec.kind)
            ));
        }
        let rows = match tensor.shape.as_slice() {
            [n] | [n, 1] if *n >= 0 => *n as usize,
            _ => {
                return Err(format!(
                    "input {name:?} has shape {:?}; it takes [N] or [N, 1], N the batch size",
                    tensor.shape
                ))
            }
        };
        if tensor.elements.len() != rows {
            return Err(format!(
                "input {name:?} has shape {:?} but {} elements",
                tensor.shape,
                tensor.elements.len()
            ));
        }
        match batch {
            Some(n) if n != rows => {
                return Err(format!(
                    "input {name:?} has {rows} rows; the inputs before it have {n}"
                ))
            }
            _ => batch = Some(rows),
        }
        specs.push(spec);
    }
    let rows = batch.unwrap_or(0);
    let max = manifest.max_batch_size;
    if rows == 0 || rows > max {
        return Err(format!(
            "the batch has {rows} rows; the model takes 1 to {max}"
        ));
    }
    (0..rows)
        .map(|row| {
            tensors
                .iter()
                .map(|tensor| {
                    let value = tensor
                        .elements
                        .json(row)
                        .map_err(|e| format!("input {:?}: element {row} {e}", tensor.name))?;
                    Ok((tensor.name.clone(), value))
                })
                .collect::<Result<Map<String, Value>, String>>()
                .map(Value::Object)
        })
        .collect()
}

fn names(specs: &[TensorSpec]) -> String {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    names.join(", ")
}

/// The outputs a request asks for (all when it names none), checked before anything is scored.
pub fn select(manifest: &Manifest, requested: &[&str]) -> Result<Vec<TensorSpec>, String> {
    let all = outputs(manifest);
    if requested.is_empty() {
        return Ok(all);
    }
    requested
        .iter()
        .map(|name| {
            all.iter()
                .find(|spec| spec.name == *name)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "the model has no output {name:?}; its outputs are {}",
                        names(&all)
                    )
                })
        })
        .collect()
}

/// Field `name` of each row.
fn column<'a>(rows: &'a [Value], name: &'a str) -> impl Iterator<Item = Option<&'a Value>> + 'a {
    rows.iter().map(move |row| row.get(name))
}

/// An output tensor of an answer.
#[derive(Debug, Clone)]
pub struct OutputTensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
    pub elements: Elements,
}

/// The selected outputs of `predictions` (one object per row). A list-valued field (the
/// factors) is BYTES, each element the row's list as JSON text.
pub fn tensors(selected: &[TensorSpec], predictions: &[Value]) -> Vec<OutputTensor> {
    selected
        .iter()
        .map(|spec| {
            let name = spec.name.as_str();
            let elements = match spec.datatype {
                DataType::I64 => Elements::Int(
                    column(predictions, name)
                        .map(|v| v.and_then(Value::as_i64).unwrap_or_default())
                        .collect(),
                ),
                DataType::Bytes => Elements::Bytes(
                    column(predictions, name)
                        .map(|v| match v {
                            Some(Value::String(text)) => text.as_bytes().to_vec(),
                            Some(other) => other.to_string().into_bytes(),
                            None => Vec::new(),
                        })
                        .collect(),
                ),
                _ => Elements::Float(
                    column(predictions, name)
                        .map(|v| v.and_then(Value::as_f64).unwrap_or(f64::NAN))
                        .collect(),
                ),
            };
            OutputTensor {
                name: spec.name.clone(),
                datatype: spec.datatype,
                shape: vec![predictions.len() as i64],
                elements,
            }
        })
        .collect()
}
