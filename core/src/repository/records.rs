//! The records of policy runs (FORMAT.md §14b): written once by `cairn run`, read by
//! `status --policy` and the report.

use std::sync::Mutex;

use bytes::Bytes;

use crate::format::record::RunRecord;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, ObjectKey, ObjectKind};
use crate::repository::Repository;
use crate::repository::store::batch::{self, Flow};

impl Repository {
    /// Stores a run record; its name is the BLAKE3 of its sealed bytes.
    ///
    /// # Errors
    /// Store errors.
    pub fn save_record(&self, record: &RunRecord) -> Result<Digest> {
        let sealed = record.seal(self.master());
        let key = ObjectKey::new(ObjectKind::Record, Digest::of(&sealed));
        self.store().put(&key, Bytes::from(sealed)).map_err(Error::store(key))?;
        Ok(key.id)
    }

    /// Every run record, oldest run first.
    ///
    /// # Errors
    /// Store errors; a record that fails authentication or decoding (named): the evidence is
    /// never silently incomplete.
    pub fn records(&self) -> Result<Vec<RunRecord>> {
        let infos = self.store().list(ObjectKind::Record).map_err(Error::Storage)?;
        let loaded: Mutex<Vec<Result<RunRecord>>> = Mutex::new(Vec::with_capacity(infos.len()));
        batch::for_each(
            &infos,
            batch::in_flight(self.store().as_ref(), 0),
            |info| {
                let data = self.store().get(&info.key).map_err(Error::store(info.key))?;
                RunRecord::open(self.master(), &info.key, &data)
            },
            |_, got| {
                let failed = got.is_err();
                if let Ok(mut all) = loaded.lock() {
                    all.push(got);
                }
                if failed { Flow::Stop } else { Flow::Continue }
            },
        );
        let mut out = loaded
            .into_inner()
            .map_err(|_| Error::Internal("record load lock poisoned".into()))?
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| (r.started, r.finished));
        Ok(out)
    }
}
