//! Configuration loading: YAML files in, a validated [`Config`] (or every
//! problem found, each with file, line, column and key) out.
//!
//! The pipeline per file ([`file`]) is: YAML events -> a position-carrying
//! node tree ([`slaprobe_yaml`]; anchors, aliases and `<<` merge keys
//! resolved, duplicate keys rejected) -> `${VAR}` expansion and
//! `<key>_file` secret reading on that tree ([`interpolate`]) -> serde
//! deserialization into the strict raw structs ([`raw`], via
//! [`slaprobe_yaml::de`]); then cross-file validation into the model
//! ([`validate`]), every problem a [`ConfigError`]. Keeping the node tree around after deserialization is what
//! lets semantic errors ("deadline must be greater than interval") point at a
//! line and column, which is the whole point of a config loader an operator
//! can fix at 3 a.m.

mod actions;
mod alerts;
pub mod model;

mod error;
mod file;
mod interpolate;
mod librdkafka;
mod raw;
mod secret;
mod validate;

#[cfg(test)]
pub(crate) mod tests;

pub use actions::*;
pub use alerts::*;
pub use error::{ConfigError, ConfigErrors};
pub use librdkafka::check_option;
pub use model::*;

pub(crate) use file::LoadedFile;

use std::path::{Path, PathBuf};

use file::{expand_path, load_file};

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
