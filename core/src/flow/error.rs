//! Flow file errors: each one points at `file:line:col` and says what to do.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Pos;

/// One problem in a flow file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowError {
    /// The flow file.
    pub file: PathBuf,
    /// Where in it.
    pub pos: Pos,
    /// What is wrong and what to do.
    pub message: String,
}

impl FlowError {
    /// A new error.
    pub fn new(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos == Pos::default() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else if self.pos.col == 0 {
            // The column is unknown (errors of a `.py` flow file's generated text).
            write!(
                f,
                "{}:{}: {}",
                self.file.display(),
                self.pos.line,
                self.message
            )
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.pos.line,
                self.pos.col,
                self.message
            )
        }
    }
}

/// All problems found in a flow file, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FlowErrors(pub Vec<FlowError>);

impl FlowErrors {
    /// A single error.
    pub fn one(e: FlowError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for FlowErrors {
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
