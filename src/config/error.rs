//! A configuration problem, located: file, line, column and key.

use std::fmt;
use std::path::{Path, PathBuf};

use slaprobe_yaml as yaml;

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
