//! The operations: what a user of a backup tool asks for, each built on the repository layer
//! and none on another operation.
//!
//! [`backup`], [`restore`] (and the restore drill, and dumps to a stream), [`check`],
//! [`forget`] (with its pure [`forget::retention`] policy), [`prune`], [`copy`], [`repair`]
//! (and `rewrite`), [`inspect`] (ls, find, diff, stats), [`browse`] (a snapshot as a directory
//! tree, for `cairn mount`), [`status`] (recovery points), [`tag`] and [`postgres`] (base
//! backups, the WAL archive and point-in-time restore).

pub mod backup;
pub mod browse;
pub mod check;
pub mod copy;
pub mod forget;
pub mod inspect;
pub mod migrate;
pub mod postgres;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod status;
pub mod tag;
