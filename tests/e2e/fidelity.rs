//! Metadata fidelity (issue 14, item 1): extended attributes in every namespace, POSIX ACLs
//! (access and default) and the inode flags append-only, immutable and no-dump come back
//! exactly; `--no-xattrs`, `--no-acls` and `--exclude-nodump` leave out what they name; what a
//! target cannot take is named with exit 3, never dropped silently. (Sparse files: the edge
//! tree of `backup_restore` holds one, compared with a 64 KiB allocation slack.)
//!
//! The suite runs as root, as CI does: `trusted.*` attributes and the immutable and
//! append-only flags need it. ACLs are written as the kernel stores them (the binary value of
//! `system.posix_acl_*`), so no `setfacl` is needed.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use cairn_tests::system::{NOBODY, as_user, chown_tree};
use cairn_tests::{Output, TestRepo, args, data};
use rustix::fs::IFlags;

use crate::{repo, restored, spec};

const IMMUTABLE: u32 = 0x10;
const APPEND: u32 = 0x20;
const NODUMP: u32 = 0x40;

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting {name} on {}: {e}", path.display()));
}

/// Every extended attribute of `path` (not following a symlink), sorted.
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 64 << 10];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: Vec<(String, Vec<u8>)> = names[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let name = String::from_utf8(name.to_vec()).unwrap();
            let mut value = vec![0u8; 64 << 10];
            let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
            value.truncate(len);
            (name, value)
        })
        .collect();
    out.sort();
    out
}

fn names(path: &Path) -> Vec<String> {
    xattrs(path).into_iter().map(|(n, _)| n).collect()
}

/// A POSIX ACL as the kernel stores it: version 2, then (tag, permissions, id) entries in tag
/// order. `named` are extra (tag, id, permissions): 2 a user, 8 a group.
fn acl(owner: u16, group: u16, other: u16, named: &[(u16, u32, u16)]) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let mut entries: Vec<(u16, u16, u32)> =
        vec![(1, owner, UNDEFINED), (4, group, UNDEFINED), (0x20, other, UNDEFINED)];
    entries.extend(named.iter().map(|&(tag, id, perm)| (tag, perm, id)));
    if !named.is_empty() {
        entries.push((0x10, 7, UNDEFINED)); // the mask
    }
    entries.sort_by_key(|&(tag, _, id)| (tag, id));
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

fn open_nofollow(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The append-only, immutable and no-dump flags of `path`.
fn flags(path: &Path) -> u32 {
    rustix::fs::ioctl_getflags(open_nofollow(path).as_fd()).unwrap().bits() & (IMMUTABLE | APPEND | NODUMP)
}

fn chattr(path: &Path, add: u32, remove: u32) {
    let f = open_nofollow(path);
    let now = rustix::fs::ioctl_getflags(f.as_fd()).unwrap();
    let want = (now | IFlags::from_bits_retain(add)) - IFlags::from_bits_retain(remove);
    rustix::fs::ioctl_setflags(f.as_fd(), want).unwrap_or_else(|e| panic!("chattr {}: {e}", path.display()));
}

/// Clears immutable and append-only flags below the roots when dropped (even on a panic), so
/// the scratch directory can be removed.
struct Unflag(Vec<PathBuf>);

impl Drop for Unflag {
    fn drop(&mut self) {
        for root in &self.0 {
            let Ok(list) = cairn_tests::compare::list_tree(root) else { continue };
            for rel in list.keys() {
                let p = root.join(rel);
                if let Ok(f) = std::fs::File::open(&p)
                    && let Ok(now) = rustix::fs::ioctl_getflags(f.as_fd())
                {
                    let _ = rustix::fs::ioctl_setflags(f.as_fd(), now - IFlags::from_bits_retain(IMMUTABLE | APPEND));
                }
            }
        }
    }
}

/// A tree with attributes of every kind:
/// - `doc.txt`: two user attributes (one of 2 KiB), a trusted one, an access ACL naming a user
///   and a group, append-only;
/// - `shared/`: a default ACL and a user attribute, immutable; `shared/inside` plain;
/// - `scratch.tmp`: no-dump; `cache/`: no-dump, holding `cache/blob`;
/// - `link`: a symlink; `plain`: nothing at all.
fn rich_tree(root: &Path) {
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::create_dir_all(root.join("cache")).unwrap();
    let doc = root.join("doc.txt");
    data::write(&doc, b"the document\n");
    set_xattr(&doc, "user.origin", b"scanner-7");
    set_xattr(&doc, "user.thumbnail", &data::random_bytes(3, 2048));
    set_xattr(&doc, "trusted.review", b"approved");
    set_xattr(&doc, "system.posix_acl_access", &acl(6, 4, 4, &[(2, 1000, 6), (8, 100, 4)]));
    data::write(&root.join("shared/inside"), b"inside\n");
    set_xattr(&root.join("shared"), "system.posix_acl_default", &acl(7, 5, 5, &[(8, 100, 7)]));
    set_xattr(&root.join("shared"), "user.team", b"ops");
    data::write(&root.join("scratch.tmp"), b"not worth keeping\n");
    data::write(&root.join("cache/blob"), b"cached\n");
    data::write(&root.join("plain"), b"plain\n");
    std::os::unix::fs::symlink("doc.txt", root.join("link")).unwrap();
    chattr(&root.join("scratch.tmp"), NODUMP, 0);
    chattr(&root.join("cache"), NODUMP, 0);
    chattr(&doc, APPEND, 0);
    chattr(&root.join("shared"), IMMUTABLE, 0);
}

const ENTRIES: [&str; 8] =
    ["doc.txt", "shared", "shared/inside", "scratch.tmp", "cache", "cache/blob", "plain", "link"];

#[test]
fn attributes_acls_and_inode_flags_come_back_exactly() {
    let repo = repo();
    let src = repo.dir("src");
    let target = repo.scratch().join("restore");
    let _unflag = Unflag(vec![src.clone(), target.clone()]);
    rich_tree(&src);
    repo.backup([&src]);
    repo.run(args!["restore", "latest", "--target", &target, "--verify"]).success();
    let back = restored(&target, &src);
    for rel in ENTRIES {
        let (a, b) = (src.join(rel), back.join(rel));
        assert_eq!(xattrs(&b), xattrs(&a), "extended attributes of {rel}");
        if rel != "link" {
            assert_eq!(flags(&b), flags(&a), "inode flags of {rel}");
        }
    }
    assert_eq!(flags(&back.join("doc.txt")), APPEND);
    assert_eq!(flags(&back.join("shared")), IMMUTABLE);
    assert_eq!(names(&back.join("doc.txt")).len(), 4);
    // The ACL is the one in force: the group bits of the mode are its mask.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(back.join("doc.txt")).unwrap().mode() & 0o070, 0o070);
    // Immutable really is: the restored directory takes no new entry.
    assert!(std::fs::write(back.join("shared/new"), b"x").is_err());

    let listed = repo.run(args!["ls", "latest", &src, "--long"]).success().stdout_text();
    let line = |name: &str| listed.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("{name}:\n{listed}"));
    assert!(line("doc.txt").starts_with("-rw-rwxr--+ "), "{listed}");
    assert!(line("/plain").starts_with("-rw-r--r-- "), "{listed}");
    assert!(listed.contains("/link -> doc.txt"), "{listed}");
}

