//! Progress reporting: the engine calls a [`Progress`] observer; the CLI draws it, embedders
//! do what they like. The engine itself never prints.

/// Receives progress from long operations. Methods may be called from several threads.
pub trait Progress: Send + Sync {
    /// A file or stream was fully processed (`bytes` of content).
    fn file_done(&self, _path: &std::path::Path, _bytes: u64) {}
    /// Bytes were read and chunked.
    fn bytes_read(&self, _bytes: u64) {}
    /// An entry could not be read and was left out (backup goes on).
    fn warning(&self, _message: &str) {}
    /// Bytes were restored.
    fn bytes_restored(&self, _bytes: u64) {}
    /// The whole of the work, once known: `bytes` of content in `files` files (a restore
    /// knows it once planned).
    fn total(&self, _bytes: u64, _files: u64) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
