//! `cairn schedule --policy FILE`: the systemd units (or crontab line) that start `cairn run`
//! often enough for everything the policy asks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_core::policy::Policy;

use crate::context::{GlobalArgs, duration_text, say};

/// Write a systemd service and timer, or print a crontab line, that run the policy.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy file (docs/POLICY.md).
    #[arg(long)]
    policy: PathBuf,
    /// Write `cairn-run.service` and `cairn-run.timer` into this directory (for example
    /// /etc/systemd/system), then run `systemctl daemon-reload` and
    /// `systemctl enable --now cairn-run.timer`.
    #[arg(long, conflicts_with = "cron", required_unless_present = "cron")]
    systemd: Option<PathBuf>,
    /// Print a crontab line instead (for `crontab -e`).
    #[arg(long)]
    cron: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let policy = super::run::load(&args.policy)?;
    let file = std::fs::canonicalize(&args.policy).with_context(|| format!("finding {}", args.policy.display()))?;
    let cairn = std::env::current_exe().context("finding the cairn binary")?;
    let period = period(&policy);
    let command = format!("{} run --policy {}", quoted(&cairn), quoted(&file));
    match &args.systemd {
        Some(dir) => {
            let (service, timer) = (dir.join("cairn-run.service"), dir.join("cairn-run.timer"));
            write(&service, &service_unit(&command, &file))?;
            write(&timer, &timer_unit(period))?;
            say!(global, "wrote {} and {} (every {})", service.display(), timer.display(), duration_text(period));
            say!(global, "enable with: systemctl daemon-reload && systemctl enable --now cairn-run.timer");
        }
        None => println!("{} {command}", cron_spec(period)),
    }
    Ok(0)
}

/// How often `cairn run` must start: the greatest common divisor of every interval the policy
/// names (sources, check, drill), so each comes due on a run, never a run late; at least a
/// minute.
pub fn period(policy: &Policy) -> Duration {
    let intervals = policy
        .sources
        .iter()
        .map(|s| s.every)
        .chain(policy.check.map(|c| c.every))
        .chain(policy.drill.map(|d| d.every))
        .map(|d| d.as_secs().max(60));
    let gcd = intervals.reduce(gcd).unwrap_or(3600);
    Duration::from_secs(gcd.max(60))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn service_unit(command: &str, policy: &Path) -> String {
    format!(
        "# Written by `cairn schedule`: runs what {policy} says is due.\n\
         [Unit]\n\
         Description=Cairn backup policy run\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={command}\n\
         # Backups yield to the host's own work.\n\
         Nice=10\n\
         IOSchedulingClass=idle\n\
         NoNewPrivileges=yes\n\
         PrivateTmp=yes\n\
         UMask=0077\n",
        policy = policy.display()
    )
}

fn timer_unit(period: Duration) -> String {
    format!(
        "# Written by `cairn schedule`: starts cairn-run.service every {every}.\n\
         [Unit]\n\
         Description=Cairn backup policy run, every {every}\n\
         \n\
         [Timer]\n\
         OnBootSec=5min\n\
         OnUnitActiveSec={secs}s\n\
         AccuracySec=1min\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        every = duration_text(period),
        secs = period.as_secs()
    )
}

/// The crontab schedule that starts at least as often as `period`: cron can only divide an
/// hour or a day evenly, so an interval it cannot express runs more often (a run with nothing
/// due does nothing).
fn cron_spec(period: Duration) -> String {
    let minutes = (period.as_secs() / 60).max(1);
    let largest_divisor =
        |of: u64, at_most: u64| (1..=at_most.min(of)).rev().find(|d| of.is_multiple_of(*d)).unwrap_or(1);
    if minutes < 60 {
        match largest_divisor(60, minutes) {
            1 => "* * * * *".to_string(),
            m => format!("*/{m} * * * *"),
        }
    } else if minutes < 24 * 60 {
        match largest_divisor(24, minutes / 60) {
            1 => "0 * * * *".to_string(),
            h => format!("0 */{h} * * *"),
        }
    } else {
        "0 0 * * *".to_string()
    }
}

fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        text
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_runs_at_least_as_often_as_asked() {
        let m = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(cron_spec(m(1)), "* * * * *");
        assert_eq!(cron_spec(m(15)), "*/15 * * * *");
        assert_eq!(cron_spec(m(25)), "*/20 * * * *");
        assert_eq!(cron_spec(m(60)), "0 * * * *");
        assert_eq!(cron_spec(m(180)), "0 */3 * * *");
        assert_eq!(cron_spec(m(300)), "0 */4 * * *");
        assert_eq!(cron_spec(m(24 * 60)), "0 0 * * *");
        assert_eq!(cron_spec(m(7 * 24 * 60)), "0 0 * * *");
    }
}