#[test]
fn no_xattrs_no_acls_and_exclude_nodump_leave_out_what_they_name() {
    let repo = repo();
    let src = repo.dir("src");
    // The restores below land in the scratch directory too, append-only flags and all.
    let _unflag = Unflag(vec![repo.scratch().to_path_buf()]);
    rich_tree(&src);
    let doc = src.join("doc.txt");
    let restore = |snapshot: &str, name: &str, extra: &[&str]| {
        let target = repo.scratch().join(name);
        let mut a = args!["restore", spec(snapshot, &doc), "--target", &target];
        a.extend(extra.iter().map(std::ffi::OsString::from));
        repo.run(a).success();
        target.join("doc.txt")
    };
    let full = repo.backup([&src])["snapshot"].as_str().unwrap().to_string();
    let no_xattrs = repo.backup(args!["--no-xattrs", &src])["snapshot"].as_str().unwrap().to_string();
    let no_acls = repo.backup(args!["--no-acls", &src])["snapshot"].as_str().unwrap().to_string();
    let acl_only = vec!["system.posix_acl_access".to_string()];
    assert_eq!(names(&restore(&no_xattrs, "nx", &[])), acl_only, "--no-xattrs keeps ACLs");
    assert_eq!(
        names(&restore(&no_acls, "na", &[])),
        ["trusted.review", "user.origin", "user.thumbnail"],
        "--no-acls keeps the other attributes"
    );
    assert_eq!(names(&restore(&full, "rnx", &["--no-xattrs"])), acl_only, "restore --no-xattrs");
    assert!(!names(&restore(&full, "rna", &["--no-acls"])).contains(&acl_only[0]), "restore --no-acls");

    // No-dump entries are in a plain backup, and left out with --exclude-nodump.
    let ls = |snapshot: &str| repo.run(args!["ls", snapshot, &src]).success().stdout_text();
    assert!(ls(&full).contains("scratch.tmp") && ls(&full).contains("cache/blob"));
    let nodump = repo.backup(args!["--exclude-nodump", &src])["snapshot"].as_str().unwrap().to_string();
    let listed = ls(&nodump);
    assert!(!listed.contains("scratch.tmp") && !listed.contains("/cache"), "{listed}");
    assert!(listed.contains("doc.txt") && listed.contains("shared/inside"), "{listed}");
}

