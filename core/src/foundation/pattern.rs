//! Path patterns: the globs of `--exclude`, `--include`, `find` and `rewrite`.
//!
//! A pattern without `/` matches an entry's name anywhere in the tree; a pattern with `/`
//! matches a whole absolute path. `*` stays within one path component, `**` crosses them, and
//! `\` escapes the next character.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::foundation::error::{Error, Result};

/// Compiled path patterns.
#[derive(Debug, Clone)]
pub struct PathPatterns {
    /// Patterns without `/`, matched against a name.
    names: GlobSet,
    /// Patterns with `/`, matched against a whole path.
    paths: GlobSet,
}

impl PathPatterns {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first pattern that is not a valid glob.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("bad pattern `{p}`: {e}")))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidArgument(format!("bad patterns: {e}")));
        Ok(PathPatterns { names: build(names)?, paths: build(paths)? })
    }

    /// Whether `path` (absolute) matches: its name matches a name pattern, or the whole path a
    /// path pattern.
    #[must_use]
    pub fn matches(&self, path: &Path) -> bool {
        // No patterns (the common case, asked of every entry of a walk): no path is looked at.
        !self.is_empty() && (path.file_name().is_some_and(|n| self.names.is_match(n)) || self.paths.is_match(path))
    }

    /// Whether no pattern was given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(p: &[&str]) -> PathPatterns {
        PathPatterns::new(&p.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_match_anywhere_paths_match_whole() {
        let p = patterns(&["*.tmp", "/srv/cache/**"]);
        assert!(p.matches(Path::new("/a/b/x.tmp")));
        assert!(!p.matches(Path::new("/a/b/x.tmp/y")));
        assert!(p.matches(Path::new("/srv/cache/a/b")));
        assert!(!p.matches(Path::new("/srv/cached")));
        let star = patterns(&["/srv/*"]);
        assert!(star.matches(Path::new("/srv/a")));
        assert!(!star.matches(Path::new("/srv/a/b")), "`*` stays within one component");
        assert!(patterns(&[]).is_empty());
        assert!(!p.is_empty());
        assert!(PathPatterns::new(&["[".to_string()]).is_err());
    }
}
