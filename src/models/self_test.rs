//! The check a version passes before it serves: it scores the manifest's example rows (or, with
//! none, one row of defaults) through the same path requests take, so that a graph that loads
//! but cannot answer never replaces one that can.

use serde_json::{Map, Value};

use super::manifest::{InputSpec, InputType};
use super::{Model, PredictError};

impl Model {
    /// Scores every example; the first failure names the example and what went wrong.
    pub fn self_test(&self) -> Result<(), String> {
        let examples = &self.manifest().examples;
        if examples.is_empty() {
            let row = self.manifest().inputs.iter().map(neutral).collect();
            return self
                .score(&row)
                .map_err(|e| format!("a row of default inputs: {e}"));
        }
        for (i, example) in examples.iter().enumerate() {
            self.score(&example.inputs).map_err(|e| {
                let name = match example.name.as_str() {
                    "" => format!("examples[{i}]"),
                    name => format!("example {name:?}"),
                };
                format!("{name}: {e}")
            })?;
        }
        Ok(())
    }

    fn score(&self, row: &Map<String, Value>) -> Result<(), String> {
        match self.predict(&Value::Object(row.clone())) {
            Ok(_) => Ok(()),
            Err(PredictError::Invalid(errors)) => Err(errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")),
            Err(PredictError::Inference(e)) => Err(e.to_string()),
        }
    }
}

/// The input's default, else the plainest value of its type.
fn neutral(spec: &InputSpec) -> (String, Value) {
    let value = spec.default.clone().unwrap_or(match spec.kind {
        InputType::Number => Value::from(0),
        InputType::Boolean => Value::Bool(false),
        InputType::String => Value::String(String::new()),
    });
    (spec.name.clone(), value)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn model21() -> (String, super::super::Manifest, Vec<u8>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/21");
        let (text, manifest) = super::super::Manifest::read(&dir).expect("manifest");
        let graph = std::fs::read(dir.join("model.onnx")).expect("graph");
        (text, manifest, graph)
    }

    fn build(text: &str, manifest: super::super::Manifest, graph: &[u8]) -> Model {
        let origin = super::super::Origin {
            registry: None,
            location: "test".into(),
        };
        Model::build("21", text, manifest, graph, origin).expect("model 21 loads")
    }

    #[test]
    fn model21_passes_with_its_examples_and_without() {
        let (text, manifest, graph) = model21();
        assert_eq!(manifest.examples.len(), 2);
        build(&text, manifest.clone(), &graph)
            .self_test()
            .expect("examples");
        let mut bare = manifest;
        bare.examples.clear();
        build(&text, bare, &graph).self_test().expect("defaults");
    }

    #[test]
    fn an_example_that_cannot_be_scored_is_named() {
        let (text, mut manifest, graph) = model21();
        manifest.examples[1]
            .inputs
            .insert("industry".into(), Value::from(7));
        let error = build(&text, manifest, &graph).self_test().unwrap_err();
        assert!(error.contains("example \"cold lead\""), "{error}");
        assert!(error.contains("industry"), "{error}");
    }
}
