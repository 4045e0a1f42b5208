//! Typed, validated access to an ONNX node's attributes and to constant tensors, shared by
//! the tree-ensemble evaluator and the ONNX-ML graph executor.

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;

// onnx TensorProto.DataType / DataLocation codes.
pub(crate) const DATA_TYPE_FLOAT: i32 = 1;
const DATA_TYPE_UINT8: i32 = 2;
pub(crate) const DATA_TYPE_INT32: i32 = 6;
pub(crate) const DATA_TYPE_INT64: i32 = 7;
pub(crate) const DATA_TYPE_BOOL: i32 = 9;
pub(crate) const DATA_TYPE_DOUBLE: i32 = 11;
const DATA_LOCATION_EXTERNAL: i32 = 1;

/// An attribute (or constant tensor) that is missing, mistyped or malformed.
#[derive(Debug, thiserror::Error)]
#[error("attribute `{attribute}`: {reason}")]
pub struct AttrError {
    pub attribute: &'static str,
    pub reason: String,
}

pub(crate) fn attr_err(attribute: &'static str, reason: impl Into<String>) -> AttrError {
    AttrError {
        attribute,
        reason: reason.into(),
    }
}

/// Typed access to a node's attributes; every error names the attribute.
pub(crate) struct Attrs<'a>(pub(crate) &'a pb::NodeProto);

