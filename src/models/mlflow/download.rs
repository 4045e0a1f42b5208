//! Reading bodies and files with a size cap: an artifact is whatever someone registered, and
//! one mistaken multi-gigabyte upload must not take the server's memory with it.

use std::path::Path;

use tokio::io::AsyncReadExt;

use super::MlflowError;

/// Why a capped read stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLarge,
    Failed(String),
}

/// The body of `response`, failing as soon as it is known to exceed `max_bytes`.
pub(crate) async fn body(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(ReadError::TooLarge);
    }
    let capacity = response.content_length().unwrap_or(0).min(max_bytes);
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Failed(super::error::transport_reason(e)))?
    {
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(ReadError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The file at `path`, up to `max_bytes`.
pub(crate) async fn file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    let failed = |e: std::io::Error| ReadError::Failed(e.to_string());
    let file = tokio::fs::File::open(path).await.map_err(failed)?;
    let length = file.metadata().await.map_err(failed)?.len();
    if length > max_bytes {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    // The file may grow between the size check and the read.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(failed)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

impl ReadError {
    /// The error for reading `what` of `model` from `source` (a URL or a path, already safe
    /// to show).
    pub(crate) fn into_mlflow(
        self,
        model: &str,
        what: &str,
        source: String,
        max_bytes: u64,
        local: bool,
    ) -> MlflowError {
        match self {
            ReadError::TooLarge => MlflowError::TooLarge {
                model: model.to_string(),
                what: what.to_string(),
                max_bytes,
            },
            ReadError::Failed(reason) if local => MlflowError::LocalFile {
                path: source,
                reason,
            },
            ReadError::Failed(reason) => MlflowError::Transport {
                url: source,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_over_the_cap_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, vec![7u8; 100]).expect("write");
        assert_eq!(file(&path, 100).await.expect("fits").len(), 100);
        assert!(matches!(file(&path, 99).await, Err(ReadError::TooLarge)));
        assert!(matches!(
            file(&dir.path().join("missing"), 10).await,
            Err(ReadError::Failed(_))
        ));
    }
}
