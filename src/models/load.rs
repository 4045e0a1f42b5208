//! Loading one version of a model from its folder: the manifest, the graph (the folder's file,
//! or a registry version from the cache), and the checks a version passes before it serves.

use std::path::Path;

use super::cache::{CachedVersion, ModelCache};
use super::mlflow::{display_url, ValidSource};
use super::{Manifest, Model, Origin};

/// A version that cannot serve, and whether the model comes from a registry (whose versions
/// may simply not have arrived yet, which is no reason to refuse to start).
pub(super) struct Refusal {
    pub message: String,
    pub source: Option<ValidSource>,
}

/// What loading a model's folder gave: the registry it names, if any, and the version.
pub(super) struct Loaded {
    pub source: Option<ValidSource>,
    pub model: Result<Model, String>,
}

impl Loaded {
    pub fn into_result(self) -> Result<Model, Refusal> {
        self.model.map_err(|message| Refusal {
            message,
            source: self.source,
        })
    }
}

/// Loads the model of `dir`, checks it, and says which registry it names. A registry model is
/// built from the cached `wanted` version, or else from the one last swapped in.
pub(super) fn load_checked(
    id: &str,
    dir: &Path,
    cache: &ModelCache,
    wanted: Option<&CachedVersion>,
) -> Loaded {
    let (text, manifest) = match Manifest::read(dir) {
        Ok(read) => read,
        Err(message) => {
            return Loaded {
                source: None,
                model: Err(message),
            }
        }
    };
    let source = match manifest.source.as_ref().map(|s| s.validate()) {
        None => None,
        Some(Ok(source)) => Some(source),
        Some(Err(e)) => {
            return Loaded {
                source: None,
                model: Err(format!("[source]: {e}")),
            }
        }
    };
    let model = match &source {
        None => from_folder(id, dir, &text, manifest),
        Some(source) => from_cache(id, &text, manifest, source, cache, wanted),
    };
    let model = model.and_then(|model| {
        model
            .self_test()
            .map_err(|e| format!("the version does not pass its checks: {e}"))?;
        Ok(model)
    });
    Loaded { source, model }
}

fn from_folder(id: &str, dir: &Path, text: &str, manifest: Manifest) -> Result<Model, String> {
    let path = dir.join(&manifest.file);
    let graph = std::fs::read(&path)
        .map_err(|e| format!("cannot read ONNX file {}: {e}", path.display()))?;
    let origin = Origin {
        registry: None,
        location: dir.display().to_string(),
    };
    Model::build(id, text, manifest, &graph, origin)
}

fn from_cache(
    id: &str,
    text: &str,
    manifest: Manifest,
    source: &ValidSource,
    cache: &ModelCache,
    wanted: Option<&CachedVersion>,
) -> Result<Model, String> {
    let version = wanted
        .cloned()
        .or_else(|| cache.current(id))
        .filter(|v| v.name == source.name)
        .ok_or_else(|| {
            format!(
                "no version of registered model {:?} has been fetched from {} yet, and none is \
                 cached in {}",
                source.name,
                display_url(&source.tracking_uri),
                cache.dir().display()
            )
        })?;
    let graph = cache
        .load(id, &version)
        .map_err(|e| format!("cannot read the cached version {}: {e}", version.version))?
        .ok_or_else(|| format!("version {} is not in the cache", version.version))?;
    let origin = Origin {
        location: location(source),
        registry: Some(version),
    };
    Model::build(id, text, manifest, &graph, origin)
}

/// How a registry version's location reads: the server, the registered model and the alias
/// (or stage) that selects it.
pub(super) fn location(source: &ValidSource) -> String {
    format!(
        "{} registered model {:?}, {}",
        display_url(&source.tracking_uri),
        source.name,
        source.selector
    )
}
