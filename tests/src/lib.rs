//! cairn-tests: the kit the end-to-end suite (`tests/e2e`) is built from.
//!
//! - [`TestRepo`]: a repository in a temporary directory, and the `cairn` binary run against it
//!   with the password in `CAIRN_PASSWORD` and nothing else from the caller's environment that
//!   could change its behaviour. Each run is captured as an [`Output`] (exit code, stdout, stderr).
//! - [`data`]: deterministic pseudo-random and compressible bytes, so a failure reproduces.
//! - [`fixture`]: a source tree with every edge case a backup must keep.
//! - [`compare`]: [`compare_trees`], the byte and metadata comparison a restore is judged by.
//! - [`corrupt`]: damage done to a repository on disk (missing and flipped objects).
//! - [`system`]: what needs root: a small tmpfs, ownership changes, running as another user.
//!
//! The kit does not know where the binary is: only the package that owns it gets
//! `CARGO_BIN_EXE_cairn`, so the e2e suite passes that path in.
//!
//! ```no_run
//! use cairn_tests::{TestRepo, args, assert_trees_equal};
//! let repo = TestRepo::init("target/debug/cairn");
//! let src = repo.dir("src");
//! std::fs::write(src.join("hello.txt"), b"hello").unwrap();
//! repo.backup([&src]);
//! let target = repo.dir("restore");
//! repo.run(args!["restore", "latest", "--verify", "--target", &target]).success();
//! assert_trees_equal(&src, &target.join(src.strip_prefix("/").unwrap()));
//! ```

pub mod compare;
pub mod corrupt;
pub mod data;
pub mod exit;
pub mod fixture;
pub mod repo;
pub mod system;

pub use compare::{CompareOptions, assert_trees_equal, compare_trees, compare_trees_with};
pub use repo::{Output, TestRepo};
