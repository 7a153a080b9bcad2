//! Reading a snapshot's trees: the one walker every operation that goes through trees uses
//! (restore planning, check, ls, find, diff, stats, dump, prune's marking, copy, rewrite and
//! repair), and looking a path up.
//!
//! Trees form a Merkle DAG (FORMAT.md §Trees): a directory's tree names its subdirectories'
//! trees by id, so an unchanged directory is one blob shared by every snapshot that holds it.
//! [`TreeWalker::walk`] visits a tree depth first and hands each directory's outcome to its
//! parent; a [`TreeVisitor`] decides, before a tree is read, whether it needs reading at all
//! (subtree de-duplication: prune marks a shared subtree once, check walks an intact one once,
//! copy maps a copied one straight to its copy). The walk keeps its own stack, so a deep
//! directory hierarchy cannot exhaust the thread's stack, and holds one tree per level.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Time, Tree};
use crate::foundation::error::{Error, Result};
use crate::foundation::id::BlobId;
use crate::repository::Repository;
use crate::repository::index::Index;

/// What a walk does at each directory it reaches. Every method but [`TreeVisitor::after`] has a
/// default that walks everything and stops at the first unreadable tree.
pub trait TreeVisitor {
    /// What a walked directory gives back to the entry that names it (`()` when nothing: a
    /// rewrite gives the new tree's id, check whether anything below is damaged).
    type Output;

    /// Before the tree `id` at `path` is read: `Some(output)` to not read it (walked already,
    /// or not wanted), `None` to walk it.
    ///
    /// # Errors
    /// Whatever the visitor fails with; the walk ends.
    fn before(&mut self, id: &BlobId, path: &Path) -> Result<Option<Self::Output>> {
        let _ = (id, path);
        Ok(None)
    }

    /// One entry of a tree being walked, in name order, before anything below it: returns
    /// whether to walk into it (asked of every entry, used for directories with a tree).
    ///
    /// # Errors
    /// Whatever the visitor fails with; the walk ends.
    fn entry(&mut self, path: &Path, node: &Node) -> Result<bool> {
        let _ = (path, node);
        Ok(true)
    }

    /// After every entry of the tree `id` at `path`: `below[i]` is the output of the walk of
    /// `tree.nodes[i]`'s tree, when it was walked (or skipped with an output by
    /// [`TreeVisitor::before`]).
    ///
    /// # Errors
    /// Whatever the visitor fails with; the walk ends.
    fn after(&mut self, id: &BlobId, path: &Path, tree: Tree, below: Vec<Option<Self::Output>>)
    -> Result<Self::Output>;

    /// The tree `id` at `path` could not be read: the output to use in its place, or the
    /// error that ends the walk (the default).
    ///
    /// # Errors
    /// `error`, or whatever the visitor makes of it.
    fn unreadable(&mut self, id: &BlobId, path: &Path, error: Error) -> Result<Self::Output> {
        let _ = (id, path);
        Err(error)
    }
}

/// Walks trees of one repository, through one index.
pub struct TreeWalker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Trees read ahead (restore fetches a snapshot's trees a level at a time first).
    fetched: Option<&'a HashMap<BlobId, Tree>>,
}

/// A directory being walked.
struct Frame<O> {
    id: BlobId,
    path: PathBuf,
    tree: Tree,
    /// The next entry to visit.
    next: usize,
    below: Vec<Option<O>>,
}

impl<O> Frame<O> {
    fn new(id: BlobId, path: PathBuf, tree: Tree) -> Self {
        let below = (0..tree.nodes.len()).map(|_| None).collect();
        Frame { id, path, tree, next: 0, below }
    }
}

