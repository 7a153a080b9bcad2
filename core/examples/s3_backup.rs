//! Back up a directory into S3-compatible object storage and list the snapshots.
//!
//! The repository is `CAIRN_EXAMPLE_REPOSITORY` (for example `s3://my-bucket/cairn`), with the
//! credentials and endpoint in the standard variables `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and, for a service other than AWS,
//! `AWS_ENDPOINT_URL`. Without `CAIRN_EXAMPLE_REPOSITORY` it uses a new local repository in a
//! temporary directory, so it runs anywhere. The directory backed up is the first argument, or
//! a small one the example makes.
//!
//! ```sh
//! cargo run -p cairn-core --example s3_backup
//! CAIRN_EXAMPLE_REPOSITORY=s3://bucket/prefix AWS_ENDPOINT_URL=http://127.0.0.1:9000 \
//!     AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=us-east-1 \
//!     cargo run -p cairn-core --example s3_backup -- /etc
//! ```

use std::path::PathBuf;

use cairn_core::backup::{self, BackupOptions, BackupSource};
use cairn_core::{ErrorKind, InitOptions, NoProgress, Repository};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let url = match std::env::var("CAIRN_EXAMPLE_REPOSITORY") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let local = scratch.path().join("repo").to_string_lossy().into_owned();
            println!("CAIRN_EXAMPLE_REPOSITORY is not set: using a local repository at {local}");
            local
        }
    };
    let source = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = scratch.path().join("data");
            std::fs::create_dir_all(dir.join("reports"))?;
            std::fs::write(dir.join("reports/2026-12.csv"), "month,orders\n2026-12,1432\n")?;
            std::fs::write(dir.join("README"), "made by the s3_backup example\n")?;
            dir
        }
    };
    let password = std::env::var("CAIRN_EXAMPLE_PASSWORD").unwrap_or_else(|_| "example password".into());

    // Open the repository, or create it the first time.
    let repo = match Repository::open_url(&url, password.as_bytes()) {
        Ok(repo) => repo,
        Err(e) if e.kind() == ErrorKind::RepositoryNotFound => {
            println!("creating a repository at {url}");
            Repository::init_url(&url, password.as_bytes(), &InitOptions::default())?
        }
        Err(e) => return Err(e.into()),
    };

    let mut options = BackupOptions::default();
    options.tags = vec!["example".into()];
    let done = backup::run(&repo, BackupSource::paths([&source]), &options, &NoProgress)?;
    for skipped in &done.unreadable {
        eprintln!("not backed up: {skipped}");
    }
    println!(
        "backed up {} ({} files, {} bytes) as snapshot {}",
        source.display(),
        done.summary.files_new + done.summary.files_changed + done.summary.files_unmodified,
        done.summary.total_bytes,
        done.snapshot.short()
    );

    println!("snapshots in {url}:");
    for (id, snapshot) in repo.snapshots()? {
        println!("  {}  {}  {}  {}", id.short(), snapshot.time, snapshot.host, snapshot.paths.join(" "));
    }
    Ok(())
}
