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
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &u64) -> bool {
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
}

/// Version of the tree encoding.
pub const TREE_VERSION: u32 = 1;

/// A directory's entries, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// [`TREE_VERSION`].
    pub version: u32,
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A tree of these nodes (sorted here).
    #[must_use]
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Tree { version: TREE_VERSION, nodes }
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
            ciborium::from_reader(data).map_err(|e| Error::corrupt(format!("tree {id}"), e.to_string()))?;
        if tree.version != TREE_VERSION {
            return Err(Error::UnsupportedVersion {
                object: format!("tree {id}"),
                found: tree.version,
                supported: TREE_VERSION,
            });
        }
        Ok(tree)
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
        )
            .prop_map(|(name, mode, secs, nanos, size, content, link)| Node {
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
            })
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(arb_node(), 0..10)) {
            let t = Tree::new(nodes);
            let id = BlobId::default();
            prop_assert_eq!(Tree::decode(&id, &t.encode()).unwrap(), t.clone());
            let enc = t.encode();
            if enc.len() > 2 {
                prop_assert!(Tree::decode(&id, &enc[..enc.len() - 1]).is_err());
            }
        }
    }

    #[test]
    fn version_is_checked() {
        let mut t = Tree::new(vec![]);
        t.version = 99;
        let err = Tree::decode(&BlobId::default(), &t.encode()).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}
