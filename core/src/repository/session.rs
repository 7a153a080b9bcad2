//! Running writers' session markers (FORMAT.md §14a): [`Repository::begin_session`] publishes
//! one before a writer loads the index and keeps it fresh while the writer runs;
//! [`Repository::live_sessions`] tells a prune's sweep when the oldest running writer began.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{RecvTimeoutError, Sender, bounded};

use crate::format::session::{SESSION_VERSION, SessionMarker};
use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::{Digest, ObjectKey, ObjectKind};
use crate::repository::Repository;
use crate::repository::store::Store;

/// How often a running writer refreshes its marker.
pub const SESSION_REFRESH: Duration = Duration::from_secs(60);
/// A session whose newest marker is older than this (by the store's clock) is taken for
/// crashed: its markers are ignored and deleted by the next sweep.
pub const SESSION_STALE: Duration = Duration::from_secs(600);

/// A running writer's presence in the repository: refreshed by a thread until dropped, then
/// its markers are deleted.
pub struct Session {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Refresher {
    store: Arc<dyn Store>,
    master: MasterKey,
    marker: SessionMarker,
    first: ObjectKey,
}

impl Refresher {
    fn put(&self, marker: &SessionMarker) -> Result<ObjectKey> {
        let sealed = marker.seal(&self.master);
        let key = ObjectKey::new(ObjectKind::Session, Digest::of(&sealed));
        self.store.put(&key, Bytes::from(sealed)).map_err(Error::store(key))?;
        Ok(key)
    }

    /// Writes a new marker every `every` until told to stop, deleting the one before (never
    /// the first: its timestamp says when the session began); then deletes its markers.
    fn run(mut self, stop: &crossbeam_channel::Receiver<()>, every: Duration) {
        let mut last: Option<ObjectKey> = None;
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
            self.marker.seq += 1;
            // A failed refresh only makes the session look older to a prune: the writer's own
            // checks before and after its snapshot still catch a pack swept meanwhile.
            if let Ok(key) = self.put(&self.marker)
                && let Some(old) = last.replace(key)
            {
                let _ = self.store.delete(&old);
            }
        }
        for key in last.iter().chain(std::iter::once(&self.first)) {
            let _ = self.store.delete(key);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the session markers say, at the store's time `now`.
#[derive(Debug, Default)]
pub struct LiveSessions {
    /// When the oldest session still refreshed began (the store's timestamp of its first
    /// marker), if any runs.
    pub oldest_start: Option<jiff::Timestamp>,
    /// Sessions running.
    pub live: usize,
    /// Markers of sessions not refreshed for `SESSION_STALE`, 600 s (crashed writers).
    pub stale: Vec<ObjectKey>,
}

impl Repository {
    /// Publishes a session marker for a writer about to load the index; it is refreshed every
    /// `SESSION_REFRESH` (60 s) until the returned guard is dropped, which deletes the markers.
    ///
    /// # Errors
    /// Store errors writing the first marker.
    pub fn begin_session(&self) -> Result<Session> {
        self.begin_session_every(SESSION_REFRESH)
    }

    pub(crate) fn begin_session_every(&self, every: Duration) -> Result<Session> {
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let (host, _) = crate::foundation::identity::host_and_user();
        let marker =
            SessionMarker { version: SESSION_VERSION, session: Digest(id), seq: 0, host, pid: std::process::id() };
        let mut refresher = Refresher {
            store: Arc::clone(self.store()),
            master: self.master().clone(),
            marker,
            first: ObjectKey::CONFIG,
        };
        refresher.first = refresher.put(&refresher.marker)?;
        // The index this writer loads next must be listed after its marker.
        self.store().forget_listed_ahead();
        let (stop, stopped) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("cairn-session".into())
            .spawn(move || refresher.run(&stopped, every))
            .map_err(|e| Error::Internal(format!("starting the session refresher: {e}")))?;
        Ok(Session { stop: Some(stop), thread: Some(thread) })
    }

    /// The running writers, by their markers, at the store's time `now`. A marker that cannot
    /// be read counts as a session of its own (so it can only keep more).
    ///
    /// # Errors
    /// Store errors listing or reading markers.
    pub fn live_sessions(&self, now: jiff::Timestamp) -> Result<LiveSessions> {
        let stale_after = jiff::SignedDuration::try_from(SESSION_STALE).unwrap_or(jiff::SignedDuration::MAX);
        let mut sessions: std::collections::HashMap<Digest, (jiff::Timestamp, jiff::Timestamp, Vec<ObjectKey>)> =
            std::collections::HashMap::new();
        for info in self.store().list(ObjectKind::Session).map_err(Error::Storage)? {
            let session = match self.store().get(&info.key) {
                Ok(data) => SessionMarker::open(self.master(), &info.key, &data).map_or(info.key.id, |m| m.session),
                Err(crate::repository::store::StoreError::NotFound(_)) => continue, // ended meanwhile
                Err(cause) => return Err(Error::Store { key: info.key, cause }),
            };
            let entry = sessions.entry(session).or_insert((info.last_modified, info.last_modified, Vec::new()));
            entry.0 = entry.0.min(info.last_modified);
            entry.1 = entry.1.max(info.last_modified);
            entry.2.push(info.key);
        }
        let mut out = LiveSessions::default();
        for (start, newest, keys) in sessions.into_values() {
            if now.duration_since(newest) >= stale_after {
                out.stale.extend(keys);
            } else {
                out.live += 1;
                out.oldest_start = Some(out.oldest_start.map_or(start, |o| o.min(start)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> Repository {
        crate::repository::testing::memory_repo(name)
    }

    /// A session is seen from its first marker on, keeps its start while it refreshes, and
    /// leaves nothing behind when it ends.
    #[test]
    fn a_session_is_live_while_it_runs_and_gone_after() {
        let repo = repo("session-live");
        let now = || jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
        assert_eq!(repo.live_sessions(now()).unwrap().live, 0);
        let session = repo.begin_session_every(Duration::from_millis(20)).unwrap();
        let first = repo.live_sessions(now()).unwrap();
        assert_eq!(first.live, 1);
        std::thread::sleep(Duration::from_millis(120));
        let later = repo.live_sessions(now()).unwrap();
        assert_eq!(later.live, 1, "refreshes are one session");
        assert_eq!(later.oldest_start, first.oldest_start, "the start is the first marker's");
        assert!(repo.store().list(ObjectKind::Session).unwrap().len() <= 2, "old refreshes are deleted");
        drop(session);
        assert!(repo.store().list(ObjectKind::Session).unwrap().is_empty());
    }

    /// A session not refreshed for SESSION_STALE is taken for crashed: its markers are listed
    /// for deletion and it holds nothing back.
    #[test]
    fn a_stale_session_is_ignored() {
        let repo = repo("session-stale");
        let session = repo.begin_session_every(Duration::from_secs(3600)).unwrap();
        let later = jiff::Timestamp::now() + jiff::SignedDuration::try_from(SESSION_STALE).unwrap();
        let seen = repo.live_sessions(later).unwrap();
        assert_eq!((seen.live, seen.oldest_start, seen.stale.len()), (0, None, 1));
        drop(session);
    }
}
