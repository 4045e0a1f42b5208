//! Typed, validated access to a node's attributes, including float lists given as tensors.

use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;

use super::{
    attr_err, TreeEnsembleError, DATA_LOCATION_EXTERNAL, DATA_TYPE_DOUBLE, DATA_TYPE_FLOAT,
};

/// Typed access to a node's attributes; every error names the attribute.
pub(super) struct Attrs<'a>(pub(super) &'a pb::NodeProto);

impl<'a> Attrs<'a> {
    fn find(
        &self,
        name: &'static str,
        expected: AttributeType,
    ) -> Result<Option<&'a pb::AttributeProto>, TreeEnsembleError> {
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

    pub(super) fn ints(&self, name: &'static str) -> Result<&'a [i64], TreeEnsembleError> {
        Ok(self
            .find(name, AttributeType::Ints)?
            .map_or(&[][..], |a| &a.ints))
    }

    fn floats(&self, name: &'static str) -> Result<&'a [f32], TreeEnsembleError> {
        Ok(self
            .find(name, AttributeType::Floats)?
            .map_or(&[][..], |a| &a.floats))
    }

    pub(super) fn int(&self, name: &'static str) -> Result<Option<i64>, TreeEnsembleError> {
        Ok(self.find(name, AttributeType::Int)?.map(|a| a.i))
    }

    pub(super) fn string(&self, name: &'static str) -> Result<Option<&'a str>, TreeEnsembleError> {
        self.find(name, AttributeType::String)?
            .map(|a| utf8(name, &a.s))
            .transpose()
    }

    pub(super) fn strings(&self, name: &'static str) -> Result<Vec<&'a str>, TreeEnsembleError> {
        let Some(attr) = self.find(name, AttributeType::Strings)? else {
            return Ok(Vec::new());
        };
        attr.strings.iter().map(|s| utf8(name, s)).collect()
    }

    /// A float list that producers may give instead as a double tensor `tensor_name`.
    pub(super) fn reals(
        &self,
        name: &'static str,
        tensor_name: &'static str,
    ) -> Result<Vec<f64>, TreeEnsembleError> {
        if let Some(tensor) = self.find(tensor_name, AttributeType::Tensor)? {
            if let Some(t) = &tensor.t {
                return tensor_values(tensor_name, t);
            }
        }
        Ok(self.floats(name)?.iter().map(|&v| f64::from(v)).collect())
    }
}

fn utf8<'a>(name: &'static str, bytes: &'a [u8]) -> Result<&'a str, TreeEnsembleError> {
    std::str::from_utf8(bytes).map_err(|_| attr_err(name, "is not valid UTF-8"))
}

fn tensor_values(name: &'static str, t: &pb::TensorProto) -> Result<Vec<f64>, TreeEnsembleError> {
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
        other => Err(attr_err(
            name,
            format!("expected a float or double tensor, found data type {other}"),
        )),
    }
}

fn decode_raw<const N: usize>(
    name: &'static str,
    raw: &[u8],
    convert: impl Fn([u8; N]) -> f64,
) -> Result<Vec<f64>, TreeEnsembleError> {
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
pub(super) fn check_len(
    name: &'static str,
    len: usize,
    reference: &'static str,
    expected: usize,
) -> Result<(), TreeEnsembleError> {
    if len == expected {
        Ok(())
    } else {
        Err(attr_err(
            name,
            format!("has {len} entries but {reference} has {expected}"),
        ))
    }
}
