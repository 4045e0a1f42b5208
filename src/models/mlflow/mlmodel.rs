//! The `MLmodel` file at the root of every logged model: YAML listing the model's flavors. The
//! onnx flavor names the graph file (`flavors.onnx.data`, `model.onnx` as mlflow.onnx writes it).

use yaml_rust2::{Yaml, YamlLoader};

use super::MlflowError;

/// What modelgate needs from an `MLmodel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlModel {
    /// The graph's path relative to the model's artifact root.
    pub onnx_data: String,
    /// The size MLflow recorded for the whole model directory, when it did (MLflow 2.x+).
    pub model_size_bytes: Option<u64>,
}

fn bad(detail: impl Into<String>) -> MlflowError {
    MlflowError::BadResponse {
        what: "the MLmodel file",
        detail: detail.into(),
    }
}

/// Reads an `MLmodel`; `model` names the registered model in errors.
pub fn parse(text: &str, model: &str) -> Result<MlModel, MlflowError> {
    let documents = YamlLoader::load_from_str(text).map_err(|e| bad(e.to_string()))?;
    let root = documents
        .into_iter()
        .next()
        .ok_or_else(|| bad("it is empty"))?;
    let flavors = &root["flavors"];
    let Yaml::Hash(table) = flavors else {
        return Err(bad("it has no flavors table"));
    };
    let onnx = &flavors["onnx"];
    if onnx.is_badvalue() {
        let names: Vec<&str> = table.keys().filter_map(Yaml::as_str).collect();
        return Err(MlflowError::NoOnnxFlavor {
            model: model.to_string(),
            flavors: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        });
    }
    let data = onnx["data"]
        .as_str()
        .ok_or_else(|| bad("its onnx flavor has no data file"))?;
    Ok(MlModel {
        onnx_data: safe_relative_path(data)?,
        model_size_bytes: root["model_size_bytes"]
            .as_i64()
            .and_then(|n| u64::try_from(n).ok()),
    })
}

/// `path` when it stays inside the model's directory. The file is read from whatever the
/// registry says, possibly the local disk (`file:` artifacts): `../` must not reach elsewhere.
fn safe_relative_path(path: &str) -> Result<String, MlflowError> {
    let trimmed = path.trim();
    let escapes = trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.contains('\\')
        || trimmed.contains(':')
        || trimmed.split('/').any(|part| part == "..");
    if escapes {
        return Err(bad(format!(
            "the onnx flavor's data {trimmed:?} is not a path inside the model"
        )));
    }
    Ok(trimmed.trim_start_matches("./").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As MLflow 3.17 writes it for `mlflow.onnx.log_model(..., name="model")`.
    const LOGGED: &str = "\
artifact_path: mlflow-artifacts:/0/models/m-0ecb76fbd7d64867aa66da04e81a2834/artifacts
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_session_options: null
    onnx_version: 1.19.1
    providers:
    - CUDAExecutionProvider
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 3.17.2
model_id: m-0ecb76fbd7d64867aa66da04e81a2834
model_size_bytes: 1334480
run_id: 72caf6deaaf04633b4b236c972f0108e
";

    #[test]
    fn the_onnx_flavor_names_the_graph() {
        assert_eq!(
            parse(LOGGED, "leads").expect("parses"),
            MlModel {
                onnx_data: "model.onnx".into(),
                model_size_bytes: Some(1_334_480),
            }
        );
    }

    #[test]
    fn a_model_without_onnx_lists_its_flavors() {
        let sklearn = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n";
        let err = parse(sklearn, "leads").expect_err("no onnx");
        assert!(matches!(err, MlflowError::NoOnnxFlavor { .. }));
        let message = err.to_string();
        assert!(message.contains("python_function, sklearn"), "{message}");
        assert!(message.contains("\"leads\""), "{message}");
    }

    #[test]
    fn malformed_files_and_escaping_paths_are_bad_responses() {
        for text in [
            "",
            "flavors: [",
            "run_id: x\n",
            "flavors:\n  onnx:\n    code: null\n",
            "flavors:\n  onnx:\n    data: ../../etc/passwd\n",
            "flavors:\n  onnx:\n    data: /etc/passwd\n",
            "flavors:\n  onnx:\n    data: s3://bucket/model.onnx\n",
        ] {
            let result = parse(text, "m");
            assert!(
                matches!(result, Err(MlflowError::BadResponse { .. })),
                "{text:?}: {result:?}"
            );
        }
    }

    #[test]
    fn nested_data_paths_are_kept() {
        let text = "flavors:\n  onnx:\n    data: ./graphs/model.onnx\n";
        assert_eq!(
            parse(text, "m").expect("parses").onnx_data,
            "graphs/model.onnx"
        );
    }
}
