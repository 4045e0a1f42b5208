//! The Open Inference Protocol ("KServe V2"), independent of its transport: datatypes, tensor
//! elements in JSON and raw form, and how a model's inputs and prediction fields map to
//! tensors. `http::v2` serves it over REST, `grpc` over gRPC.

pub mod datatype;
pub mod mapping;
pub mod tensor;

pub use datatype::DataType;
pub use mapping::{InputTensor, OutputTensor, TensorSpec};
pub use tensor::Elements;

/// The extensions `GET /v2` and `ServerMetadata` announce.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data"];

/// What model metadata calls the platform of every model here: an ONNX graph.
pub const PLATFORM: &str = "onnx";

/// The server's name in its metadata.
pub const SERVER_NAME: &str = "modelgate";
