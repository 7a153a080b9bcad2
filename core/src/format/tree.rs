//! Directory trees: one tree blob per directory, listing its entries with their metadata
//! (FORMAT.md §Trees). Subdirectories point to their own tree blob by id, so trees form a
//! Merkle DAG and an unchanged directory costs nothing to store again.
//!
//! Encoding: CBOR (RFC 8949) of [`Tree`], with the field names below; unknown fields are ignored
//! on read so later versions can add metadata.

use serde::{Deserialize, Serialize};

use crate::foundation::error::{Error, Result};
use crate::foundation::id::{BlobId, Digest};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket (recorded, not restored).
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

/// A point in time as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Time {
    /// Whole seconds (negative before 1970).
    pub secs: i64,
    /// Nanoseconds, 0..1e9.
    pub nanos: u32,
}

impl From<jiff::Timestamp> for Time {
    fn from(t: jiff::Timestamp) -> Self {
        // Euclidean, so the nanoseconds stay in 0..1e9 before 1970 too (jiff's own are negative
        // there). Every jiff timestamp's seconds fit an i64.
        let ns = t.as_nanosecond();
        Time {
            secs: i64::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(i64::MIN),
            nanos: u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
        }
    }
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The name, as raw bytes (names need not be UTF-8).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission and type bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last modification.
    pub mtime: Time,
    /// Last access.
    pub atime: Time,
    /// Last status change (not restorable; used for change detection).
    pub ctime: Time,
    /// Inode number at backup time.
    pub inode: u64,
    /// Device at backup time.
    pub dev: u64,
    /// Link count at backup time.
    pub nlink: u64,
    /// Size in bytes (files).
    pub size: u64,
    /// Device number (devices).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Content blobs in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// BLAKE3 of the whole content (files), checked by `restore --verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Digest>,
    /// The tree blob (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// The link target (symlinks), raw bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub target: Option<Vec<u8>>,
    /// Files that were hard links of each other share this number within a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
    /// Extended attributes, sorted by name; POSIX ACLs are among them (tree version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Inode flags: immutable `0x10`, append-only `0x20`, no-dump `0x40` (tree version 2).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub flags: u32,
    /// For a directory: the entries of its own subdirectories, as its tree holds them but
    /// without theirs ([`Tree::subdir_hints`]). A second record of them one level up, so that
    /// when every copy of this directory's tree is lost `repair snapshots` still puts its
    /// subdirectories back, by name, with all they hold. Readers that do not know it ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subdirs: Vec<Node>,
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Xattr {
    /// The full name with its namespace, e.g. `user.origin` or `system.posix_acl_access`.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// The value, as the kernel gives it (for ACLs, its binary `posix_acl_xattr` form).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl Node {
    /// The name for display (lossy for non-UTF-8 names).
    #[must_use]
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The name as an OS string.
    #[must_use]
    pub fn os_name(&self) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(&self.name)
    }

    /// Whether the node holds metadata only tree version 2 records.
    #[must_use]
    pub fn is_extended(&self) -> bool {
        !self.xattrs.is_empty() || self.flags != 0
    }
}

/// Version of the tree encoding of a tree whose nodes carry no extended attributes and no
/// inode flags: readers of version 1 read it, and it deduplicates with trees they wrote.
pub const TREE_VERSION: u32 = 1;
/// Version of the tree encoding of a tree with a node that carries extended attributes or
/// inode flags: a reader that would drop them refuses it instead.
pub const TREE_VERSION_EXTENDED: u32 = 2;

