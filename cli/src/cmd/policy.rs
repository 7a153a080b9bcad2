//! `cairn policy check FILE`: read a backup policy (docs/POLICY.md) and say what it promises,
//! or name the line of its first mistake.

use anyhow::{Context, Result};
use cairn_core::policy::{Policy, SourceKind};

use crate::context::{GlobalArgs, duration_text, print_json};

/// Work with a policy file.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Check a policy file: every key known, every value valid, every promise keepable.
    Check {
        /// The policy file (TOML).
        file: std::path::PathBuf,
    },
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let What::Check { file } = args.what;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let policy = Policy::parse(&text)
        .map_err(|e| crate::usage(format!("{}:{}:{}: {}", file.display(), e.line, e.column, e.message)))?;
    if global.json {
        let sources: Vec<_> = policy
            .sources
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "kind": match s.kind {
                        SourceKind::Command { .. } => "command",
                        SourceKind::Postgres { .. } => "postgres",
                        _ => "paths",
                    },
                    "every_seconds": s.every.as_secs(),
                    "rpo_seconds": s.rpo.as_secs(),
                })
            })
            .collect();
        let copies: Vec<_> = policy.copies.iter().map(|c| c.name.clone()).collect();
        print_json(&serde_json::json!({
            "valid": true,
            "repository": policy.repository.url,
            "sources": sources,
            "copies": copies,
            "retention": policy.retention.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "run_every_seconds": policy.shortest_every().as_secs(),
        }))?;
        return Ok(0);
    }
    if !global.quiet {
        println!("{}: a valid policy for {}", file.display(), policy.repository.url);
        for s in &policy.sources {
            let what = match &s.kind {
                SourceKind::Command { argv, filename } => format!("`{}` as {filename}", argv.join(" ")),
                SourceKind::Paths { paths, .. } => {
                    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                }
                SourceKind::Postgres { cluster, .. } => {
                    format!("PostgreSQL cluster {cluster} (base backups; WAL through pg wal-push)")
                }
                _ => String::new(),
            };
            println!("  source {}: {what}, every {}, rpo {}", s.name, duration_text(s.every), duration_text(s.rpo));
        }
        for c in &policy.copies {
            let lag = c.max_lag.map_or_else(|| "no lag limit".to_string(), |l| format!("max lag {}", duration_text(l)));
            println!("  copy {}: {}, {lag}", c.name, c.repository.url);
        }
        if !policy.retention.is_empty() {
            let tiers: Vec<String> = policy.retention.iter().map(ToString::to_string).collect();
            println!("  retention: {}", tiers.join(", "));
        }
        if let Some(c) = &policy.check {
            println!("  check every {}", duration_text(c.every));
        }
        if let Some(d) = &policy.drill {
            println!("  drill every {}, rto {}", duration_text(d.every), duration_text(d.rto));
        }
        if let Some(d) = policy.erasure_deadline {
            println!("  erasure within {}", duration_text(d));
        }
        println!("  `cairn run` is due every {}", duration_text(policy.shortest_every()));
    }
    Ok(0)
}