impl<'a> TreeWalker<'a> {
    /// A walker reading trees of `repo` through `index`.
    #[must_use]
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        TreeWalker { repo, index, fetched: None }
    }

    /// The same, taking trees from `fetched` where it holds them.
    #[must_use]
    pub fn with_fetched(mut self, fetched: &'a HashMap<BlobId, Tree>) -> Self {
        self.fetched = Some(fetched);
        self
    }

    /// Reads one tree.
    ///
    /// # Errors
    /// As [`Repository::load_tree`].
    pub fn load(&self, id: &BlobId) -> Result<Tree> {
        match self.fetched.and_then(|f| f.get(id)) {
            Some(t) => Ok(t.clone()),
            None => self.repo.load_tree(self.index, id),
        }
    }

    /// Walks the tree `root`, whose entries' paths start with `base`, depth first; returns the
    /// visitor's output for it.
    ///
    /// # Errors
    /// Whatever the visitor returns, an unreadable tree it does not take in stride.
    pub fn walk<V: TreeVisitor>(&self, root: &BlobId, base: &Path, visitor: &mut V) -> Result<V::Output> {
        if let Some(out) = visitor.before(root, base)? {
            return Ok(out);
        }
        let tree = match self.load(root) {
            Ok(t) => t,
            Err(e) => return visitor.unreadable(root, base, e),
        };
        let mut stack = vec![Frame::new(*root, base.to_path_buf(), tree)];
        loop {
            let Some(top) = stack.last_mut() else {
                return Err(Error::Internal("tree walk lost its root".into()));
            };
            if let Some(node) = top.tree.nodes.get(top.next) {
                let at = top.next;
                top.next += 1;
                let path = top.path.join(node.os_name());
                let walk_into = visitor.entry(&path, node)?;
                let sub = match (node.kind, node.subtree) {
                    (NodeKind::Dir, Some(sub)) if walk_into => sub,
                    _ => continue,
                };
                if let Some(out) = visitor.before(&sub, &path)? {
                    top.below[at] = Some(out);
                    continue;
                }
                match self.load(&sub) {
                    Ok(tree) => stack.push(Frame::new(sub, path, tree)),
                    Err(e) => top.below[at] = Some(visitor.unreadable(&sub, &path, e)?),
                }
                continue;
            }
            let Some(done) = stack.pop() else { continue };
            let out = visitor.after(&done.id, &done.path, done.tree, done.below)?;
            match stack.last_mut() {
                // The parent's entry just visited is the one this directory hangs from.
                Some(parent) => parent.below[parent.next - 1] = Some(out),
                None => return Ok(out),
            }
        }
    }

    /// Calls `visit` for every entry below the tree `root`, depth first in name order, with
    /// its path (which starts with `base`); directories come before their contents.
    ///
    /// # Errors
    /// Unreadable trees, and whatever `visit` returns.
    pub fn for_each(
        &self,
        root: &BlobId,
        base: &Path,
        visit: &mut dyn FnMut(&Path, &Node) -> Result<()>,
    ) -> Result<()> {
        struct Each<'v>(&'v mut dyn FnMut(&Path, &Node) -> Result<()>);
        impl TreeVisitor for Each<'_> {
            type Output = ();
            fn entry(&mut self, path: &Path, node: &Node) -> Result<bool> {
                (self.0)(path, node)?;
                Ok(true)
            }
            fn after(&mut self, _: &BlobId, _: &Path, _: Tree, _: Vec<Option<()>>) -> Result<()> {
                Ok(())
            }
        }
        self.walk(root, base, &mut Each(visit))
    }

    /// The node at `path` (absolute, as in the snapshot) of the snapshot whose root tree is
    /// `root`; `/` is the root itself ([`root_node`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] when a component is missing; unreadable trees.
    pub fn find(&self, snapshot: &Snapshot, path: &Path) -> Result<Node> {
        let missing = || Error::NotFound(format!("path {} in the snapshot", path.display()));
        let mut node = root_node(snapshot);
        for comp in path.components() {
            let Component::Normal(name) = comp else { continue };
            let subtree = match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(t)) => t,
                _ => return Err(missing()),
            };
            let tree = self.load(&subtree)?;
            node = tree.find(std::os::unix::ffi::OsStrExt::as_bytes(name)).cloned().ok_or_else(missing)?;
        }
        Ok(node)
    }
}

