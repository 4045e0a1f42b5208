//! From the artifact URI the registry gives for a version to something modelgate can read.
//!
//! `mlflow-artifacts:` URIs are served by the tracking server itself (`--serve-artifacts`, the
//! default since MLflow 2), so one set of credentials and one network path reach everything.
//! Cloud stores (`s3:`, `gs:`, `wasbs:`, …) would each need their SDK and credentials; they are
//! refused by name so the operator can switch the server to proxying instead.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use super::MlflowError;

/// Where the tracking server proxies its artifact store.
const ARTIFACTS_API: &str = "api/2.0/mlflow-artifacts/artifacts";

/// Where one file of a model version can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    Http {
        url: String,
        /// Whether the tracking server's credentials may go with the request: only to the
        /// tracking server itself, never to another host an artifact URI names.
        send_credentials: bool,
    },
    File(PathBuf),
}

/// The scheme of `uri`, or `None` for a plain path (MLflow reads those as local paths).
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

fn bad_uri(uri: &str) -> MlflowError {
    MlflowError::BadResponse {
        what: "get-download-uri",
        detail: format!("{uri:?} is not a valid artifact URI"),
    }
}

/// Appends the `/`-separated `path` to `url`'s path, one encoded segment at a time.
fn push_path(url: &mut url::Url, path: &str) -> Result<(), ()> {
    let mut segments = url.path_segments_mut()?;
    segments.pop_if_empty();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        segments.push(&percent_decode_str(part).decode_utf8_lossy());
    }
    Ok(())
}

/// Where `file` (relative to the version's artifact root `download_uri`) can be read, for a
/// registry at `tracking_uri`. `model` names the registered model in errors.
pub fn locate(
    download_uri: &str,
    file: &str,
    tracking_uri: &str,
    model: &str,
) -> Result<ArtifactLocation, MlflowError> {
    let tracking = url::Url::parse(tracking_uri).map_err(|_| MlflowError::BadResponse {
        what: "the tracking URI",
        detail: "it is not a URL".to_string(),
    })?;
    let Some(scheme) = scheme(download_uri) else {
        return Ok(ArtifactLocation::File(
            PathBuf::from(download_uri).join(file),
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "mlflow-artifacts" => {
            let rest = &download_uri[scheme.len() + 1..];
            // As MLflow resolves it: a host in the URI replaces the tracking server's host,
            // the tracking server's scheme and path prefix stay.
            let (authority, path) = match rest.strip_prefix("//") {
                Some(after) => after.split_once('/').unwrap_or((after, "")),
                None => ("", rest),
            };
            let mut url = tracking.clone();
            if !authority.is_empty() {
                let with_host = url::Url::parse(&format!("{}://{authority}/", tracking.scheme()))
                    .map_err(|_| bad_uri(download_uri))?;
                url.set_host(with_host.host_str())
                    .map_err(|_| bad_uri(download_uri))?;
                url.set_port(with_host.port())
                    .map_err(|_| bad_uri(download_uri))?;
            }
            url.set_query(None);
            url.set_fragment(None);
            push_path(&mut url, ARTIFACTS_API).map_err(|_| bad_uri(download_uri))?;
            push_path(&mut url, path).map_err(|_| bad_uri(download_uri))?;
            push_path(&mut url, file).map_err(|_| bad_uri(download_uri))?;
            let send_credentials = url.origin() == tracking.origin();
            Ok(ArtifactLocation::Http {
                url: url.to_string(),
                send_credentials,
            })
        }
        "http" | "https" => {
            let mut url = url::Url::parse(download_uri).map_err(|_| bad_uri(download_uri))?;
            push_path(&mut url, file).map_err(|_| bad_uri(download_uri))?;
            let send_credentials = url.origin() == tracking.origin();
            Ok(ArtifactLocation::Http {
                url: url.to_string(),
                send_credentials,
            })
        }
        "file" => {
            let root = url::Url::parse(download_uri)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| bad_uri(download_uri))?;
            Ok(ArtifactLocation::File(root.join(file)))
        }
        _ => Err(MlflowError::UnsupportedScheme {
            scheme: scheme.to_string(),
            model: model.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACKING: &str = "http://mlflow.internal:5000";

    fn http(url: &str, send_credentials: bool) -> ArtifactLocation {
        ArtifactLocation::Http {
            url: url.into(),
            send_credentials,
        }
    }

    #[test]
    fn proxied_artifacts_go_through_the_tracking_server() {
        assert_eq!(
            locate(
                "mlflow-artifacts:/0/models/m-0ecb/artifacts",
                "model.onnx",
                TRACKING,
                "leads"
            )
            .expect("located"),
            http(
                "http://mlflow.internal:5000/api/2.0/mlflow-artifacts/artifacts/0/models/m-0ecb/artifacts/model.onnx",
                true
            )
        );
    }

    #[test]
    fn a_tracking_path_prefix_is_kept() {
        assert_eq!(
            locate(
                "mlflow-artifacts:/1/abc/artifacts/model",
                "MLmodel",
                "https://gw.example/mlflow/",
                "m"
            )
            .expect("located"),
            http(
                "https://gw.example/mlflow/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/MLmodel",
                true
            )
        );
    }

    #[test]
    fn a_host_in_the_artifact_uri_replaces_the_tracking_host_and_gets_no_credentials() {
        assert_eq!(
            locate(
                "mlflow-artifacts://artifacts.internal:6000/0/run/artifacts",
                "model.onnx",
                TRACKING,
                "m"
            )
            .expect("located"),
            http(
                "http://artifacts.internal:6000/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/model.onnx",
                false
            )
        );
    }

    #[test]
    fn http_artifacts_are_fetched_directly() {
        assert_eq!(
            locate("https://cdn.example/models/7", "model.onnx", TRACKING, "m").expect("located"),
            http("https://cdn.example/models/7/model.onnx", false)
        );
        assert_eq!(
            locate(
                "http://mlflow.internal:5000/files/7/",
                "my model.onnx",
                TRACKING,
                "m"
            )
            .expect("located"),
            http("http://mlflow.internal:5000/files/7/my%20model.onnx", true)
        );
    }

    #[test]
    fn local_artifacts_are_files() {
        assert_eq!(
            locate(
                "file:///srv/mlruns/0/abc/artifacts",
                "model.onnx",
                TRACKING,
                "m"
            )
            .expect("located"),
            ArtifactLocation::File(PathBuf::from("/srv/mlruns/0/abc/artifacts/model.onnx"))
        );
        assert_eq!(
            locate("/srv/mlruns/0/abc/artifacts", "MLmodel", TRACKING, "m").expect("located"),
            ArtifactLocation::File(PathBuf::from("/srv/mlruns/0/abc/artifacts/MLmodel"))
        );
    }

    #[test]
    fn cloud_and_indirect_schemes_are_refused_by_name() {
        for (uri, expected) in [
            ("s3://bucket/0/abc/artifacts", "s3"),
            ("gs://bucket/x", "gs"),
            ("wasbs://c@acct.blob.core.windows.net/x", "wasbs"),
            ("runs:/abc/model", "runs"),
            ("models:/m-0ecb", "models"),
        ] {
            match locate(uri, "model.onnx", TRACKING, "leads") {
                Err(MlflowError::UnsupportedScheme { scheme, model }) => {
                    assert_eq!(scheme, expected);
                    assert_eq!(model, "leads");
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }
}
