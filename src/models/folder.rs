//! The models folder as a reload sees it: which sub-folders hold a model, and a cheap stamp of
//! each one's files, so that a poll reads and hashes only what changed.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One model's folder.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    /// Changes whenever a file of the folder is added, removed, resized or rewritten.
    pub stamp: u64,
}

/// Every sub-folder of `dir` holding a `model.toml`, by id (the folder's name).
pub fn scan(dir: &Path) -> std::io::Result<BTreeMap<String, ModelDir>> {
    let mut models = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.join("model.toml").is_file() {
            continue;
        }
        let Some(id) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        // A folder that vanished between the listing and the stamp is simply not there.
        if let Ok(stamp) = stamp(&path) {
            models.insert(id, ModelDir { path, stamp });
        }
    }
    Ok(models)
}

/// Names, sizes and modification times of the folder's files (not its contents: reading a
/// large graph every poll would cost more than the poll is worth).
fn stamp(dir: &Path) -> std::io::Result<u64> {
    let mut files: Vec<(String, u64, Option<SystemTime>)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, meta.len(), meta.modified().ok()));
        }
    }
    files.sort();
    let mut hasher = DefaultHasher::new();
    files.hash(&mut hasher);
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_model_folders_and_stamps_their_files() {
        let dir = std::env::temp_dir().join(format!("modelgate-scan-{}", std::process::id()));
        let model = dir.join("7");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::create_dir_all(dir.join("not-a-model")).unwrap();
        std::fs::write(model.join("model.toml"), "x").unwrap();
        let first = scan(&dir).unwrap();
        assert_eq!(first.keys().collect::<Vec<_>>(), ["7"]);
        assert_eq!(scan(&dir).unwrap()["7"].stamp, first["7"].stamp);
        std::fs::write(model.join("model.onnx"), "graph").unwrap();
        assert_ne!(scan(&dir).unwrap()["7"].stamp, first["7"].stamp);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
