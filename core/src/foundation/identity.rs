//! Who and where: the host and user names recorded in key files and snapshots, and whether
//! cairn runs with root's powers.

/// This machine's host name and the user running cairn (`"unknown"` when either cannot be
/// told).
#[must_use]
pub fn host_and_user() -> (String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    (host, user)
}

/// Whether this process runs as root (its `/proc/self` belongs to uid 0): it may then read and
/// write `trusted.*` attributes, set any owner, and set immutable and append-only flags.
#[must_use]
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
