//! Reading a pack's seal and header with small ranged requests, without its data.

use super::Repository;
use crate::format::pack::{self, PackEntry, PackSeal};
use crate::foundation::crypto::SALT_LEN;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::PackId;
use crate::repository::store::{ObjectKey, ObjectKind};

impl Repository {
    /// Reads a pack's seal and header from the store knowing only its size: the trailing
    /// length, then the salt and the header (small ranged requests, no data).
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] naming the pack.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<(PackSeal, Vec<PackEntry>)> {
        let key = ObjectKey::new(ObjectKind::Pack, id.0);
        if size < (SALT_LEN + 4) as u64 {
            return Err(Error::corrupt(key, "too short"));
        }
        let tail = self.store.get_range(&key, size - 4..size).map_err(Error::store(key))?;
        let len: [u8; 4] = tail.as_ref().try_into().map_err(|_| Error::corrupt(key, "too short"))?;
        let trailer = pack::split_header_len(len);
        self.read_pack_header_tail(id, size, pack::entries_for_header_len(trailer.header_len), trailer.extra())
    }

    /// Reads a pack's seal and header with two small ranged requests, given its size, the
    /// number of entries the index lists for it and the bytes its seal fields take at its end
    /// ([`PackSeal::tail_extra`]).
    ///
    /// # Errors
    /// Store errors; [`Error::Corrupt`] naming the pack.
    pub fn read_pack_header_tail(
        &self,
        id: &PackId,
        size: u64,
        entries: usize,
        extra: usize,
    ) -> Result<(PackSeal, Vec<PackEntry>)> {
        let key = ObjectKey::new(ObjectKind::Pack, id.0);
        let tail_len = pack::tail_len(entries) + extra as u64;
        if size < tail_len + SALT_LEN as u64 {
            return Err(Error::corrupt(key, "too short for its header"));
        }
        let salt_bytes = self.store.get_range(&key, 0..SALT_LEN as u64).map_err(Error::store(key))?;
        let tail = self.store.get_range(&key, size - tail_len..size).map_err(Error::store(key))?;
        let salt: [u8; SALT_LEN] = salt_bytes.as_ref().try_into().map_err(|_| Error::corrupt(key, "too short"))?;
        let last =
            tail.len().checked_sub(4).and_then(|at| tail.get(at..)).ok_or_else(|| Error::corrupt(key, "too short"))?;
        let trailer = pack::split_header_len([last[0], last[1], last[2], last[3]]);
        let seal = trailer.seal(salt, &tail).ok_or_else(|| Error::corrupt(key, "too short"))?;
        Ok((seal, pack::open_tail(&self.master, id, &seal, &tail, size)?))
    }
}