#[test]
fn a_changed_attribute_is_seen_by_the_next_backup() {
    // Attributes change only the ctime: an unchanged file's attributes come from the parent
    // snapshot, a changed one's are read again.
    let repo = repo();
    let src = repo.dir("src");
    let f = src.join("f");
    data::write(&f, b"same content\n");
    set_xattr(&f, "user.state", b"draft");
    data::settle();
    repo.backup([&src]);
    let second = repo.backup([&src]);
    assert_eq!(second["summary"]["files_unmodified"], 1);
    set_xattr(&f, "user.state", b"final");
    repo.backup([&src]);
    let target = repo.scratch().join("t");
    repo.run(args!["restore", spec("latest", &f), "--target", &target]).success();
    assert_eq!(xattrs(&target.join("f")), vec![("user.state".to_string(), b"final".to_vec())]);
}

/// The file system under the scratch directory refuses a value this large (ext4 keeps an
/// inode's attributes in one block unless it has the `ea_inode` feature); a tmpfs takes it.
const LARGE_VALUE: usize = 16 << 10;

#[test]
fn attributes_a_target_cannot_take_are_named_with_exit_3() {
    let repo = repo();
    let shm = tempfile::Builder::new().prefix("cairn-fidelity-").tempdir_in("/dev/shm").unwrap();
    let src = shm.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let big = src.join("big-attr");
    data::write(&big, b"content\n");
    set_xattr(&big, "user.large", &vec![b'x'; LARGE_VALUE]);
    set_xattr(&big, "user.small", b"fits");
    data::write(&src.join("plain"), b"plain\n");
    let probe = repo.scratch().join("probe");
    data::write(&probe, b"");
    assert!(
        rustix::fs::lsetxattr(&probe, "user.large", &vec![b'x'; LARGE_VALUE], rustix::fs::XattrFlags::empty()).is_err(),
        "this test needs a scratch file system that refuses a {LARGE_VALUE}-byte attribute (ext4 without ea_inode)"
    );
    repo.backup([&src]);
    let target = repo.scratch().join("t");
    let out = repo.run(args!["restore", "latest", "--target", &target]);
    out.code(3).stderr_has("big-attr").stderr_has("user.large");
    let back = restored(&target, &src);
    assert_eq!(std::fs::read(back.join("big-attr")).unwrap(), b"content\n", "the content is restored");
    assert_eq!(names(&back.join("big-attr")), ["user.small"], "what fits is restored");
    assert_eq!(std::fs::read(back.join("plain")).unwrap(), b"plain\n");
}

#[test]
fn without_root_privileged_attributes_and_flags_are_noted_not_silently_dropped() {
    let repo: TestRepo = repo();
    let src = repo.dir("src");
    let f = src.join("f");
    data::write(&f, b"x\n");
    set_xattr(&f, "trusted.review", b"approved");
    set_xattr(&f, "user.origin", b"scanner");
    repo.backup([&src]);
    // nobody restores: the repository and a target are theirs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(repo.scratch(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_tree(repo.path(), NOBODY, NOBODY);
    let target = repo.dir("t");
    chown_tree(&target, NOBODY, NOBODY);
    let out = Output::of(as_user(&repo.command(args!["restore", "latest", "--target", &target]), NOBODY, NOBODY));
    out.success().stderr_has("1 trusted.* and security.* attributes were not restored");
    assert_eq!(names(&restored(&target, &src).join("f")), ["user.origin"]);
}

/// `cairn dump` of a directory writes extended attributes and ACLs as PAX records, so GNU tar
/// with `--xattrs` puts them back: the dumped tree matches the source's attributes.
#[test]
fn dump_carries_extended_attributes_to_tar() {
    let repo = repo();
    let src = repo.dir("src");
    let doc = src.join("doc.txt");
    data::write(&doc, b"the document\n");
    set_xattr(&doc, "user.origin", b"scanner-7");
    set_xattr(&doc, "user.thumbnail", &data::random_bytes(3, 2048));
    set_xattr(&doc, "system.posix_acl_access", &acl(6, 4, 4, &[(2, 1000, 6)]));
    std::fs::create_dir(src.join("shared")).unwrap();
    set_xattr(&src.join("shared"), "user.team", b"ops");
    data::write(&src.join("plain"), b"plain\n");
    repo.backup([&src]);
    let tar = repo.dump("latest", &src.display().to_string());
    let out = repo.dir("untarred");
    let mut untar = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--acls", "-xf", "-", "-C"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("GNU tar");
    std::io::Write::write_all(untar.stdin.as_mut().unwrap(), &tar).unwrap();
    drop(untar.stdin.take());
    assert!(untar.wait().unwrap().success(), "tar -x failed");
    for rel in ["doc.txt", "shared", "plain"] {
        let back = out.join(src.file_name().unwrap()).join(rel);
        let back = if back.exists() { back } else { out.join(rel) };
        assert_eq!(xattrs(&back), xattrs(&src.join(rel)), "extended attributes of {rel} through tar");
    }
}
