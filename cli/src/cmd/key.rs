//! `cairn key list|add|remove|passwd`: one key file per person or tenant, each revocable.

use anyhow::{Context, Result, bail};
use cairn_core::KdfParams;

use crate::context::{GlobalArgs, print_json, say};

/// Manage the key files that open the repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// List key files.
    List,
    /// Add a key file for another password (read from CAIRN_NEW_PASSWORD, --new-password-file, or a prompt).
    Add {
        #[command(flatten)]
        password: NewPassword,
        /// A write-only key, for a host that backs up: it deduplicates against the repository
        /// but opens none of its data, trees or snapshots, its own included, and cannot
        /// forget, prune, rewrite, repair or restore (format version 3).
        #[arg(long)]
        write_only: bool,
    },
    /// Remove a key file (not the one in use, not the last one).
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password: add a key file for the new password and remove the one in use.
    Passwd(NewPassword),
    /// Rotate the master key: what is written from now on is sealed under a new generation,
    /// which only the one key file left (yours, same password) holds; every other key file is
    /// removed (add them again with `key add`, write-only ones too).
    Rotate,
}

#[derive(clap::Args, Debug)]
struct NewPassword {
    /// File holding the new password.
    #[arg(long, env = "CAIRN_NEW_PASSWORD_FILE")]
    new_password_file: Option<std::path::PathBuf>,
}

impl NewPassword {
    fn read(&self) -> Result<Vec<u8>> {
        if let Ok(p) = std::env::var("CAIRN_NEW_PASSWORD") {
            return Ok(p.into_bytes());
        }
        if let Some(f) = &self.new_password_file {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            return Ok(text.lines().next().unwrap_or_default().as_bytes().to_vec());
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let p = rpassword::prompt_password("new password: ")?;
            if rpassword::prompt_password("repeat the new password: ")? != p {
                bail!("the passwords do not match");
            }
            return Ok(p.into_bytes());
        }
        Err(crate::usage("no new password: set CAIRN_NEW_PASSWORD or --new-password-file"))
    }
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    // Key files open the repository and every tenant in it: --tenant changes nothing here.
    let mut repo = global.open_repository()?;
    match args.what {
        What::List => {
            let keys = repo.keys()?;
            if global.json {
                return print_json(&keys).map(|()| 0);
            }
            for k in &keys {
                let mark = if k.current { "*" } else { " " };
                println!("{mark} {}  {:<10}  {}@{}  {}", k.id.short(), k.kind, k.user, k.host, k.created);
            }
        }
        What::Add { password, write_only } => {
            let id = if write_only {
                repo.add_write_only_key(&password.read()?, KdfParams::default())?
            } else {
                repo.add_key(&password.read()?, KdfParams::default())?
            };
            say!(global, "added {}key {}", if write_only { "write-only " } else { "" }, id.short());
        }
        What::Remove { id } => {
            let id = repo.find_key(&id)?;
            repo.remove_key(id)?;
            say!(global, "removed key {}", id.short());
        }
        What::Rotate => {
            let password = global.password(false)?;
            let (new, removed) = repo.rotate_key(&password, KdfParams::default())?;
            if global.json {
                let removed: Vec<String> = removed.iter().map(ToString::to_string).collect();
                let generation = repo.master().generation();
                return print_json(
                    &serde_json::json!({ "key": new.to_string(), "generation": generation, "removed": removed }),
                )
                .map(|()| 0);
            }
            say!(
                global,
                "rotated to key generation {}: key {} is the only key",
                repo.master().generation(),
                new.short()
            );
            for id in &removed {
                say!(global, "removed key {} (add it again with `cairn key add` if it should stay)", id.short());
            }
        }
        What::Passwd(p) => {
            let old = repo.key_id();
            let new = repo.change_password(&p.read()?, KdfParams::default())?;
            say!(global, "password changed: key {} replaces {}", new.short(), old.short());
        }
    }
    Ok(0)
}
