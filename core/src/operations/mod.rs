//! The operations: what a user of a backup tool asks for, each built on the repository layer
//! and none on another operation.
//!
//! [`backup`], [`restore`], [`check`], [`prune`], [`copy`], [`repair`], [`inspect`] (ls, find,
//! diff, stats, dump) and [`retention`] (the pure policy `forget` applies).

pub mod backup;
pub mod check;
pub mod copy;
pub mod inspect;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod retention;