/// A directory's entries, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// [`TREE_VERSION`].
    pub version: u32,
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree of these nodes (sorted here), of the lowest version that holds them.
    #[must_use]
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let version = if nodes.iter().any(Node::is_extended) { TREE_VERSION_EXTENDED } else { TREE_VERSION };
        Tree { version, nodes }
    }

    /// Encodes as CBOR.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Decodes CBOR.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the tree blob.
    pub fn decode(id: &BlobId, data: &[u8]) -> Result<Self> {
        let tree: Tree =
            cbor4ii::serde::from_slice(data).map_err(|e| Error::corrupt(format!("tree {id}"), e.to_string()))?;
        if tree.version != TREE_VERSION && tree.version != TREE_VERSION_EXTENDED {
            return Err(Error::UnsupportedVersion {
                object: format!("tree {id}"),
                found: tree.version,
                supported: TREE_VERSION_EXTENDED,
            });
        }
        if tree.version == TREE_VERSION && tree.nodes.iter().any(Node::is_extended) {
            return Err(Error::corrupt(format!("tree {id}"), "a version 1 tree carries version 2 metadata"));
        }
        Ok(tree)
    }

    /// What the entry naming this tree records of it ([`Node::subdirs`]): its subdirectory
    /// entries that have a tree, each without its own `subdirs`.
    #[must_use]
    pub fn subdir_hints(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Dir && n.subtree.is_some())
            .map(|n| Node { subdirs: Vec::new(), ..n.clone() })
            .collect()
    }

    /// The entry with this name.
    #[must_use]
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>(), 1..20),
            any::<u32>(),
            any::<i64>(),
            0u32..1_000_000_000,
            any::<u64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            any::<bool>(),
            proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..12), proptest::collection::vec(any::<u8>(), 0..40)),
                0..3,
            ),
            prop_oneof![Just(0u32), Just(0x10), Just(0x60)],
        )
            .prop_map(|(name, mode, secs, nanos, size, content, link, xattrs, flags)| Node {
                name,
                kind: if link { NodeKind::Symlink } else { NodeKind::File },
                mode,
                uid: mode / 3,
                gid: mode / 5,
                mtime: Time { secs, nanos },
                atime: Time { secs: secs / 2, nanos },
                ctime: Time::default(),
                inode: size / 7,
                dev: 3,
                nlink: 1,
                size,
                rdev: 0,
                content: content.into_iter().map(|c| BlobId(Digest(c))).collect(),
                hash: link.then(|| Digest::of(b"h")),
                subtree: None,
                target: link.then(|| vec![0xff, b'/', 0]),
                link: None,
                xattrs: xattrs.into_iter().map(|(name, value)| Xattr { name, value }).collect(),
                flags,
                subdirs: Vec::new(),
            })
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let t = Tree::new(nodes);
            let id = BlobId::default();
            prop_assert_eq!(Tree::decode(&id, &t.encode()).unwrap(), t.clone());
            let extended = t.nodes.iter().any(|n| !n.xattrs.is_empty() || n.flags != 0);
            prop_assert_eq!(t.version, if extended { TREE_VERSION_EXTENDED } else { TREE_VERSION });
            let enc = t.encode();
            if enc.len() > 2 {
                prop_assert!(Tree::decode(&id, &enc[..enc.len() - 1]).is_err());
            }
        }
    }

    #[test]
    fn only_extended_metadata_makes_a_tree_version_2() {
        // A version 1 tree never names the new keys, so its bytes (and blob id) stay those
        // version 1 wrote; the byte-exact vectors in tests/format_vectors check that too.
        let plain = Node {
            name: b"f".to_vec(),
            kind: NodeKind::File,
            mode: 0o100_644,
            uid: 0,
            gid: 0,
            mtime: Time::default(),
            atime: Time::default(),
            ctime: Time::default(),
            inode: 1,
            dev: 1,
            nlink: 1,
            size: 0,
            rdev: 0,
            content: vec![],
            hash: None,
            subtree: None,
            target: None,
            link: None,
            xattrs: vec![],
            flags: 0,
            subdirs: Vec::new(),
        };
        let enc = Tree::new(vec![plain.clone()]).encode();
        assert!(!enc.windows(6).any(|w| w == b"xattrs") && !enc.windows(5).any(|w| w == b"flags"));
        assert_eq!(Tree::decode(&BlobId::default(), &enc).unwrap().version, TREE_VERSION);
        let with_flags = Node { flags: 0x10, ..plain.clone() };
        assert_eq!(Tree::new(vec![with_flags]).version, TREE_VERSION_EXTENDED);
        let with_xattr = Node { xattrs: vec![Xattr { name: b"user.a".to_vec(), value: vec![] }], ..plain };
        assert_eq!(Tree::new(vec![with_xattr]).version, TREE_VERSION_EXTENDED);
    }

    #[test]
    fn version_is_checked() {
        let mut t = Tree::new(vec![]);
        t.version = 99;
        let err = Tree::decode(&BlobId::default(), &t.encode()).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}
