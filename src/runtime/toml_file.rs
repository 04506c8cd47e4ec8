//! One reader for the TOML files a person writes (pipeline configurations, camera calibrations):
//! every mistake becomes a [`ConfigError`] naming the file, line and key, what was wrong and what
//! is allowed.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// A configuration mistake: `file:line: key: what` (no line when the file itself is unreadable).
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {}{}{message}", file.display(), line_part(*line), key, if key.is_empty() { "" } else { ": " })]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

/// The text of `file`, or an error saying `what` could not be read and why.
pub(crate) fn read_text(file: &Path, what: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("cannot read {what}: {e}"),
    })
}

fn line_part(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

/// Turns spans into `file:line: key: message` errors; shared with the calibration files.
pub(crate) struct Checker<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
}

impl Checker<'_> {
    pub(crate) fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    pub(crate) fn err(
        &self,
        span: &Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: self.line(span),
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &self,
        v: &Spanned<T>,
        key: &str,
        lo: T,
        hi: T,
    ) -> Result<T, ConfigError> {
        let x = *v.get_ref();
        if x < lo || x > hi {
            return Err(self.err(
                &v.span(),
                key,
                format!("{x} is out of range; allowed: {lo} to {hi}"),
            ));
        }
        Ok(x)
    }

    /// The text as `T`; a TOML or type mistake becomes an error at its line.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            // toml names unknown and missing keys itself; for a bad value the key is the one
            // assigned on that line.
            let line = self.text.lines().nth(self.line(&span) - 1).unwrap_or("");
            let key = match line.split_once('=') {
                Some((k, _)) if !e.message().contains("field `") => {
                    k.trim().trim_start_matches('[').to_string()
                }
                _ => String::new(),
            };
            self.err(&span, &key, e.message().to_string())
        })
    }

    /// A path relative to the config file's folder, with `dir/..` folded away so messages
    /// show `recordings/demo` rather than `pipelines/../recordings/demo`.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        use std::path::Component;
        let p = Path::new(p);
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        };
        let mut out = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir
                    if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
                {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        if out.as_os_str().is_empty() {
            out.push(".");
        }
        out
    }
}
