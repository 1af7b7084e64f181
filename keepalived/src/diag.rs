//! Where a statement came from and what is wrong with it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A place in a configuration file: the file as it was named (or found by `include`) and
/// the 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// keepalived logs it and carries on (an unknown keyword, a block fnat keeps for later).
    Warning,
    /// The file cannot be used: nothing of it is applied.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub at: Location,
    /// The keyword of the statement concerned ("" when the problem is not in one).
    pub keyword: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        if self.keyword.is_empty() {
            write!(f, "{}: {level}: {}", self.at, self.message)
        } else {
            write!(
                f,
                "{}: {level}: {}: {}",
                self.at, self.keyword, self.message
            )
        }
    }
}

/// Collects diagnostics while a file is read.
#[derive(Default, Debug)]
pub struct Diagnostics {
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, at: &Location, keyword: &str, message: impl Into<String>) {
        self.push(Level::Error, at, keyword, message.into());
    }

    pub fn warning(&mut self, at: &Location, keyword: &str, message: impl Into<String>) {
        self.push(Level::Warning, at, keyword, message.into());
    }

    fn push(&mut self, level: Level, at: &Location, keyword: &str, message: String) {
        self.list.push(Diagnostic {
            level,
            at: at.clone(),
            keyword: keyword.to_string(),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.level == Level::Error)
    }
}
