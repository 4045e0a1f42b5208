//! All models of the models folder, loaded once at start and shared across threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Model;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read models folder {path}: {message}")]
    Folder { path: PathBuf, message: String },
    #[error("model {id} ({path}): {message}")]
    Model {
        id: String,
        path: PathBuf,
        message: String,
    },
}

#[derive(Clone, Default)]
pub struct ModelRegistry {
    models: Arc<BTreeMap<String, Arc<Model>>>,
}

impl ModelRegistry {
    /// Loads every sub-folder of `dir` that holds a `model.toml`; the folder name is the id.
    pub fn load_dir(dir: &Path) -> Result<ModelRegistry, LoadError> {
        let folder_error = |e: std::io::Error| LoadError::Folder {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut models = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(folder_error)? {
            let path = entry.map_err(folder_error)?.path();
            if !path.join("model.toml").is_file() {
                continue;
            }
            let id = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let model = Model::load(&id, &path).map_err(|message| LoadError::Model {
                id: id.clone(),
                path: path.clone(),
                message,
            })?;
            tracing::info!(model = %id, version = %model.manifest().version, engine = model.engine(), "model loaded");
            models.insert(id, Arc::new(model));
        }
        Ok(ModelRegistry {
            models: Arc::new(models),
        })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Model>> {
        self.models.get(id).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.values()
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