/// A directory node standing for a snapshot's root tree.
#[must_use]
pub fn root_node(snapshot: &Snapshot) -> Node {
    Node {
        name: b"/".to_vec(),
        kind: NodeKind::Dir,
        mode: 0o40755,
        uid: 0,
        gid: 0,
        mtime: Time::default(),
        atime: Time::default(),
        ctime: Time::default(),
        inode: 0,
        dev: 0,
        nlink: 1,
        size: 0,
        rdev: 0,
        content: vec![],
        hash: None,
        subtree: Some(snapshot.tree),
        target: None,
        link: None,
        xattrs: vec![],
        flags: 0,
        subdirs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::format::blob::BlobKind;
    use crate::repository::writer::WriteOptions;

    fn repo(name: &str) -> Repository {
        crate::repository::testing::memory_repo(name)
    }

    fn file(name: &str) -> Node {
        Node { name: name.as_bytes().to_vec(), kind: NodeKind::File, subtree: None, ..dir_node("x", None) }
    }

    fn dir_node(name: &str, subtree: Option<BlobId>) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::Dir,
            mode: 0o40755,
            uid: 0,
            gid: 0,
            mtime: Time::default(),
            atime: Time::default(),
            ctime: Time::default(),
            inode: 0,
            dev: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            content: vec![],
            hash: None,
            subtree,
            target: None,
            link: None,
            xattrs: vec![],
            flags: 0,
            subdirs: Vec::new(),
        }
    }

    /// `/a/{f, shared/{g}}`, `/b/{shared/{g}}` (one shared subtree), `/c` empty and `/d` a
    /// directory whose tree is missing; returns the root tree's id and the shared one's.
    fn sample(repo: &Repository) -> (BlobId, BlobId) {
        let index = repo.load_index().unwrap();
        let (ids, _, _) = repo
            .write_blobs(&index, WriteOptions::default(), |w| {
                let tree = |nodes: Vec<Node>| w.add(BlobKind::Tree, &Tree::new(nodes).encode());
                let shared = tree(vec![file("g")])?;
                let a = tree(vec![file("f"), dir_node("shared", Some(shared))])?;
                let b = tree(vec![dir_node("shared", Some(shared))])?;
                let c = tree(vec![])?;
                let gone = repo.master().blob_id(b"not a stored tree");
                let root = tree(vec![
                    dir_node("a", Some(a)),
                    dir_node("b", Some(b)),
                    dir_node("c", Some(c)),
                    dir_node("d", Some(gone)),
                ])?;
                Ok((root, shared))
            })
            .unwrap();
        ids
    }

    /// Records the order of calls; skips trees seen before when `dedup`.
    struct Recorder {
        dedup: bool,
        seen: HashSet<BlobId>,
        calls: Vec<String>,
    }

    impl TreeVisitor for Recorder {
        type Output = usize;
        fn before(&mut self, id: &BlobId, path: &Path) -> Result<Option<usize>> {
            if self.dedup && !self.seen.insert(*id) {
                self.calls.push(format!("skip {}", path.display()));
                return Ok(Some(0));
            }
            Ok(None)
        }
        fn entry(&mut self, path: &Path, _: &Node) -> Result<bool> {
            self.calls.push(format!("entry {}", path.display()));
            Ok(true)
        }
        fn after(&mut self, _: &BlobId, path: &Path, tree: Tree, below: Vec<Option<usize>>) -> Result<usize> {
            assert_eq!(below.len(), tree.nodes.len());
            let files = tree.nodes.iter().filter(|n| n.kind == NodeKind::File).count();
            let total = files + below.iter().flatten().sum::<usize>();
            self.calls.push(format!("after {} = {total}", path.display()));
            Ok(total)
        }
        fn unreadable(&mut self, _: &BlobId, path: &Path, _: Error) -> Result<usize> {
            self.calls.push(format!("unreadable {}", path.display()));
            Ok(0)
        }
    }

    #[test]
    fn walks_depth_first_and_hands_outputs_up() {
        let repo = repo("trees-order");
        let (root, _) = sample(&repo);
        let index = repo.load_index().unwrap();
        let walker = TreeWalker::new(&repo, &index);
        let mut all = Recorder { dedup: false, seen: HashSet::new(), calls: vec![] };
        assert_eq!(walker.walk(&root, Path::new("/"), &mut all).unwrap(), 3, "f, g and g again");
        let expected = [
            "entry /a",
            "entry /a/f",
            "entry /a/shared",
            "entry /a/shared/g",
            "after /a/shared = 1",
            "after /a = 2",
            "entry /b",
            "entry /b/shared",
            "entry /b/shared/g",
            "after /b/shared = 1",
            "after /b = 1",
            "entry /c",
            "after /c = 0",
            "entry /d",
            "unreadable /d",
            "after / = 3",
        ];
        assert_eq!(all.calls, expected);
        // With de-duplication the shared subtree is read once.
        let mut once = Recorder { dedup: true, seen: HashSet::new(), calls: vec![] };
        assert_eq!(walker.walk(&root, Path::new("/"), &mut once).unwrap(), 2);
        assert!(once.calls.contains(&"skip /b/shared".to_string()), "{:?}", once.calls);
        assert!(!once.calls.contains(&"entry /b/shared/g".to_string()));
    }

    #[test]
    fn an_unreadable_tree_ends_the_walk_unless_the_visitor_takes_it() {
        let repo = repo("trees-unreadable");
        let (root, _) = sample(&repo);
        let index = repo.load_index().unwrap();
        let walker = TreeWalker::new(&repo, &index);
        let mut paths = Vec::new();
        let err = walker
            .for_each(&root, Path::new("/"), &mut |p, _| {
                paths.push(p.to_path_buf());
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("is in no index object"), "{err}");
        assert_eq!(paths.last().unwrap(), Path::new("/d"), "everything before the damage was visited");
    }

    #[test]
    fn a_deep_hierarchy_does_not_exhaust_the_stack() {
        let repo = repo("trees-deep");
        let index = repo.load_index().unwrap();
        let depth = 5_000;
        let (root, _, _) = repo
            .write_blobs(&index, WriteOptions::default(), |w| {
                let mut id = w.add(BlobKind::Tree, &Tree::new(vec![file("leaf")]).encode())?;
                for _ in 0..depth {
                    id = w.add(BlobKind::Tree, &Tree::new(vec![dir_node("d", Some(id))]).encode())?;
                }
                Ok(id)
            })
            .unwrap();
        let index = repo.load_index().unwrap();
        struct Depth(usize);
        impl TreeVisitor for Depth {
            type Output = usize;
            fn after(&mut self, _: &BlobId, _: &Path, _: Tree, below: Vec<Option<usize>>) -> Result<usize> {
                self.0 += 1;
                Ok(below.into_iter().flatten().max().map_or(0, |d| d + 1))
            }
        }
        let mut levels = Depth(0);
        // A thread with a small stack: a walk that recursed per level would overflow it.
        let deepest = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn_scoped_in(|| TreeWalker::new(&repo, &index).walk(&root, Path::new(""), &mut levels).unwrap());
        assert_eq!((deepest, levels.0), (depth, depth + 1));
    }

    trait SpawnIn {
        fn spawn_scoped_in<T: Send>(self, f: impl FnOnce() -> T + Send) -> T;
    }

    impl SpawnIn for std::thread::Builder {
        fn spawn_scoped_in<T: Send>(self, f: impl FnOnce() -> T + Send) -> T {
            std::thread::scope(|s| self.spawn_scoped(s, f).unwrap().join().unwrap())
        }
    }

    #[test]
    fn paths_are_found_and_missing_ones_named() {
        let repo = repo("trees-find");
        let (root, shared) = sample(&repo);
        let index = repo.load_index().unwrap();
        let snapshot = crate::repository::testing::snapshot_of(root);
        let walker = TreeWalker::new(&repo, &index);
        assert_eq!(walker.find(&snapshot, Path::new("/")).unwrap().subtree, Some(root));
        assert_eq!(walker.find(&snapshot, Path::new("/a/shared")).unwrap().subtree, Some(shared));
        assert_eq!(walker.find(&snapshot, Path::new("/b/shared/g")).unwrap().kind, NodeKind::File);
        let err = walker.find(&snapshot, Path::new("/a/nope")).unwrap_err();
        assert!(err.to_string().contains("/a/nope"), "{err}");
        assert!(walker.find(&snapshot, Path::new("/a/f/below-a-file")).is_err());
    }
}
