//! serde's deserialization messages in the words of the API.
//!
//! serde describes what it expected in Rust terms (`invalid type: floating point `150.5`,
//! expected i64`, `expected struct CreateKey`): a client knows JSON, not our types, and a type
//! name tells an attacker what the server is written in. Every message a body field can get
//! passes through [`plain`], which keeps serde's structure but says the JSON type instead.

/// The JSON a serde expectation asks for, or `None` when it is already in plain words
/// (a custom description such as "a duration", or an enum's list of values).
fn json_expectation(expected: &str) -> Option<&'static str> {
    let expected = expected.trim();
    let word = match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of at least 0",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "a char" | "a character" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" | "a tuple" | "a byte array" | "byte array" => "an array",
        "a map" => "an object",
        "unit" | "a unit" | "unit value" => "null",
        "variant identifier" | "field identifier" => "one of the documented values",
        _ if expected.starts_with("a tuple of size") || expected.starts_with("tuple struct ") => {
            "an array"
        }
        _ if expected.starts_with("struct ")
            || expected.starts_with("unit struct ")
            || expected.starts_with("newtype struct ") =>
        {
            "an object"
        }
        _ if expected.starts_with("enum ") => "one of the documented values",
        _ => return None,
    };
    Some(word)
}

/// What the client sent, from serde's description of it (`floating point `150.5``, `string
/// "x"`, `null`...): the kind of JSON value, never the value itself (it may be long, or a
/// secret pasted into the wrong field).
fn json_kind(unexpected: &str) -> &'static str {
    let unexpected = unexpected.trim();
    let kinds = [
        ("floating point", "a number with a fraction"),
        ("integer", "a whole number"),
        ("string", "a string"),
        ("boolean", "a boolean"),
        ("null", "null"),
        ("unit", "null"),
        ("sequence", "an array"),
        ("map", "an object"),
        ("char", "a string"),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| unexpected.starts_with(prefix))
        .map_or("another value", |(_, kind)| kind)
}

/// `expected …` in plain words.
fn must_be(expected: &str) -> String {
    match json_expectation(expected) {
        Some(word) => format!("must be {word}"),
        None => format!("must be {}", expected.trim()),
    }
}

/// serde's message about one field (already without serde_json's "at line … column …"), in
/// words that name JSON types only. The expectation is split off at the *last* ", expected ":
/// what comes before may quote the client's own string, which may contain those words.
pub fn plain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((unexpected, expected)) = rest.rsplit_once(", expected ") {
            return format!("{}, not {}", must_be(expected), json_kind(unexpected));
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((_, expected)) = rest.rsplit_once(", expected ") {
            return must_be(expected);
        }
    }
    if message.starts_with("invalid length ") {
        return "has the wrong number of items".to_string();
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return match rest.split_once(", expected ") {
            Some((_, allowed)) => format!("must be {allowed}"),
            None => "has no allowed value".to_string(),
        };
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::plain;

    /// Words that would tell a client about Rust rather than JSON.
    const RUST_WORDS: &[&str] = &[
        "i8",
        "i16",
        "i32",
        "i64",
        "u8",
        "u16",
        "u32",
        "u64",
        "f32",
        "f64",
        "usize",
        "isize",
        "struct",
        "enum",
        "variant",
        "sequence",
        "floating point",
        "invalid type",
    ];

    fn assert_plain(message: &str, expected: &str) {
        let said = plain(message);
        assert_eq!(said, expected, "{message}");
        let words: Vec<&str> = said.split(|c: char| !c.is_alphanumeric()).collect();
        for rust in RUST_WORDS {
            let found = if rust.contains(' ') {
                said.contains(rust)
            } else {
                words.contains(rust)
            };
            assert!(!found, "{said:?} says {rust}");
        }
    }

    #[test]
    fn rust_types_become_json_types() {
        assert_plain(
            "invalid type: floating point `150.5`, expected i64",
            "must be a whole number, not a number with a fraction",
        );
        assert_plain(
            "invalid type: string \"many\", expected u32",
            "must be a whole number of at least 0, not a string",
        );
        assert_plain(
            "invalid type: integer `5`, expected a string",
            "must be a string, not a whole number",
        );
        assert_plain(
            "invalid type: map, expected a sequence",
            "must be an array, not an object",
        );
        assert_plain(
            "invalid type: sequence, expected struct CreateKey",
            "must be an object, not an array",
        );
        assert_plain(
            "invalid type: null, expected f64",
            "must be a number, not null",
        );
        assert_plain(
            "invalid type: boolean `true`, expected a duration",
            "must be a duration, not a boolean",
        );
        assert_plain(
            "invalid value: integer `-1`, expected u32",
            "must be a whole number of at least 0",
        );
        assert_plain(
            "invalid value: floating point `0.5`, expected a whole number",
            "must be a whole number",
        );
        assert_plain(
            "invalid type: string \"a, expected b\", expected u8",
            "must be a whole number of at least 0, not a string",
        );
        assert_plain(
            "invalid type: integer `1`, expected unit",
            "must be null, not a whole number",
        );
        assert_plain(
            "invalid length 2, expected a tuple of size 3",
            "has the wrong number of items",
        );
    }

    #[test]
    fn enum_values_are_listed_without_the_word_variant() {
        assert_plain(
            "unknown variant `root`, expected `predict` or `admin`",
            "must be `predict` or `admin`",
        );
    }

    #[test]
    fn plain_messages_pass_through() {
        for message in [
            "expected N/s, N/m or N/h with N ≥ 1, got \"x\"",
            "unknown field `nmae`, expected one of `name`, `scopes`",
            "duplicate field `name`",
        ] {
            assert_eq!(plain(message), message);
        }
    }
}
