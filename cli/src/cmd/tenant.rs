//! `cairn tenant list|add|shred`: tenants' repositories nested in the repository, each under
//! its own key (docs/FORMAT.md §14d).

use anyhow::{Context, Result};

use crate::context::{GlobalArgs, bytes, print_json, say};

/// Manage tenants: repositories nested in this one, each sealed under its own key.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// List the tenants.
    List,
    /// Make a tenant (nothing happens if it exists); back it up with `--tenant NAME backup`.
    Add {
        /// Its name.
        name: String,
    },
    /// Write every tenant key that has a damaged copy whole again, from its intact copy
    /// (`cairn check` names them).
    Repair,
    /// Crypto-shred a tenant: destroy its key, so none of its backups can be opened by anyone,
    /// then delete its objects wherever the storage allows. `cairn erase --policy FILE
    /// --tenant NAME` does this in the policy's repository and every copy, with a record.
    Shred {
        /// Its name.
        name: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    if global.tenant.is_some() {
        return Err(crate::usage("`cairn tenant` works on the repository itself: leave --tenant (CAIRN_TENANT) out"));
    }
    let repo = global.open_repository()?;
    match args.what {
        What::List => {
            let tenants = repo.tenants()?;
            if global.json {
                return print_json(&tenants).map(|()| 0);
            }
            for t in &tenants {
                println!("{}  {}  {}", t.id.short(), t.name, t.created);
            }
        }
        What::Add { name } => {
            let t = repo.add_tenant(&name).with_context(|| format!("making tenant `{name}`"))?;
            say!(global, "tenant `{name}` is ready (repository {})", t.config().id.short());
        }
        What::Repair => {
            let repaired = repo.repair_tenant_keys()?;
            if global.json {
                return print_json(&repaired).map(|()| 0);
            }
            for name in &repaired {
                say!(global, "tenant `{name}`: key written whole again from its intact copy");
            }
            if repaired.is_empty() {
                say!(global, "every tenant key is whole");
            }
        }
        What::Shred { name, yes } => {
            if !yes {
                return Err(crate::usage(format!(
                    "shredding tenant `{name}` destroys every backup of it for good: add --yes"
                )));
            }
            let s = repo.shred_tenant(&name).with_context(|| format!("shredding tenant `{name}`"))?;
            if global.json {
                print_json(&s)?;
            } else if !s.key_destroyed && s.objects_deleted == 0 && s.held.is_empty() {
                say!(global, "tenant `{name}`: no key and no objects here (never made, or shredded already)");
            } else {
                say!(
                    global,
                    "tenant `{name}`: key {}; {} objects ({}) deleted",
                    if s.key_destroyed { "destroyed" } else { "already gone" },
                    s.objects_deleted,
                    bytes(s.bytes_deleted)
                );
            }
            for (object, why) in &s.held {
                eprintln!("warning: tenant `{name}`: {object} not deleted (kept, unreadable): {why}");
            }
            if !s.held.is_empty() {
                return Ok(crate::exit::PARTIAL);
            }
        }
    }
    Ok(0)
}
