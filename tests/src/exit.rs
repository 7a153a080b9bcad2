//! The exit codes the README documents (section "Exit codes"), as the tests expect them: a test
//! that checks a code checks the documented table, so the two cannot drift apart unnoticed.

/// Done.
pub const OK: i32 = 0;
/// Failed (no more specific kind), or a check, restore or status found problems.
pub const FAILED: i32 = 1;
/// Bad arguments or options.
pub const USAGE: i32 = 2;
/// Done, but some source files could not be read.
pub const PARTIAL: i32 = 3;
/// No repository at the location given.
pub const REPOSITORY_NOT_FOUND: i32 = 10;
/// A format version this build does not know.
pub const UNSUPPORTED_VERSION: i32 = 11;
/// The password opens no key file.
pub const WRONG_PASSWORD: i32 = 12;
/// An object of the repository is damaged.
pub const DAMAGED: i32 = 13;
/// An object the repository needs is missing.
pub const OBJECT_MISSING: i32 = 14;
/// A snapshot, path or key asked for does not exist.
pub const NOT_FOUND: i32 = 15;
/// The data to back up could not be read (a dump command failed).
pub const SOURCE_UNREADABLE: i32 = 16;
/// Storage unreachable or failing after retries.
pub const STORAGE_UNAVAILABLE: i32 = 17;
/// Storage refused the request.
pub const PERMISSION_DENIED: i32 = 18;
/// Storage failed in a way retrying will not mend (a full disk under a local repository).
pub const STORAGE: i32 = 19;
/// A local file could not be read or written (a restore target, a full disk).
pub const IO: i32 = 20;
/// A concurrent prune removed data the command depended on; nothing was committed.
pub const CONFLICT: i32 = 21;
/// The repository was opened with a write-only key, and the command reads or changes what is
/// stored.
pub const WRITE_ONLY_KEY: i32 = 22;
/// Data is in an archive storage class and not warm yet.
pub const ARCHIVED: i32 = 23;
