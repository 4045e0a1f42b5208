//! The `/v2` infer request and answer bodies: JSON, or JSON followed by binary tensors (the
//! binary tensor data extension, which `tritonclient.http` uses by default).

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::http::json;
use crate::http::problem::ApiError;
use crate::v2::{DataType, Elements, InputTensor, OutputTensor};

/// The length of the JSON part of a body that continues with binary tensors.
pub const HEADER_LENGTH: HeaderName = HeaderName::from_static("inference-header-content-length");

/// A request's or tensor's `parameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Parameters(Map<String, Value>);

impl Parameters {
    fn flag(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(Value::as_bool)
    }

    /// A size parameter; present but not a whole number is an error.
    fn size(&self, name: &str, tensor: &str) -> Result<Option<usize>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid_tensor(format!(
                        "{tensor}: {name} must be a whole number of bytes"
                    ))
                }),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InferenceRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Parameters,
    pub inputs: Vec<RequestInput>,
    #[serde(default)]
    pub outputs: Vec<RequestOutput>,
}

#[derive(Debug, Deserialize)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    /// Text rather than [`DataType`], so that an unknown one is named in a 400.
    pub datatype: String,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Parameters,
}

/// A request, its tensors decoded.
pub struct Decoded {
    pub id: Option<String>,
    pub inputs: Vec<InputTensor>,
    /// The outputs asked for, each with whether it goes back as binary (none: all of them,
    /// binary when `binary_data_output` says so).
    pub outputs: Vec<(String, bool)>,
    pub all_binary: bool,
}

pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Decoded, ApiError> {
    let (text, mut binary) = match headers.get(HEADER_LENGTH) {
        None => (body, &[][..]),
        Some(value) => {
            let length = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n <= body.len())
                .ok_or_else(|| {
                    ApiError::invalid_tensor(format!(
                        "Inference-Header-Content-Length must be the length of the body's \
                         JSON part, at most the body's {} bytes",
                        body.len()
                    ))
                })?;
            body.split_at(length)
        }
    };
    let request: InferenceRequest = json::parse(text)?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let name = format!("input {:?}", input.name);
        let datatype =
            DataType::of_input(&name, &input.datatype).map_err(ApiError::invalid_tensor)?;
        let size = input.parameters.size("binary_data_size", &name)?;
        let elements = match (size, &input.data) {
            (Some(size), None) => {
                if size > binary.len() {
                    return Err(ApiError::invalid_tensor(format!(
                        "{name} has binary_data_size {size}; {} bytes of binary data remain",
                        binary.len()
                    )));
                }
                let (raw, rest) = binary.split_at(size);
                binary = rest;
                Elements::from_raw(datatype, raw)
            }
            (None, Some(data)) => Elements::from_json(datatype, data),
            (Some(_), Some(_)) => Err("has both data and binary_data_size".to_string()),
            (None, None) => Err("has neither data nor binary_data_size".to_string()),
        }
        .map_err(|e| ApiError::invalid_tensor(format!("{name}: {e}")))?;
        inputs.push(InputTensor {
            name: input.name,
            datatype,
            shape: input.shape,
            elements,
        });
    }
    if !binary.is_empty() {
        return Err(ApiError::invalid_tensor(format!(
            "the body has {} bytes of binary data that no input's binary_data_size claims",
            binary.len()
        )));
    }
    let all_binary = request
        .parameters
        .flag("binary_data_output")
        .unwrap_or(false);
    let outputs = request
        .outputs
        .into_iter()
        .map(|output| {
            let binary = output.parameters.flag("binary_data").unwrap_or(all_binary);
            (output.name, binary)
        })
        .collect();
    Ok(Decoded {
        id: request.id,
        inputs,
        outputs,
        all_binary,
    })
}

#[derive(Debug, Serialize)]
pub struct InferenceResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub parameters: ResponseParameters,
    pub outputs: Vec<ResponseOutput>,
}

/// What `/api/v1` answers in `metadata`, for the clients that read it.
#[derive(Debug, Serialize)]
pub struct ResponseParameters {
    /// The prediction's record (absent when it could not be kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_log_id: Option<String>,
    /// Only for prepaid keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_remaining: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ResponseOutput {
    name: String,
    datatype: DataType,
    shape: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Elements>,
}

#[derive(Debug, Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// The answer: JSON alone, or JSON followed by the binary outputs in order.
pub fn encode(
    mut response: InferenceResponse,
    outputs: Vec<OutputTensor>,
    binary: impl Fn(&str) -> bool,
) -> Response {
    let mut blobs = Vec::new();
    for output in outputs {
        let (parameters, data) = if binary(&output.name) {
            let raw = output.elements.to_raw();
            let size = raw.len();
            blobs.push(raw);
            (
                Some(BinarySize {
                    binary_data_size: size,
                }),
                None,
            )
        } else {
            (None, Some(output.elements))
        };
        response.outputs.push(ResponseOutput {
            name: output.name,
            datatype: output.datatype,
            shape: output.shape,
            parameters,
            data,
        });
    }
    // A struct of strings, numbers and JSON values always serializes.
    let mut body = serde_json::to_vec(&response).unwrap_or_default();
    if blobs.is_empty() {
        return (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
    }
    let json_length = body.len();
    blobs.iter().for_each(|blob| body.extend_from_slice(blob));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (HEADER_LENGTH, HeaderValue::from(json_length)),
        ],
        body,
    )
        .into_response()
}
