//! Tests of the object_store backend: error mapping, URL handling, and the local store's
//! page-cache dropping.

#[cfg(feature = "cloud")]
use super::remote::{base64_encode, percent_decode};
use super::*;
use crate::foundation::id::Digest;

#[test]
fn client_errors_are_permanent_but_timeouts_throttling_and_locks_are_retried() {
    let generic = |text: &str| ::object_store::Error::Generic { store: "HTTP", source: text.to_string().into() };
    let status =
        |code: &str| format!("Error performing MKCOL http://h/r/data - Server returned non-2xx status code: {code}");
    for code in ["408 Request Timeout", "423 Locked", "429 Too Many Requests"] {
        assert!(matches!(map_err(generic(&status(code))), StoreError::Transient(_)), "{code}");
    }
    for code in ["400 Bad Request", "404 Not Found", "409 Conflict"] {
        assert!(matches!(map_err(generic(&status(code))), StoreError::Permanent(_)), "{code}");
    }
}

#[test]
fn passwords_in_urls_are_not_repeated() {
    assert_eq!(redact_userinfo("https://alice:s3cret@dav.example/backup"), "https://alice:***@dav.example/backup");
    assert_eq!(redact_userinfo("https://alice@dav.example/a@b"), "https://alice:***@dav.example/a@b");
    assert_eq!(redact_userinfo("http://127.0.0.1:8080/repo"), "http://127.0.0.1:8080/repo");
    assert_eq!(redact_userinfo("/srv/repo"), "/srv/repo");
}

#[cfg(feature = "cloud")]
#[test]
fn basic_credentials_encode() {
    assert_eq!(base64_encode(b"alice:s3cret"), "YWxpY2U6czNjcmV0");
    assert_eq!(base64_encode(b"a"), "YQ==");
    assert_eq!(base64_encode(b"ab"), "YWI=");
    assert_eq!(base64_encode(b""), "");
    assert_eq!(percent_decode("p%40ss%3Aw%zz%4"), "p@ss:w%zz%4");
}

/// Pages of `path` in the page cache.
#[allow(unsafe_code)]
fn resident_pages(path: &std::path::Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the map is only passed to mincore, never read; the test owns the file.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    // SAFETY: sysconf reads a constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    let mut resident = vec![0u8; map.len().div_ceil(page)];
    // SAFETY: `resident` has a byte per page of the mapping, as mincore writes.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), resident.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    resident.iter().filter(|&&b| b & 1 != 0).count()
}

#[test]
fn local_packs_leave_the_page_cache_once_written() {
    // tmpfs pages cannot be dropped: then a directory on the disk the sources are on.
    let tmp = std::env::temp_dir();
    let on_tmpfs = nix::sys::statfs::statfs(&tmp).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    let dir = if on_tmpfs { tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")) } else { tempfile::tempdir() }.unwrap();
    let store = ObjectStoreBackend::open(dir.path().to_str().unwrap(), &BackendOptions::default()).unwrap();
    let pack = ObjectKey::new(ObjectKind::Pack, Digest::of(b"pack"));
    let small = ObjectKey::new(ObjectKind::Index, Digest::of(b"index"));
    store.put(&pack, Bytes::from(vec![7u8; 4 << 20])).unwrap();
    store.put(&small, Bytes::from(vec![7u8; 64 << 10])).unwrap();
    // The small object shows the check sees cached pages; the pack has none left.
    assert!(resident_pages(&dir.path().join(small.path())) > 0);
    assert_eq!(resident_pages(&dir.path().join(pack.path())), 0);
    assert_eq!(store.get(&pack).unwrap().len(), 4 << 20);
}

#[test]
fn unknown_schemes_are_named() {
    match ObjectStoreBackend::open("ftp://host/repo", &BackendOptions::default()) {
        Err(StoreError::Permanent(msg)) => assert!(msg.contains("`ftp://`"), "{msg}"),
        Err(other) => panic!("expected a permanent error, got {other:?}"),
        Ok(_) => panic!("ftp:// opened"),
    }
}

/// A server on 127.0.0.1 that answers one request with a 206 for bytes 0..10 of a 100-byte
/// object, claiming `content_length` bytes of body and sending `body`.
fn serve_one_range(content_length: usize, body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/repo", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let mut stream = reader.into_inner();
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\nContent-Length: {content_length}\r\n\
             Last-Modified: Sat, 05 Dec 2026 00:00:00 GMT\r\nETag: \"e\"\r\nConnection: close\r\n\r\n"
        );
        // The client may hang up mid-body; that is the point of one of the tests.
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
    });
    url
}

#[test]
fn a_ranged_read_takes_the_bytes_of_its_range() {
    let store =
        ObjectStoreBackend::open(&serve_one_range(10, b"0123456789".to_vec()), &BackendOptions::default()).unwrap();
    let mut buf = Vec::new();
    store.get_range_into(&ObjectKey::new(ObjectKind::Pack, Digest([7; 32])), 0..10, &mut buf).unwrap();
    assert_eq!(buf, b"0123456789");
}

#[test]
fn a_ranged_read_refuses_a_body_longer_than_its_range() {
    // A server that claims (and starts to send) 64 MiB for a 10-byte range: the read stops at
    // the first bytes too many, holding no more than the range.
    let url = serve_one_range(64 << 20, vec![b'x'; 1 << 20]);
    let store = ObjectStoreBackend::open(&url, &BackendOptions::default()).unwrap();
    let mut buf = Vec::new();
    let got = store.get_range_into(&ObjectKey::new(ObjectKind::Pack, Digest([7; 32])), 0..10, &mut buf);
    match got {
        Err(StoreError::Transient(why)) => assert!(why.contains("more than the 10 bytes"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(buf.len() <= 10, "held {} bytes", buf.len());
}
