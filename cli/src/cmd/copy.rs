//! `cairn copy`: replicate snapshots to a second repository (e.g. another region).

use anyhow::{Context, Result, bail};
use cairn_core::Repository;
use cairn_core::copy;

use crate::context::{GlobalArgs, bytes, print_json};

/// Copy snapshots to another repository, re-encrypted under its keys.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to copy (id prefixes or `latest`; default: all).
    snapshots: Vec<String>,
    /// The target repository URL.
    #[arg(long, env = "CAIRN_TO_REPOSITORY")]
    to: String,
    /// File holding the target repository's password.
    #[arg(long, env = "CAIRN_TO_PASSWORD_FILE")]
    to_password_file: Option<std::path::PathBuf>,
    /// Command printing the target repository's password.
    #[arg(long, env = "CAIRN_TO_PASSWORD_COMMAND")]
    to_password_command: Option<String>,
    /// Backend setting KEY=VALUE for the target only, after the `-o` ones (repeatable): e.g.
    /// the target's own storage credentials (`aws_access_key_id=…`,
    /// `aws_secret_access_key=…`), so a copy host can read the primary with read-only
    /// credentials and write the copy with append-only ones (docs/PERMISSIONS.md).
    #[arg(long = "to-option", value_name = "KEY=VALUE")]
    to_options: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let src = global.open()?;
    let mut to_global = global.clone();
    to_global.repo = Some(args.to.clone());
    to_global.password_file = args.to_password_file.clone();
    to_global.password_command = args.to_password_command.clone();
    to_global.options.extend(args.to_options.iter().cloned());
    let password = match std::env::var("CAIRN_TO_PASSWORD") {
        Ok(p) => p.into_bytes(),
        Err(_) if args.to_password_file.is_some() || args.to_password_command.is_some() => {
            to_global.password_from_sources()?
        }
        Err(_) => bail!(
            "no password for the target repository: set CAIRN_TO_PASSWORD, --to-password-file or --to-password-command"
        ),
    };
    let dst = Repository::open(to_global.store()?, &password)
        .with_context(|| format!("opening target repository {}", args.to))?;
    let dst = global.with_local_state(dst);
    // A tenant's snapshots go to the same tenant there, made if it is new.
    let dst = match &global.tenant {
        Some(name) => dst.add_tenant(name).with_context(|| format!("opening tenant `{name}` in {}", args.to))?,
        None => dst,
    };
    let ids = super::snapshot_ids(&src, &args.snapshots)?;
    let progress = crate::progress::Reporter::new(global, "copy");
    let stats =
        copy::run_with_progress(&src, &dst, &ids, &progress).with_context(|| format!("copying to {}", args.to))?;
    progress.finish();
    // Base backups restore to any point only with their WAL: the archive goes along.
    let wal = cairn_core::postgres::copy_archive(&src, &dst)
        .with_context(|| format!("copying the PostgreSQL WAL archive to {}", args.to))?;
    if global.json {
        let mut value = serde_json::to_value(&stats)?;
        value["wal_copied"] = serde_json::to_value(wal)?;
        print_json(&value)?;
    } else if !global.quiet {
        if wal.files > 0 {
            println!("{} archived WAL files copied ({})", wal.files, bytes(wal.bytes));
        }
        for c in &stats.copied {
            println!("copied snapshot {} as {}", c.from.short(), c.to.short());
        }
        println!(
            "{} snapshots copied, {} already there; {} blobs ({}) uploaded",
            stats.copied.len(),
            stats.skipped,
            stats.blobs_written,
            bytes(stats.bytes_uploaded)
        );
    }
    Ok(0)
}
