//! The gRPC messages' tensors: `contents` (one repeated field per datatype family) or
//! `raw_*_contents`, to and from [`Elements`].

use super::proto::model_infer_request::InferInputTensor;
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::{InferParameter, InferTensorContents};
use crate::http::problem::ApiError;
use crate::v2::{DataType, Elements, InputTensor, OutputTensor};

/// The request's input tensors; `raw` is `raw_input_contents`, one entry per input or none.
pub fn inputs(
    tensors: Vec<InferInputTensor>,
    raw: Vec<Vec<u8>>,
) -> Result<Vec<InputTensor>, ApiError> {
    if !raw.is_empty() && raw.len() != tensors.len() {
        return Err(ApiError::invalid_tensor(format!(
            "raw_input_contents has {} entries for {} inputs",
            raw.len(),
            tensors.len()
        )));
    }
    let mut raw = raw.into_iter();
    tensors
        .into_iter()
        .map(|tensor| {
            let name = format!("input {:?}", tensor.name);
            let datatype =
                DataType::of_input(&name, &tensor.datatype).map_err(ApiError::invalid_tensor)?;
            let elements = match (raw.next(), tensor.contents) {
                (Some(_), Some(_)) => Err("has contents as well as raw_input_contents".into()),
                (Some(bytes), None) => Elements::from_raw(datatype, &bytes),
                (None, Some(contents)) => Ok(from_contents(datatype, contents)),
                (None, None) => Ok(from_contents(datatype, InferTensorContents::default())),
            }
            .map_err(|e: String| ApiError::invalid_tensor(format!("{name}: {e}")))?;
            Ok(InputTensor {
                name: tensor.name,
                datatype,
                shape: tensor.shape,
                elements,
            })
        })
        .collect()
}

/// The elements of `datatype` from the field the protocol keeps them in.
fn from_contents(datatype: DataType, contents: InferTensorContents) -> Elements {
    match datatype {
        DataType::Bool => Elements::Bool(contents.bool_contents),
        DataType::I8 | DataType::I16 | DataType::I32 => {
            Elements::Int(contents.int_contents.into_iter().map(i64::from).collect())
        }
        DataType::I64 => Elements::Int(contents.int64_contents),
        DataType::U8 | DataType::U16 | DataType::U32 => {
            Elements::UInt(contents.uint_contents.into_iter().map(u64::from).collect())
        }
        DataType::U64 => Elements::UInt(contents.uint64_contents),
        DataType::F32 => {
            Elements::Float(contents.fp32_contents.into_iter().map(f64::from).collect())
        }
        DataType::F64 => Elements::Float(contents.fp64_contents),
        DataType::Bytes => Elements::Bytes(contents.bytes_contents),
    }
}

/// The answer's tensors, and their raw contents when `raw` (the request sent raw inputs, so
/// its client reads raw outputs, as Triton's does).
pub fn outputs(tensors: Vec<OutputTensor>, raw: bool) -> (Vec<InferOutputTensor>, Vec<Vec<u8>>) {
    let mut raw_contents = Vec::new();
    let outputs = tensors
        .into_iter()
        .map(|tensor| {
            let contents = if raw {
                raw_contents.push(tensor.elements.to_raw());
                None
            } else {
                Some(to_contents(tensor.elements))
            };
            InferOutputTensor {
                name: tensor.name,
                datatype: tensor.datatype.as_str().to_string(),
                shape: tensor.shape,
                parameters: Default::default(),
                contents,
            }
        })
        .collect();
    (outputs, raw_contents)
}

fn to_contents(elements: Elements) -> InferTensorContents {
    let mut contents = InferTensorContents::default();
    match elements {
        Elements::Bool(v) => contents.bool_contents = v,
        Elements::Int(v) => contents.int64_contents = v,
        Elements::UInt(v) => contents.uint64_contents = v,
        Elements::Float(v) => contents.fp64_contents = v,
        Elements::Bytes(v) => contents.bytes_contents = v,
    }
    contents
}

pub fn string_parameter(value: String) -> InferParameter {
    InferParameter {
        parameter_choice: Some(super::proto::infer_parameter::ParameterChoice::StringParam(
            value,
        )),
    }
}

pub fn int_parameter(value: i64) -> InferParameter {
    InferParameter {
        parameter_choice: Some(super::proto::infer_parameter::ParameterChoice::Int64Param(
            value,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(
        name: &str,
        datatype: &str,
        contents: Option<InferTensorContents>,
    ) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: vec![1],
            parameters: Default::default(),
            contents,
        }
    }

    #[test]
    fn contents_are_read_from_the_datatype_s_field() {
        let contents = InferTensorContents {
            int_contents: vec![-4],
            ..Default::default()
        };
        let read = inputs(vec![tensor("a", "INT32", Some(contents))], Vec::new()).expect("ok");
        assert_eq!(read[0].elements, Elements::Int(vec![-4]));
    }

    #[test]
    fn raw_contents_must_match_the_inputs_one_to_one() {
        let raw = vec![1.5f64.to_le_bytes().to_vec()];
        let read = inputs(vec![tensor("a", "FP64", None)], raw.clone()).expect("ok");
        assert_eq!(read[0].elements, Elements::Float(vec![1.5]));
        let two = vec![tensor("a", "FP64", None), tensor("b", "FP64", None)];
        let err = inputs(two, raw).expect_err("one raw entry for two inputs");
        assert!(
            err.detail.contains("1 entries for 2 inputs"),
            "{}",
            err.detail
        );
        let err = inputs(vec![tensor("a", "FP16", None)], Vec::new()).expect_err("FP16");
        assert!(err.detail.contains("\"FP16\""), "{}", err.detail);
    }

    #[test]
    fn outputs_are_raw_when_asked() {
        let tensor = OutputTensor {
            name: "p".into(),
            datatype: DataType::F64,
            shape: vec![1],
            elements: Elements::Float(vec![0.5]),
        };
        let (outputs, raw) = outputs(vec![tensor.clone()], true);
        assert!(outputs[0].contents.is_none());
        assert_eq!(raw, vec![0.5f64.to_le_bytes().to_vec()]);
        let (outputs, raw) = super::outputs(vec![tensor], false);
        assert!(raw.is_empty());
        assert_eq!(
            outputs[0]
                .contents
                .as_ref()
                .map(|c| c.fp64_contents.clone()),
            Some(vec![0.5])
        );
    }
}
