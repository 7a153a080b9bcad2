//! What machine a run was on, read from `/proc`.

use std::fs;

/// The machine's description.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// CPU model name.
    pub cpu: String,
    /// CPU features that matter to the stages (AES-NI, AVX2, VAES, …).
    pub features: Vec<&'static str>,
    /// Total memory in bytes.
    pub memory: u64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc/cpuinfo`, `/proc/meminfo` and the kernel release.
    #[must_use]
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let flags = field("flags");
        let flags: Vec<&str> = flags.split_whitespace().collect();
        let features = ["aes", "pclmulqdq", "sha_ni", "avx2", "avx512f", "vaes", "vpclmulqdq"]
            .into_iter()
            .filter(|f| flags.contains(f))
            .collect();
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            })
            .unwrap_or(0)
            * 1024;
        Machine {
            cores: num_cpus(),
            cpu: field("model name"),
            features,
            memory,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        }
    }
}

/// The 1-minute load average (0 when unknown).
#[must_use]
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Cores available to this process.
#[must_use]
pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
