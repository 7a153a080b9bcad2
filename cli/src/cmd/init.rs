//! `cairn init`

use anyhow::{Context, Result};
use cairn_core::KdfParams;
use cairn_core::advanced::chunk::ChunkerParams;
use cairn_core::{InitOptions, Repository};

use crate::context::{GlobalArgs, print_json};

/// Create a repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Average chunk size in KiB (min is a quarter, max four times).
    #[arg(long, default_value_t = 256)]
    chunk_avg_kib: u32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16)]
    pack_size_mib: u32,
    /// zstd compression level (0 = off; 1, the default, is the fastest level, and on SQL dumps
    /// stores about 2 % more than level 3 in about 80 % of the time).
    #[arg(long, default_value_t = 1)]
    compression: i32,
    /// Let the repository directory's group read it (files 0640, directories 0750), e.g. for
    /// a backup group; by default only its owner can (0600, 0700), whatever the umask.
    #[arg(long)]
    group_readable: bool,
    /// Do not pad blobs: by default each stored blob is padded to its Padmé length (at most
    /// 12 %, 1.0-1.4 % more on real data) so the store cannot read exact chunk sizes.
    #[arg(long)]
    no_padding: bool,
    /// Write Reed-Solomon parity beside every data pack, N bytes per 100 (1-100): a damaged
    /// or cut-short range of up to about N % of a pack is rebuilt by `check`, `restore` and
    /// `repair packs`. Trees are always stored twice; this protects file data too, for N % more
    /// storage.
    #[arg(long, value_name = "N%", value_parser = parse_percent)]
    data_parity: Option<u8>,
    /// Create data packs (and their parity) in this storage class, e.g. S3 GLACIER_IR or
    /// STANDARD_IA, Azure Cool, GCS COLDLINE; trees, index and snapshots stay in the default
    /// class, so listing, ls, find, diff and forget never read a cold object. In S3 GLACIER or
    /// DEEP_ARCHIVE, `restore` first warms up the packs it needs; Azure Archive is refused.
    #[arg(long, value_name = "CLASS")]
    data_storage_class: Option<String>,
    /// S3 Object Lock: retain every object (but session markers, garbage lists and tenant keys)
    /// for DURATION from its write, in governance or compliance mode, e.g. `governance:30d`.
    /// `forget` and `prune` never delete what is still retained (they say until when), and
    /// extend what kept snapshots need. The bucket must have object lock on.
    #[arg(long, value_name = "MODE:DURATION", value_parser = cairn_core::format::config::ObjectLock::parse)]
    object_lock: Option<cairn_core::format::config::ObjectLock>,
    /// argon2id memory in KiB for the key file (lower only for tests).
    #[arg(long, default_value_t = KdfParams::default().memory_kib, hide = true)]
    kdf_memory_kib: u32,
    /// argon2id passes.
    #[arg(long, default_value_t = KdfParams::default().iterations, hide = true)]
    kdf_iterations: u32,
    /// argon2id lanes (derived side by side, one thread per core).
    #[arg(long, default_value_t = KdfParams::default().parallelism, hide = true)]
    kdf_parallelism: u32,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    if global.tenant.is_some() {
        return Err(crate::usage("init creates a repository; make a tenant in it with `cairn tenant add NAME`"));
    }
    let store = global.store_for_init()?;
    let password = global.password(true)?;
    let avg = args.chunk_avg_kib.saturating_mul(1024);
    let mut options = InitOptions::default();
    options.chunker_params = ChunkerParams { min_size: avg / 4, avg_size: avg, max_size: avg.saturating_mul(4) };
    options.pack_size = args.pack_size_mib.saturating_mul(1 << 20);
    options.compression = args.compression;
    options.kdf = KdfParams {
        memory_kib: args.kdf_memory_kib,
        iterations: args.kdf_iterations,
        parallelism: args.kdf_parallelism,
    };
    options.group_readable = args.group_readable;
    options.padding = !args.no_padding;
    options.data_parity = args.data_parity.unwrap_or(0);
    options.data_storage_class = args.data_storage_class;
    options.object_lock = args.object_lock;
    let url = cairn_core::store::object_store::redact_userinfo(global.repo_url()?);
    let repo = Repository::init(store, &password, &options).with_context(|| format!("creating repository at {url}"))?;
    if global.json {
        print_json(
            &serde_json::json!({ "repository": url, "id": repo.config().id.to_string(), "key": repo.key_id().to_string() }),
        )?;
    } else if !global.quiet {
        println!("created repository {} at {url}", repo.config().id.short());
        println!("Keep the password safe: without it the data cannot be read.");
    }
    Ok(0)
}

/// `N` or `N%`, 1 to 100.
fn parse_percent(s: &str) -> std::result::Result<u8, String> {
    let n: u8 = s.trim().trim_end_matches('%').parse().map_err(|_| format!("`{s}` is not a percentage"))?;
    if !(1..=100).contains(&n) {
        return Err(format!("`{s}`: the percentage must be 1 to 100"));
    }
    Ok(n)
}
