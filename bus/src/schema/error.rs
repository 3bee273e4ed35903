//! A mistake in the YAML declarations, with its file, line and column, and all of them at once.

use std::path::{Path, PathBuf};

use saphyr::Marker;

/// One mistake in the YAML declarations.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}: {message}", .file.display(), position(*.line, *.column))]
pub struct LoadError {
    /// The file as found under the apps directory (`<app>/<doc>.yaml` for in-memory sources).
    pub file: PathBuf,
    /// 1-based; `None` when the mistake is about the file as a whole.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
}

/// All the mistakes found, one per line when displayed, ordered by file and position.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadError {
    /// A mistake about a whole file or directory.
    pub fn file(file: &Path, message: impl Into<String>) -> LoadError {
        LoadError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// A mistake at a parser position (whose column is 0-based).
    pub fn at(file: &Path, mark: Marker, message: impl Into<String>) -> LoadError {
        LoadError {
            file: file.to_path_buf(),
            line: Some(mark.line()),
            column: Some(mark.col() + 1),
            message: message.into(),
        }
    }
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

fn lines(errors: &[LoadError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}
