//! The protocol's tensor datatypes and how their elements are laid out in raw bytes.

use serde::{Deserialize, Serialize};

/// A tensor datatype as the protocol names it (`FP16` and `BF16` are refused: no model input
/// needs half precision, and taking them would mean converting on every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "UINT8")]
    U8,
    #[serde(rename = "UINT16")]
    U16,
    #[serde(rename = "UINT32")]
    U32,
    #[serde(rename = "UINT64")]
    U64,
    #[serde(rename = "INT8")]
    I8,
    #[serde(rename = "INT16")]
    I16,
    #[serde(rename = "INT32")]
    I32,
    #[serde(rename = "INT64")]
    I64,
    #[serde(rename = "FP32")]
    F32,
    #[serde(rename = "FP64")]
    F64,
    #[serde(rename = "BYTES")]
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 12] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    pub fn parse(text: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == text)
    }

    /// The datatype of the input tensor `name` (`input "x"`); the error names both and
    /// lists the protocol's datatypes.
    pub fn of_input(name: &str, text: &str) -> Result<DataType, String> {
        DataType::parse(text).ok_or_else(|| {
            format!(
                "{name} has datatype {text:?}; the protocol's are {}",
                DataType::ALL.map(DataType::as_str).join(", ")
            )
        })
    }

    /// Bytes per element in raw form; `None` for BYTES, whose elements each carry a length.
    pub const fn width(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => Some(1),
            DataType::U16 | DataType::I16 => Some(2),
            DataType::U32 | DataType::I32 | DataType::F32 => Some(4),
            DataType::U64 | DataType::I64 | DataType::F64 => Some(8),
            DataType::Bytes => None,
        }
    }

    pub const fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::Bytes)
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::DataType;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for datatype in DataType::ALL {
            assert_eq!(DataType::parse(datatype.as_str()), Some(datatype));
            let json = serde_json::to_value(datatype).expect("serializes");
            assert_eq!(json, datatype.as_str());
        }
        assert_eq!(DataType::parse("FP16"), None);
        assert_eq!(DataType::parse("fp64"), None);
    }
}
