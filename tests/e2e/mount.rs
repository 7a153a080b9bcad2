//! `cairn mount` (issue 17, item 2): the snapshots as a read-only FUSE file system on the
//! kernel's `/dev/fuse`, compared with the source byte for byte and in metadata; random
//! access; the made-up directories; Ctrl-C unmounts.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cairn_tests::compare::{CompareOptions, compare_trees_with};
use cairn_tests::fixture::{build_edge_tree, build_small_tree};
use cairn_tests::{TestRepo, args};

use crate::repo;

/// A running `cairn mount`, unmounted (lazily, by `umount -l`) and killed if a test fails
/// before it ends it.
struct Mounted {
    child: Option<Child>,
    at: PathBuf,
}

impl Mounted {
    fn start(repo: &TestRepo) -> Mounted {
        let at = repo.dir("mnt");
        let child = repo.command(args!["mount", &at]).spawn().expect("starting cairn mount");
        let mounted = Mounted { child: Some(child), at };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !mounted.at.join("snapshots").exists() {
            assert!(Instant::now() < deadline, "the mount did not appear within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        mounted
    }

    /// Ctrl-C: the mount goes away and cairn exits 0.
    fn interrupt(mut self) {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("sending SIGINT");
        let status = child.wait().expect("waiting for cairn mount");
        assert!(status.success(), "cairn mount exits 0 on Ctrl-C: {status:?}");
        assert!(!self.at.join("snapshots").exists(), "unmounted");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the source directory `src` is in the mounted snapshot `name`.
fn in_snapshot(mounted: &Mounted, name: &str, src: &Path) -> PathBuf {
    mounted.at.join("snapshots").join(name).join(src.strip_prefix("/").unwrap())
}

#[test]
fn the_mounted_snapshot_is_the_source_and_ctrl_c_unmounts() {
    let repo = repo();
    let tree = build_edge_tree(&repo.scratch().join("src"));
    repo.backup(args![&tree.root]);
    let mounted = Mounted::start(&repo);
    let copy = in_snapshot(&mounted, "latest", &tree.root);
    // Byte for byte, modes, owners, times, symlinks and hard-link groups. A mount allocates no
    // disk, so its sizes in blocks are apparent ones: allocation is not compared.
    let options = CompareOptions { root_metadata: true, sparse_slack: u64::MAX / 2 };
    let differences = compare_trees_with(&tree.root, &copy, &options);
    assert!(differences.is_empty(), "the mount differs from the source:\n{}", differences.join("\n"));
    // Random access: reads at offsets anywhere give the source's bytes.
    let source = std::fs::File::open(tree.root.join("random.bin")).unwrap();
    let mounted_file = std::fs::File::open(copy.join("random.bin")).unwrap();
    for offset in [0u64, 1, 1_048_575, 3_333_333, (5 << 20) - 100] {
        let (mut a, mut b) = (vec![0u8; 70_000], vec![0u8; 70_000]);
        let na = source.read_at(&mut a, offset).unwrap();
        let nb = mounted_file.read_at(&mut b, offset).unwrap();
        assert_eq!((na, &a[..na]), (nb, &b[..nb]), "at offset {offset}");
    }
    // Ctrl-C while a file is still open: the mount is detached at once and goes when the file
    // is closed.
    let still_open = std::fs::File::open(copy.join("small.txt")).unwrap();
    drop(mounted_file);
    let at = mounted.at.clone();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(still_open);
    });
    mounted.interrupt();
    closer.join().unwrap();
    assert!(!at.join("snapshots").exists());
}

#[test]
fn hosts_tags_and_times_lead_to_the_snapshots_with_their_xattrs() {
    let repo = repo();
    let src = repo.scratch().join("small");
    build_small_tree(&src, 0);
    let first = repo.backup(args!["--host", "db1", "--tag", "nightly", &src]);
    let second = repo.backup(args!["--host", "web1", &src]);
    let mounted = Mounted::start(&repo);
    let short = |report: &serde_json::Value| report["snapshot"].as_str().unwrap()[..8].to_string();
    let (first, second) = (short(&first), short(&second));
    let names = |dir: &str| -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(mounted.at.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(""), ["by-time", "hosts", "snapshots", "tags"]);
    assert_eq!(names("hosts"), ["db1", "web1"]);
    assert_eq!(names("hosts/db1"), [first.as_str()]);
    assert_eq!(names("tags/nightly"), [first.as_str()]);
    assert_eq!(names("by-time").len(), 2);
    assert_eq!(std::fs::read_link(mounted.at.join("snapshots/latest")).unwrap(), Path::new(&second));
    let via_tag = mounted.at.join("tags/nightly").join(&first).join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(via_tag.join("notes.txt")).unwrap(), std::fs::read(src.join("notes.txt")).unwrap());
    let note = rustix::fs::getxattr(via_tag.join("tagged.txt"), "user.cairn.note", &mut [0u8; 16][..]).unwrap();
    assert_eq!(note, 4, "user.cairn.note is there, 4 bytes long");
    let mut value = [0u8; 4];
    rustix::fs::getxattr(via_tag.join("tagged.txt"), "user.cairn.note", &mut value[..]).unwrap();
    assert_eq!(&value, b"kept");
    // Read-only: nothing can be created.
    assert!(std::fs::write(via_tag.join("new.txt"), b"x").is_err());
    mounted.interrupt();
}
