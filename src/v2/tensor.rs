//! A tensor's elements: read from the protocol's JSON `data` or raw little-endian bytes (the
//! binary extension, gRPC's `raw_*_contents`), and written back the same two ways.

use serde::{Serialize, Serializer};
use serde_json::{Number, Value};

use super::datatype::DataType;

/// Elements widened to one type per family: what a model input reads does not depend on
/// whether the client sent INT32 or INT64.
#[derive(Debug, Clone, PartialEq)]
pub enum Elements {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    UInt(Vec<u64>),
    Float(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

impl Elements {
    pub fn len(&self) -> usize {
        match self {
            Elements::Bool(v) => v.len(),
            Elements::Int(v) => v.len(),
            Elements::UInt(v) => v.len(),
            Elements::Float(v) => v.len(),
            Elements::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as the JSON value a model's input reads (and its record keeps).
    pub fn json(&self, i: usize) -> Result<Value, String> {
        Ok(match self {
            Elements::Bool(v) => Value::Bool(v[i]),
            Elements::Int(v) => Value::from(v[i]),
            Elements::UInt(v) => Value::from(v[i]),
            Elements::Float(v) => Number::from_f64(v[i])
                .map(Value::Number)
                .ok_or("is not a finite number")?,
            Elements::Bytes(v) => {
                Value::String(String::from_utf8(v[i].clone()).map_err(|_| "is not UTF-8 text")?)
            }
        })
    }

    /// The elements in raw form, in their widest type of the family (which is the datatype
    /// [`Elements::datatype`] names).
    pub fn to_raw(&self) -> Vec<u8> {
        match self {
            Elements::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
            Elements::Int(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::UInt(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::Float(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Elements::Bytes(v) => {
                let mut raw = Vec::with_capacity(v.iter().map(|b| b.len() + 4).sum());
                for bytes in v {
                    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    raw.extend_from_slice(&len.to_le_bytes());
                    raw.extend_from_slice(bytes);
                }
                raw
            }
        }
    }

    /// The datatype [`Elements::to_raw`] writes.
    pub const fn datatype(&self) -> DataType {
        match self {
            Elements::Bool(_) => DataType::Bool,
            Elements::Int(_) => DataType::I64,
            Elements::UInt(_) => DataType::U64,
            Elements::Float(_) => DataType::F64,
            Elements::Bytes(_) => DataType::Bytes,
        }
    }

    /// Elements of `datatype` from raw little-endian bytes, row-major.
    pub fn from_raw(datatype: DataType, raw: &[u8]) -> Result<Elements, String> {
        let Some(width) = datatype.width() else {
            return length_prefixed(raw).map(Elements::Bytes);
        };
        if !raw.len().is_multiple_of(width) {
            return Err(format!(
                "{} bytes of raw data are not a whole number of {datatype} elements",
                raw.len()
            ));
        }
        let chunks = raw.chunks_exact(width);
        // Each chunk has exactly `width` bytes, so the conversions cannot fail.
        let word = |c: &[u8]| -> [u8; 8] {
            let mut w = [0; 8];
            w[..c.len()].copy_from_slice(c);
            w
        };
        Ok(match datatype {
            DataType::Bool => Elements::Bool(raw.iter().map(|b| *b != 0).collect()),
            DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => {
                Elements::UInt(chunks.map(|c| u64::from_le_bytes(word(c))).collect())
            }
            DataType::I8 => Elements::Int(raw.iter().map(|b| i64::from(*b as i8)).collect()),
            DataType::I16 => Elements::Int(
                chunks
                    .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                    .collect(),
            ),
            DataType::I32 => Elements::Int(
                chunks
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            DataType::I64 => Elements::Int(chunks.map(|c| i64::from_le_bytes(word(c))).collect()),
            DataType::F32 => Elements::Float(
                chunks
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
            ),
            DataType::F64 => Elements::Float(chunks.map(|c| f64::from_le_bytes(word(c))).collect()),
            DataType::Bytes => Elements::Bytes(Vec::new()),
        })
    }

    /// Elements of `datatype` from the JSON `data` of a tensor, flat or nested row-major.
    pub fn from_json(datatype: DataType, data: &Value) -> Result<Elements, String> {
        let mut scalars = Vec::new();
        flatten(data, &mut scalars);
        let wrong = |i: usize| {
            format!(
                "data[{i}] is not {}",
                match datatype {
                    DataType::Bool => "a boolean",
                    DataType::Bytes => "a string",
                    DataType::F32 | DataType::F64 => "a number",
                    _ => "an integer in the datatype's range",
                }
            )
        };
        let each = |read: &dyn Fn(&Value) -> bool| -> Result<(), String> {
            match scalars.iter().position(|v| !read(v)) {
                Some(i) => Err(wrong(i)),
                None => Ok(()),
            }
        };
        Ok(match datatype {
            DataType::Bool => {
                each(&Value::is_boolean)?;
                Elements::Bool(scalars.iter().filter_map(|v| v.as_bool()).collect())
            }
            DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => {
                each(&|v| v.as_u64().is_some_and(|x| fits(datatype, x as i128)))?;
                Elements::UInt(scalars.iter().filter_map(|v| v.as_u64()).collect())
            }
            DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64 => {
                each(&|v| v.as_i64().is_some_and(|x| fits(datatype, i128::from(x))))?;
                Elements::Int(scalars.iter().filter_map(|v| v.as_i64()).collect())
            }
            DataType::F32 | DataType::F64 => {
                each(&Value::is_number)?;
                Elements::Float(scalars.iter().filter_map(|v| v.as_f64()).collect())
            }
            DataType::Bytes => {
                each(&Value::is_string)?;
                Elements::Bytes(
                    scalars
                        .iter()
                        .filter_map(|v| v.as_str())
                        .map(|s| s.as_bytes().to_vec())
                        .collect(),
                )
            }
        })
    }
}

/// The elements as the protocol's JSON `data`: a flat array, written straight from the
/// elements (no `Value` in between; a non-finite float is `null`, bytes are read as UTF-8).
impl Serialize for Elements {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Elements::Bool(v) => v.serialize(serializer),
            Elements::Int(v) => v.serialize(serializer),
            Elements::UInt(v) => v.serialize(serializer),
            Elements::Float(v) => {
                serializer.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x)))
            }
            Elements::Bytes(v) => {
                serializer.collect_seq(v.iter().map(|b| String::from_utf8_lossy(b)))
            }
        }
    }
}

/// Whether `x` is in the range of the integer `datatype`.
fn fits(datatype: DataType, x: i128) -> bool {
    let bits = datatype.width().unwrap_or(8) as u32 * 8;
    match datatype {
        DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => {
            (0..(1i128 << bits)).contains(&x)
        }
        _ => (-(1i128 << (bits - 1))..(1i128 << (bits - 1))).contains(&x),
    }
}

/// The scalars of `data` in row-major order, however deeply it nests arrays.
fn flatten<'a>(data: &'a Value, out: &mut Vec<&'a Value>) {
    match data {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        scalar => out.push(scalar),
    }
}

/// BYTES elements: each a 4-byte little-endian length and that many bytes.
fn length_prefixed(mut raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut elements = Vec::new();
    while !raw.is_empty() {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(format!(
                "BYTES element {} has a {}-byte length prefix; it takes 4",
                elements.len(),
                raw.len()
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(format!(
                "BYTES element {} declares {len} bytes; {} remain",
                elements.len(),
                rest.len()
            ));
        }
        elements.push(rest[..len].to_vec());
        raw = &rest[len..];
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn raw_round_trips_in_each_family() {
        let cases = [
            Elements::Bool(vec![true, false]),
            Elements::Int(vec![-3, i64::MAX]),
            Elements::UInt(vec![0, u64::MAX]),
            Elements::Float(vec![0.25, -1e300]),
            Elements::Bytes(vec![b"VP".to_vec(), Vec::new(), "é".as_bytes().to_vec()]),
        ];
        for elements in cases {
            let raw = elements.to_raw();
            assert_eq!(
                Elements::from_raw(elements.datatype(), &raw).expect("decodes"),
                elements
            );
        }
    }

    #[test]
    fn narrow_raw_types_widen() {
        let raw: Vec<u8> = [-2i32, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            Elements::from_raw(DataType::I32, &raw),
            Ok(Elements::Int(vec![-2, 7]))
        );
        let raw: Vec<u8> = [0.5f32].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            Elements::from_raw(DataType::F32, &raw),
            Ok(Elements::Float(vec![0.5]))
        );
        assert_eq!(
            Elements::from_raw(DataType::I8, &[0xff]),
            Ok(Elements::Int(vec![-1]))
        );
    }

    #[test]
    fn ragged_raw_data_is_refused_with_its_size() {
        let err = Elements::from_raw(DataType::F64, &[0; 12]).expect_err("12 bytes of FP64");
        assert!(err.contains("12 bytes"), "{err}");
        let err = Elements::from_raw(DataType::Bytes, &[5, 0, 0, 0, b'a']).expect_err("short");
        assert!(err.contains("declares 5 bytes"), "{err}");
        let err = Elements::from_raw(DataType::Bytes, &[1, 0]).expect_err("short prefix");
        assert!(err.contains("length prefix"), "{err}");
    }

    #[test]
    fn json_data_may_nest_and_is_checked_per_element() {
        assert_eq!(
            Elements::from_json(DataType::F64, &json!([[1], [2.5]])),
            Ok(Elements::Float(vec![1.0, 2.5]))
        );
        let err = Elements::from_json(DataType::F64, &json!([1, "x"])).expect_err("string");
        assert_eq!(err, "data[1] is not a number");
        let err = Elements::from_json(DataType::I8, &json!([127, 128])).expect_err("range");
        assert!(err.starts_with("data[1]"), "{err}");
        assert!(Elements::from_json(DataType::U8, &json!([-1])).is_err());
        assert_eq!(
            Elements::from_json(DataType::Bytes, &json!(["a"])),
            Ok(Elements::Bytes(vec![b"a".to_vec()]))
        );
    }

    #[test]
    fn elements_read_as_json_refuse_what_json_cannot_hold() {
        assert!(Elements::Float(vec![f64::NAN]).json(0).is_err());
        assert!(Elements::Bytes(vec![vec![0xff]]).json(0).is_err());
        assert_eq!(Elements::Int(vec![4]).json(0), Ok(json!(4)));
    }
}
