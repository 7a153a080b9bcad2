//! Paths as text, for outcomes serialised to JSON: names that are not UTF-8 are written with
//! U+FFFD in place of the bytes that are not, as `Path::to_string_lossy` does, rather than
//! failing the whole report.

use std::path::Path;

use serde::Serializer;

/// Serialises a path as a string (lossy for names that are not UTF-8).
///
/// # Errors
/// As the serializer reports.
pub fn serialize_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}
