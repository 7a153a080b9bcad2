//! The foundation: what every other layer builds on, and which knows nothing of repositories.
//!
//! Errors ([`error`]), identifiers ([`id`]), content-defined chunking ([`chunk`]), compression
//! ([`compress`]), authenticated encryption and keys ([`crypto`]), reading binary fields
//! ([`codec`]), path patterns ([`pattern`]), durations ([`duration`]), paths as text
//! ([`path`]), files only their owner reads ([`private`]), extended attributes and inode flags
//! ([`fsmeta`]), sparse files read without their holes ([`sparse`]), who and where
//! ([`identity`]) and the progress observer ([`progress`]). Nothing here imports a module of a higher layer.

pub mod chunk;
pub mod codec;
pub mod compress;
pub mod crypto;
pub mod duration;
pub mod error;
pub mod fsmeta;
pub mod id;
pub mod identity;
pub mod path;
pub mod pattern;
pub mod private;
pub mod progress;
pub mod sparse;
