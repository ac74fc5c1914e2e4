//! Configuration loading: YAML files in, a validated [`Config`] (or every
//! problem found, each with file, line, column and key) out.
//!
//! The pipeline per file is: YAML events -> a position-carrying node tree
//! ([`crate::yaml`]; anchors, aliases and `<<` merge keys resolved, duplicate
//! keys rejected) -> `${VAR}` expansion and `<key>_file` secret reading on
//! that tree ([`interpolate`]) -> serde deserialization into the strict raw
//! structs ([`raw`], via [`crate::yaml::de`]) -> cross-file validation into
//! the model ([`validate`]). Keeping the node tree around after deserialization is what
//! lets semantic errors ("deadline must be greater than interval") point at a
//! line and column, which is the whole point of a config loader an operator
//! can fix at 3 a.m.

pub mod model;

mod interpolate;
mod librdkafka;
mod raw;
mod validate;

#[cfg(test)]
pub(crate) mod tests;

pub use librdkafka::check_option;
pub use model::*;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml;

/// One problem in the configuration, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file (e.g. unreadable).
    pub line: usize,
    /// 1-based; 0 when the problem concerns the whole file.
    pub column: usize,
    /// Dotted path of the offending key, e.g. `probes[1].slos[0].threshold`;
    /// empty for file-level and YAML syntax problems.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        file: &Path,
        pos: yaml::Pos,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A problem the YAML layer found in `file`.
    pub(crate) fn in_file(file: &Path, e: yaml::Error) -> Self {
        ConfigError::new(file, e.pos, e.key, e.message)
    }

    /// A problem with a whole file or path, without a position.
    pub(crate) fn file_level(file: &Path, message: impl Into<String>) -> Self {
        ConfigError::new(file, yaml::Pos::default(), "", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration (never empty). Display prints one
/// per line, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One YAML document read and deserialized, with its node tree kept for
/// locating semantic errors.
pub(crate) struct LoadedFile {
    pub path: PathBuf,
    pub root: yaml::Node,
    pub raw: raw::RawFile,
}

/// Load one or more paths (each a YAML file, or a directory whose
/// `*.yaml`/`*.yml` files are merged in sorted file-name order).
pub fn load(
    paths: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        match expand_path(p) {
            Ok(list) => files.extend(list),
            Err(e) => errors.push(e),
        }
    }
    if paths.is_empty() {
        errors.push(ConfigError::file_level(
            Path::new("<none>"),
            "no configuration paths given",
        ));
    }
    let mut loaded = Vec::new();
    for file in files {
        // Merging the same file twice (e.g. `-c probes -c probes/a.yaml`)
        // would only produce confusing duplicate-name errors.
        if loaded.iter().any(|l: &LoadedFile| l.path == file) {
            continue;
        }
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let base = file.parent().map(Path::to_path_buf);
                match load_file(&file, &text, base.as_deref(), env) {
                    Ok(l) => loaded.push(l),
                    Err(mut es) => errors.append(&mut es),
                }
            }
            Err(e) => errors.push(ConfigError::file_level(
                &file,
                format!("cannot read file: {e}"),
            )),
        }
    }
    finish(loaded, errors)
}

/// Same as [`load`], for one in-memory document (used by tests and by the
/// embedded demo config). `name` is used as the file name in errors;
/// relative `_file` paths resolve against the current directory.
pub fn load_str(
    name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    match load_file(Path::new(name), text, None, env) {
        Ok(l) => finish(vec![l], Vec::new()),
        Err(es) => finish(Vec::new(), es),
    }
}

fn finish(loaded: Vec<LoadedFile>, errors: Vec<ConfigError>) -> Result<Config, ConfigErrors> {
    // Cross-file checks are skipped when a file failed to load: with its
    // clusters and probes missing they would only add false "unknown
    // cluster" errors.
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    validate::validate(&loaded).map_err(ConfigErrors)
}

/// A path argument -> the YAML files it stands for.
fn expand_path(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
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
fn load_file(
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
