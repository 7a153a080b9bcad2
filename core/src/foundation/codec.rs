//! Byte codecs: reading the little-endian fields of the binary objects (FORMAT.md §Conventions)
//! without ever panicking on short or hostile input.
//!
//! Every decoder of a binary object (pack headers, index objects) reads through a [`Cursor`]:
//! each read either returns the bytes asked for or a short reason, never an index panic.

use crate::foundation::id::Digest;

/// Reads little-endian fields from a byte slice, front to back, without panicking.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }
    /// The next `n` bytes.
    ///
    /// # Errors
    /// `"truncated"` when fewer than `n` bytes are left (nothing is consumed then).
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or("truncated")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// The next byte.
    ///
    /// # Errors
    /// `"truncated"` at the end.
    pub fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    /// The next four bytes as a little-endian `u32`.
    ///
    /// # Errors
    /// `"truncated"` when fewer are left.
    pub fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// The next 32 bytes as a [`Digest`].
    ///
    /// # Errors
    /// `"truncated"` when fewer are left.
    pub fn digest(&mut self) -> Result<Digest, &'static str> {
        let mut d = [0u8; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(Digest(d))
    }
    /// Bytes not read yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}