impl<'a> Attrs<'a> {
    fn find(
        &self,
        name: &'static str,
        expected: AttributeType,
    ) -> Result<Option<&'a pb::AttributeProto>, AttrError> {
        let Some(attr) = self.0.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        // IR < 0.0.2 leaves the type unset; the populated field is then all we have.
        if attr.r#type != AttributeType::Undefined as i32 && attr.r#type != expected as i32 {
            let found = AttributeType::try_from(attr.r#type).map_or("unknown", |t| t.as_str_name());
            return Err(attr_err(
                name,
                format!("expected type {} but found {found}", expected.as_str_name()),
            ));
        }
        Ok(Some(attr))
    }

    pub(crate) fn ints(&self, name: &'static str) -> Result<&'a [i64], AttrError> {
        Ok(self
            .find(name, AttributeType::Ints)?
            .map_or(&[][..], |a| &a.ints))
    }

    pub(crate) fn floats(&self, name: &'static str) -> Result<&'a [f32], AttrError> {
        Ok(self
            .find(name, AttributeType::Floats)?
            .map_or(&[][..], |a| &a.floats))
    }

    pub(crate) fn float(&self, name: &'static str) -> Result<Option<f32>, AttrError> {
        Ok(self.find(name, AttributeType::Float)?.map(|a| a.f))
    }

    pub(crate) fn tensor(
        &self,
        name: &'static str,
    ) -> Result<Option<&'a pb::TensorProto>, AttrError> {
        Ok(self
            .find(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }

    pub(crate) fn int(&self, name: &'static str) -> Result<Option<i64>, AttrError> {
        Ok(self.find(name, AttributeType::Int)?.map(|a| a.i))
    }

    pub(crate) fn string(&self, name: &'static str) -> Result<Option<&'a str>, AttrError> {
        self.find(name, AttributeType::String)?
            .map(|a| utf8(name, &a.s))
            .transpose()
    }

    pub(crate) fn strings(&self, name: &'static str) -> Result<Vec<&'a str>, AttrError> {
        let Some(attr) = self.find(name, AttributeType::Strings)? else {
            return Ok(Vec::new());
        };
        attr.strings.iter().map(|s| utf8(name, s)).collect()
    }

    /// A float list that producers may give instead as a double tensor `tensor_name`.
    pub(crate) fn reals(
        &self,
        name: &'static str,
        tensor_name: &'static str,
    ) -> Result<Vec<f64>, AttrError> {
        if let Some(tensor) = self.find(tensor_name, AttributeType::Tensor)? {
            if let Some(t) = &tensor.t {
                return tensor_values(tensor_name, t);
            }
        }
        Ok(self.floats(name)?.iter().map(|&v| f64::from(v)).collect())
    }
}

fn utf8<'a>(name: &'static str, bytes: &'a [u8]) -> Result<&'a str, AttrError> {
    std::str::from_utf8(bytes).map_err(|_| attr_err(name, "is not valid UTF-8"))
}

/// The values of a float or double tensor.
pub(crate) fn tensor_values(
    name: &'static str,
    t: &pb::TensorProto,
) -> Result<Vec<f64>, AttrError> {
    match t.data_type {
        DATA_TYPE_FLOAT | DATA_TYPE_DOUBLE => numeric_values(name, t),
        other => Err(attr_err(
            name,
            format!("expected a float or double tensor, found data type {other}"),
        )),
    }
}

/// The values of a float, double, int32, int64, uint8 or bool tensor, widened to f64 (exact for
/// every integer a tabular graph holds: below 2^53).
pub(crate) fn numeric_values(
    name: &'static str,
    t: &pb::TensorProto,
) -> Result<Vec<f64>, AttrError> {
    if t.data_location == Some(DATA_LOCATION_EXTERNAL) {
        return Err(attr_err(name, "external tensor data is not supported"));
    }
    match t.data_type {
        DATA_TYPE_FLOAT if t.raw_data.is_empty() => {
            Ok(t.float_data.iter().map(|&v| f64::from(v)).collect())
        }
        DATA_TYPE_FLOAT => decode_raw::<4>(name, &t.raw_data, |b| f64::from(f32::from_le_bytes(b))),
        DATA_TYPE_DOUBLE if t.raw_data.is_empty() => Ok(t.double_data.clone()),
        DATA_TYPE_DOUBLE => decode_raw::<8>(name, &t.raw_data, f64::from_le_bytes),
        DATA_TYPE_INT64 if t.raw_data.is_empty() => {
            Ok(t.int64_data.iter().map(|&v| v as f64).collect())
        }
        DATA_TYPE_INT64 => decode_raw::<8>(name, &t.raw_data, |b| i64::from_le_bytes(b) as f64),
        DATA_TYPE_INT32 | DATA_TYPE_BOOL if t.raw_data.is_empty() => {
            Ok(t.int32_data.iter().map(|&v| f64::from(v)).collect())
        }
        DATA_TYPE_INT32 => decode_raw::<4>(name, &t.raw_data, |b| f64::from(i32::from_le_bytes(b))),
        DATA_TYPE_BOOL => decode_raw::<1>(name, &t.raw_data, |b| f64::from(b[0] != 0)),
        DATA_TYPE_UINT8 if t.raw_data.is_empty() => {
            Ok(t.int32_data.iter().map(|&v| f64::from(v)).collect())
        }
        DATA_TYPE_UINT8 => decode_raw::<1>(name, &t.raw_data, |b| f64::from(b[0])),
        other => Err(attr_err(
            name,
            format!("expected a numeric tensor, found data type {other}"),
        )),
    }
}

fn decode_raw<const N: usize>(
    name: &'static str,
    raw: &[u8],
    convert: impl Fn([u8; N]) -> f64,
) -> Result<Vec<f64>, AttrError> {
    if !raw.len().is_multiple_of(N) {
        return Err(attr_err(
            name,
            format!("raw data length {} is not a multiple of {N}", raw.len()),
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|chunk| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(chunk);
            convert(bytes)
        })
        .collect())
}

/// Parallel attribute lists must line up entry for entry.
pub(crate) fn check_len(
    name: &'static str,
    len: usize,
    reference: &'static str,
    expected: usize,
) -> Result<(), AttrError> {
    if len == expected {
        Ok(())
    } else {
        Err(attr_err(
            name,
            format!("has {len} entries but {reference} has {expected}"),
        ))
    }
}

// Graph loading reports every refusal as text naming the node; this lets `?` carry an
// attribute error there.
impl From<AttrError> for String {
    fn from(e: AttrError) -> String {
        e.to_string()
    }
}

/// Writing attributes: the opset-5 tree rewrite writes a legacy node, and tests write graphs.
pub(crate) mod make {
    use tract_onnx::pb;
    use tract_onnx::pb::attribute_proto::AttributeType;

    pub(crate) fn attr(name: &str, ty: AttributeType) -> pb::AttributeProto {
        pb::AttributeProto {
            name: name.to_owned(),
            r#type: ty as i32,
            ..Default::default()
        }
    }

    pub(crate) fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
        pb::AttributeProto {
            ints: v.to_vec(),
            ..attr(name, AttributeType::Ints)
        }
    }

    pub(crate) fn int(name: &str, v: i64) -> pb::AttributeProto {
        pb::AttributeProto {
            i: v,
            ..attr(name, AttributeType::Int)
        }
    }

    #[cfg(test)]
    pub(crate) fn floats(name: &str, v: &[f32]) -> pb::AttributeProto {
        pb::AttributeProto {
            floats: v.to_vec(),
            ..attr(name, AttributeType::Floats)
        }
    }

    pub(crate) fn string(name: &str, v: &str) -> pb::AttributeProto {
        pb::AttributeProto {
            s: v.as_bytes().to_vec(),
            ..attr(name, AttributeType::String)
        }
    }

    pub(crate) fn strings<S: AsRef<[u8]>>(name: &str, v: &[S]) -> pb::AttributeProto {
        pb::AttributeProto {
            strings: v.iter().map(|s| s.as_ref().to_vec()).collect(),
            ..attr(name, AttributeType::Strings)
        }
    }

    pub(crate) fn tensor(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
        pb::AttributeProto {
            t: Some(t),
            ..attr(name, AttributeType::Tensor)
        }
    }
}
