//! One configuration file: a path argument expanded to its YAML files,
//! and one document parsed, interpolated and deserialized, its node tree
//! kept for locating later errors.

use std::path::{Path, PathBuf};

use slaprobe_yaml as yaml;

use super::error::ConfigError;
use super::{interpolate, raw};

/// One YAML document read and deserialized, with its node tree kept for
/// locating semantic errors.
pub(crate) struct LoadedFile {
    pub path: PathBuf,
    pub root: yaml::Node,
    pub raw: raw::RawFile,
}

/// A path argument -> the YAML files it stands for.
pub(super) fn expand_path(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::file_level(path, format!("cannot read configuration path: {e}"))
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ConfigError::file_level(path, format!("cannot list directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| ConfigError::file_level(path, format!("cannot list directory: {e}")))?;
        let p = entry.path();
        let is_yaml = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        // Hidden files are editor swap files and the like, not config.
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if is_yaml && !hidden && p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(ConfigError::file_level(
            path,
            "directory contains no *.yaml or *.yml files",
        ));
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Parse, expand and deserialize one document. Errors from the tree passes
/// (env, `_file`) are all reported, then deserialization is skipped, since
/// it would only trip over the same values again.
pub(super) fn load_file(
    path: &Path,
    text: &str,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedFile, Vec<ConfigError>> {
    let mut root = yaml::parse(text).map_err(|es| {
        es.into_iter()
            .map(|e| ConfigError::in_file(path, e))
            .collect::<Vec<_>>()
    })?;
    let mut errors = Vec::new();
    interpolate::expand_env(&mut root, "", env, path, &mut errors);
    interpolate::read_secret_files(&mut root, "", base_dir, path, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let raw: raw::RawFile =
        yaml::de::from_node(&root).map_err(|e| vec![ConfigError::in_file(path, e.located())])?;
    Ok(LoadedFile {
        path: path.to_path_buf(),
        root,
        raw,
    })
}
