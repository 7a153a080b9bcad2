//! `cairn ls`

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use cairn_core::{Node, NodeKind, SnapshotRef, inspect};

use super::FilterArgs;
use crate::context::{GlobalArgs, print_json};

/// List the entries of a snapshot below a path.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot id prefix or `latest`.
    snapshot: String,
    /// Path in the snapshot (default: everything).
    path: Option<PathBuf>,
    /// Show type, mode (with setuid, setgid and sticky bits), owner, size, modification time
    /// and symbolic link targets; a `+` after the mode marks extended attributes or ACLs.
    #[arg(long, short = 'l')]
    long: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &GlobalArgs, args: Args) -> Result<u8> {
    let which: SnapshotRef = args.snapshot.parse()?;
    let repo = global.open()?;
    let (_, snap) = repo.find_snapshot(&which, &args.filter.filter())?;
    let path = args.path.as_deref().unwrap_or(Path::new("/"));
    if global.json {
        let mut list = Vec::new();
        inspect::ls(&repo, &snap, path, &mut |p, n| {
            list.push(entry_json(p, n));
            Ok(())
        })?;
        return print_json(&list).map(|()| 0);
    }
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut write = |path: &Path, n: &Node| -> std::io::Result<()> {
        if args.long {
            let time = jiff::Timestamp::new(n.mtime.secs, n.mtime.nanos as i32)
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            write!(stdout, "{} {:>5} {:>5} {:>12} {} ", mode_string(n), n.uid, n.gid, n.size, time)?;
        }
        // Names are printed as their bytes, as `ls` does, not mangled into UTF-8.
        stdout.write_all(path.as_os_str().as_bytes())?;
        if let (true, Some(target)) = (args.long, &n.target) {
            stdout.write_all(b" -> ")?;
            stdout.write_all(target)?;
        }
        stdout.write_all(b"\n")
    };
    inspect::ls(&repo, &snap, path, &mut |p, n| {
        write(p, n).map_err(|e| cairn_core::Error::Io { path: "<stdout>".into(), cause: e })
    })?;
    stdout.flush()?;
    Ok(0)
}

fn entry_json(path: &Path, n: &Node) -> serde_json::Value {
    serde_json::json!({
        "path": path.to_string_lossy(),
        "type": super::kind_name(n.kind),
        "mode": n.mode,
        "uid": n.uid,
        "gid": n.gid,
        "size": n.size,
        "mtime": jiff::Timestamp::new(n.mtime.secs, n.mtime.nanos as i32).map(|t| t.to_string()).unwrap_or_default(),
        "target": n.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
        "xattrs": n.xattrs.iter().map(|x| String::from_utf8_lossy(&x.name).into_owned()).collect::<Vec<_>>(),
        "flags": n.flags,
    })
}

/// `drwxr-xr-x`-style mode, as `ls -l` writes it: `s`/`S` for setuid and setgid, `t`/`T` for
/// the sticky bit (lower case when the execute bit under it is set too), and a trailing `+`
/// when the entry has extended attributes (ACLs among them).
pub fn mode_string(n: &Node) -> String {
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    // (shift, special bit over its execute bit, letter for it)
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (n.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        s.push(match (n.mode & special != 0, exec) {
            (true, true) => letter,
            (true, false) => letter.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    if !n.xattrs.is_empty() {
        s.push('+');
    }
    s
}
