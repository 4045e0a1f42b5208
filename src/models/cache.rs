//! The local copy of registry versions (`models.cache_dir`): one folder per model and version,
//! each graph beside its checksum, and the version last swapped in. It is what lets an instance
//! start, and be ready, while the registry is down.
//!
//! Layout: `<cache_dir>/<model id>/<registered name>/<version>/model.onnx` (+ `model.onnx.sha256`),
//! and `<cache_dir>/<model id>/current` holding `<registered name>\n<version>`. Names are
//! percent-encoded, so that no name can reach outside its folder.

use std::io;
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::version::checksum;

/// Everything but letters, digits, `-` and `_` is encoded: `.`, `/` and `\` included.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

const GRAPH: &str = "model.onnx";
const CHECKSUM: &str = "model.onnx.sha256";
const CURRENT: &str = "current";

/// One cached version: the registered model's name and its version number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedVersion {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct ModelCache {
    dir: PathBuf,
}

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

impl ModelCache {
    pub fn new(dir: &Path) -> ModelCache {
        ModelCache {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn model_dir(&self, id: &str) -> PathBuf {
        self.dir.join(segment(id))
    }

    fn version_dir(&self, id: &str, version: &CachedVersion) -> PathBuf {
        self.model_dir(id)
            .join(segment(&version.name))
            .join(segment(&version.version))
    }

    /// The graph of `version`, if it is cached and its checksum matches (a damaged copy is
    /// removed, so that it is downloaded again).
    pub fn load(&self, id: &str, version: &CachedVersion) -> io::Result<Option<Vec<u8>>> {
        let dir = self.version_dir(id, version);
        let (graph, expected) = match (
            std::fs::read(dir.join(GRAPH)),
            std::fs::read_to_string(dir.join(CHECKSUM)),
        ) {
            (Ok(graph), Ok(expected)) => (graph, expected),
            (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        if checksum(&graph) == expected.trim() {
            return Ok(Some(graph));
        }
        tracing::warn!(model = id, version = %version.version, "cached graph does not match its checksum; it will be downloaded again");
        std::fs::remove_dir_all(&dir)?;
        Ok(None)
    }

    /// Keeps `graph` as `version`: written beside, then renamed into place, so that a crash
    /// never leaves a half-written graph under a version's name.
    pub fn store(&self, id: &str, version: &CachedVersion, graph: &[u8]) -> io::Result<()> {
        let dir = self.version_dir(id, version);
        std::fs::create_dir_all(&dir)?;
        let staged = dir.join(format!("{GRAPH}.partial"));
        std::fs::write(&staged, graph)?;
        std::fs::write(dir.join(CHECKSUM), checksum(graph))?;
        std::fs::rename(&staged, dir.join(GRAPH))
    }

    /// The version last swapped in for `id`, which a start without the registry serves.
    pub fn current(&self, id: &str) -> Option<CachedVersion> {
        let text = std::fs::read_to_string(self.model_dir(id).join(CURRENT)).ok()?;
        let (name, version) = text.split_once('\n')?;
        Some(CachedVersion {
            name: name.to_string(),
            version: version.trim_end().to_string(),
        })
    }

    /// Records `version` as serving, and removes the cached versions not in `keep`.
    pub fn set_current(
        &self,
        id: &str,
        version: &CachedVersion,
        keep: &[CachedVersion],
    ) -> io::Result<()> {
        let model_dir = self.model_dir(id);
        let staged = model_dir.join(format!("{CURRENT}.partial"));
        std::fs::write(&staged, format!("{}\n{}\n", version.name, version.version))?;
        std::fs::rename(&staged, model_dir.join(CURRENT))?;
        let kept: Vec<PathBuf> = keep.iter().map(|v| self.version_dir(id, v)).collect();
        for name in std::fs::read_dir(&model_dir)? {
            let name = name?.path();
            if !name.is_dir() {
                continue;
            }
            for version in std::fs::read_dir(&name)? {
                let version = version?.path();
                if version.is_dir() && !kept.contains(&version) {
                    std::fs::remove_dir_all(&version)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str, version: &str) -> CachedVersion {
        CachedVersion {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn stores_loads_and_prunes_versions() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(dir.path());
        let (one, two, three) = (
            version("lead/scoring", "1"),
            version("lead/scoring", "2"),
            version("lead/scoring", "3"),
        );
        assert_eq!(cache.load("21", &one).unwrap(), None);
        for v in [&one, &two, &three] {
            cache.store("21", v, v.version.as_bytes()).unwrap();
        }
        assert_eq!(cache.load("21", &two).unwrap().as_deref(), Some(&b"2"[..]));
        cache
            .set_current("21", &three, &[three.clone(), two.clone()])
            .unwrap();
        assert_eq!(cache.current("21"), Some(three.clone()));
        assert_eq!(cache.load("21", &one).unwrap(), None);
        assert!(cache.load("21", &two).unwrap().is_some());
        // The name's slash stays inside the model's folder.
        assert!(dir.path().join("21/lead%2Fscoring/3/model.onnx").is_file());
    }

    #[test]
    fn a_damaged_copy_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(dir.path());
        let one = version("m", "1");
        cache.store("21", &one, b"graph").unwrap();
        std::fs::write(dir.path().join("21/m/1/model.onnx"), b"grapH").unwrap();
        assert_eq!(cache.load("21", &one).unwrap(), None);
        assert!(!dir.path().join("21/m/1").exists());
    }
}
