//! Which version of a model a loaded graph is, where it came from, and how to tell two apart.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Where a version's graph was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// `models/<id>/`, next to the manifest.
    Folder,
    /// A version of an MLflow registered model.
    Mlflow,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Folder => "folder",
            SourceKind::Mlflow => "mlflow",
        }
    }
}

/// One loaded version, as `GET /api/v1/models/{id}` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    /// What responses and inference records carry: the manifest's `version` for a folder
    /// model, the registry's version number for an MLflow one.
    pub version: String,
    pub source: SourceKind,
    /// The folder, or the registry location (never with credentials).
    pub location: String,
    /// `sha256:<hex>` of the ONNX graph's bytes.
    pub checksum: String,
    pub loaded_at: DateTime<Utc>,
}

/// `sha256:<hex>` of `bytes`.
pub fn checksum(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What a version is made of (manifest text and graph), so that a reload can tell a change
/// from a touched file.
pub fn fingerprint(manifest: &str, graph: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((manifest.len() as u64).to_le_bytes());
    hash.update(manifest.as_bytes());
    hash.update(graph);
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_separates_manifest_from_graph() {
        assert_ne!(fingerprint("ab", b"c"), fingerprint("a", b"bc"));
        assert_eq!(fingerprint("a", b"bc"), fingerprint("a", b"bc"));
    }

    #[test]
    fn checksum_names_its_algorithm() {
        assert_eq!(
            checksum(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
