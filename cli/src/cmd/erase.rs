//! `cairn erase --policy FILE`: carry out an erasure request in the repository and every copy,
//! record it, and write the completion notice for the customer (docs/POLICY.md).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_core::format::record::StepKind;
use cairn_core::policy::erase::{self, Notice, Request};

use crate::context::{GlobalArgs, print_json, say};

/// Erase paths from every snapshot of the policy's repository and copies, bytes included; or,
/// with --tenant NAME, crypto-shred that tenant in all of them.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy file (docs/POLICY.md): the repository and copies to erase from.
    #[arg(long)]
    policy: PathBuf,
    /// The request's id (a ticket number), recorded with the erasure.
    #[arg(long, required_unless_present_any = ["list", "verify_notice"], conflicts_with_all = ["list", "verify_notice"])]
    request: Option<String>,
    /// A path to erase, as a `rewrite --exclude` glob (repeatable): without `/` it matches a
    /// name, with `/` a path. Erased from the tenants' repositories too. Or give the global
    /// --tenant NAME instead to crypto-shred that tenant: its key is destroyed in the
    /// repository and every copy, so none of its backups can be opened, then its objects are
    /// deleted wherever the storage allows.
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Write the completion notice (JSON, with a MAC the repository's key holders can
    /// verify) to this file.
    #[arg(long)]
    notice: Option<PathBuf>,
    /// How long to wait for running backups that still hold erased bytes (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_wait)]
    wait: std::time::Duration,
    /// List the erasures recorded in the repository.
    #[arg(long)]
    list: bool,
    /// Check that a completion notice was issued for this repository and is unchanged.
    #[arg(long, value_name = "FILE")]
    verify_notice: Option<PathBuf>,
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    cairn_core::parse_duration(s, 's').map_err(|e| e.to_string())
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let policy = super::run::load(&args.policy)?;
    let repo = super::run::open(global, &policy.repository)?;
    if let Some(file) = &args.verify_notice {
        let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let notice: Notice =
            serde_json::from_slice(&text).with_context(|| format!("{} is not a completion notice", file.display()))?;
        if erase::verify_notice(&repo, &notice) {
            say!(global, "{}: an authentic notice of request {}", file.display(), notice.request);
            return Ok(0);
        }
        eprintln!("error: {}: not issued for this repository, or changed since", file.display());
        return Ok(crate::exit::FAILED);
    }
    if args.list {
        let records = erase::list(&repo).context("reading the run records")?;
        if global.json {
            return print_json(&records).map(|()| 0);
        }
        for r in &records {
            for s in r.steps.iter().filter(|s| s.kind == StepKind::Erase) {
                let Some(e) = &s.erasure else { continue };
                let gone = e
                    .bytes_deleted_at
                    .map_or_else(|| "bytes NOT yet deleted".to_string(), |t| format!("bytes deleted {t}"));
                match &e.tenant {
                    Some(t) => println!(
                        "{}  request {}  {}: tenant {t} shredded ({}), {gone}{}",
                        r.started,
                        e.request,
                        s.target,
                        e.key_destroyed_at.map_or_else(|| "no key there".to_string(), |k| format!("key destroyed {k}")),
                        if e.held.is_empty() { String::new() } else { format!(", {} objects held", e.held.len()) }
                    ),
                    None => println!(
                        "{}  request {}  {}: {} snapshots, {} paths, {gone}",
                        r.started,
                        e.request,
                        s.target,
                        e.snapshots.len(),
                        e.files.len()
                    ),
                }
            }
        }
        return Ok(0);
    }
    let Some(id) = args.request else { bail!("--request is required") };
    match (&global.tenant, args.paths.is_empty()) {
        (None, true) => {
            return Err(crate::usage("give --path PATTERN (repeatable), or --tenant NAME to shred a tenant"));
        }
        (Some(_), false) => return Err(crate::usage("give --path or --tenant, not both")),
        _ => {}
    }
    let opened = super::run::open_copies(global, &policy);
    let copies = super::run::targets(&opened);
    let mut request = Request::new(id, args.paths, super::run::now()?);
    request.wait = args.wait;
    let record = match &global.tenant {
        Some(tenant) => erase::shred(&repo, &copies, tenant, &request).context("shredding")?,
        None => erase::erase(&repo, &copies, &request).context("erasing")?,
    };
    if let Some(path) = &args.notice {
        let notice = erase::notice(&repo, &record)?;
        let text = serde_json::to_vec_pretty(&notice)?;
        // Private to its owner until the operator sends it.
        let mut file = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(file.write(true).create(true).truncate(true), 0o600);
        file.open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &text))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if global.json {
        print_json(&record)?;
    } else {
        for s in &record.steps {
            if s.ok {
                say!(global, "erase {}: {}", s.target, s.message);
            } else {
                eprintln!("error: erase {}: {}", s.target, s.message);
            }
        }
    }
    Ok(if record.ok() { 0 } else { crate::exit::FAILED })
}
