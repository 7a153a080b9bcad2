//! `cairn report --policy FILE --html OUT`: the compliance report, one self-contained HTML
//! file (docs/POLICY.md).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::context::{GlobalArgs, say};

/// Write a one-page HTML report of whether a policy was kept over the last year.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy file (docs/POLICY.md).
    #[arg(long)]
    policy: PathBuf,
    /// The HTML file to write (self-contained: no script, no network).
    #[arg(long)]
    html: PathBuf,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let policy = super::run::load(&args.policy)?;
    let repo = super::run::open(global, &policy.repository)?;
    let opened = super::run::open_copies(global, &policy);
    let snapshots = cairn_core::policy::status::snapshots(&policy, &repo).context("listing snapshots")?;
    let records = repo.records().context("reading the run records")?;
    let targets = super::run::targets(&opened);
    let wal = cairn_core::policy::status::newest_wal(&policy, &repo)?;
    let status = cairn_core::policy::status::judge(&policy, &snapshots, &records, &wal, &targets, super::run::now()?);
    let page = cairn_core::policy::report::html(&policy, &status, &snapshots, &records);
    // Private to its owner, like everything cairn writes: publishing it is the operator's call.
    let mut file = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(file.write(true).create(true).truncate(true), 0o600);
    file.open(&args.html)
        .and_then(|mut f| std::io::Write::write_all(&mut f, page.as_bytes()))
        .with_context(|| format!("writing {}", args.html.display()))?;
    say!(
        global,
        "wrote {}: {}",
        args.html.display(),
        if status.ok { "every promise is kept" } else { "the policy is NOT kept" }
    );
    Ok(0)
}
