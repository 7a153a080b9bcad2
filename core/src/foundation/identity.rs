//! Who and where: the host and user names recorded in key files and snapshots.

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
