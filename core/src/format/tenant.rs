//! Tenant keys (FORMAT.md §14d): the key of one tenant's own repository, nested in the
//! repository under `tenants/<id>/`, sealed under the repository's master key.
//!
//! Stored as sealed CBOR of [`TenantKey`] (associated data `cairn tenant key v1`), twice, byte
//! for byte ([`TenantKey::seal_stored`]): the one object every backup of the tenant depends on
//! survives a damaged copy. Named by [`MasterKey::tenant_id`] of the tenant's name. Deleting it
//! is crypto-shredding: every object of the tenant's repository is sealed under the key it
//! holds, and no other copy of that key is kept anywhere in the repository.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::foundation::crypto::MasterKey;
use crate::foundation::error::{Error, Result};
use crate::foundation::id::ObjectKey;

const TENANT_AAD: &[u8] = b"cairn tenant key v1";
/// Version of the tenant key encoding.
pub const TENANT_VERSION: u32 = 1;

/// One tenant's key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct TenantKey {
    /// [`TENANT_VERSION`].
    pub version: u32,
    /// The tenant's name, as the policy file and `--tenant` give it.
    pub name: String,
    /// The master key of the tenant's repository.
    #[serde(with = "serde_bytes")]
    pub key: [u8; 32],
    /// When the tenant was made (RFC 3339, informational).
    pub created: String,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey").field("name", &self.name).field("created", &self.created).finish_non_exhaustive()
    }
}

impl TenantKey {
    /// Encodes and seals the key for storage under the repository's `master`.
    #[must_use]
    pub fn seal(&self, master: &MasterKey) -> Vec<u8> {
        super::seal_cbor(master, self, TENANT_AAD)
    }

    /// Opens the stored tenant key `key` and checks that it is the key of the tenant its name
    /// says (the object name is the keyed hash of the tenant's name).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming it when it fails authentication or decoding, has an unknown
    /// version, or sits under another tenant's name.
    pub fn open(master: &MasterKey, key: &ObjectKey, sealed: &[u8]) -> Result<Self> {
        let mut plain = super::open_sealed(master, key, sealed, TENANT_AAD)?;
        let tenant = Self::decode(key, &plain);
        plain.zeroize();
        let tenant = tenant?;
        if master.tenant_id(&tenant.name).map_err(|e| Error::crypto(key, e))? != key.id {
            return Err(Error::corrupt(
                key,
                format!("holds the key of tenant `{}`, stored under another name", tenant.name),
            ));
        }
        Ok(tenant)
    }

    /// The stored form: the sealed key twice, byte for byte (FORMAT.md §14d).
    #[must_use]
    pub fn seal_stored(&self, master: &MasterKey) -> Vec<u8> {
        let once = self.seal(master);
        [&once[..], &once[..]].concat()
    }

    /// Opens a stored tenant key: its first copy that opens, and whether the object is
    /// damaged (its copies differ; an intact copy was used). The copies are the object's two
    /// halves or, when damage changed its length, the parts before and after where its first
    /// 16 bytes (the salt) repeat.
    ///
    /// # Errors
    /// As [`TenantKey::open`], when no copy opens.
    pub fn open_stored(master: &MasterKey, key: &ObjectKey, stored: &[u8]) -> Result<(Self, bool)> {
        let n = stored.len();
        let mut splits: Vec<usize> = Vec::new();
        if n.is_multiple_of(2) {
            splits.push(n / 2);
        }
        if let Some(salt) = stored.get(..16) {
            splits.extend((16..n.saturating_sub(15)).filter(|&p| stored[p..p + 16] == *salt).take(4));
        }
        let mut first_error = None;
        for at in splits {
            for copy in [&stored[..at], &stored[at..]] {
                match Self::open(master, key, copy) {
                    Ok(t) => return Ok((t, stored[..at] != stored[at..])),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::corrupt(key, "too short")))
    }

    /// Decodes the plaintext of the tenant key `key` (public for the fuzz target).
    ///
    /// # Errors
    /// As [`TenantKey::open`], after authentication.
    pub fn decode(key: &ObjectKey, plain: &[u8]) -> Result<Self> {
        let tenant: TenantKey = super::decode_cbor(key, plain)?;
        if tenant.version != TENANT_VERSION {
            return Err(Error::corrupt(key, format!("unknown tenant key version {}", tenant.version)));
        }
        crate::format::tenant::check_name(&tenant.name).map_err(|why| Error::corrupt(key, why))?;
        Ok(tenant)
    }

    /// The tenant repository's master key.
    #[must_use]
    pub fn master(&self) -> MasterKey {
        MasterKey::from_bytes(self.key)
    }
}

/// Whether `name` may name a tenant: 1 to 128 bytes, printable, no `/`.
///
/// # Errors
/// Why it may not.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("a tenant name is 1 to 128 bytes long, not {}", name.len()));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!("tenant name {name:?} holds a control character or `/`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::id::ObjectKind;

    fn tenant() -> TenantKey {
        TenantKey { version: 1, name: "acme".into(), key: [7; 32], created: "2026-12-04T10:00:00Z".into() }
    }

    #[test]
    fn round_trip_and_tamper() {
        let m = MasterKey::generate();
        let key = ObjectKey::new(ObjectKind::Tenant, m.tenant_id("acme").unwrap());
        let sealed = tenant().seal(&m);
        assert_eq!(TenantKey::open(&m, &key, &sealed).unwrap(), tenant());
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(TenantKey::open(&m, &key, &bad).unwrap_err().to_string().contains("tenant key"));
        assert!(TenantKey::open(&MasterKey::generate(), &key, &sealed).is_err());
        let mut future = tenant();
        future.version = 2;
        assert!(TenantKey::open(&m, &key, &future.seal(&m)).is_err());
    }

    #[test]
    fn one_damaged_copy_costs_nothing() {
        let m = MasterKey::generate();
        let key = ObjectKey::new(ObjectKind::Tenant, m.tenant_id("acme").unwrap());
        let stored = tenant().seal_stored(&m);
        assert_eq!(TenantKey::open_stored(&m, &key, &stored).unwrap(), (tenant(), false));
        for at in [3, stored.len() - 3] {
            let mut bad = stored.clone();
            bad[at] ^= 1;
            assert_eq!(TenantKey::open_stored(&m, &key, &bad).unwrap(), (tenant(), true), "byte {at}");
        }
        // Cut short inside the second copy, and grown inside the first: the salt's repeat
        // finds the copies.
        assert_eq!(TenantKey::open_stored(&m, &key, &stored[..stored.len() - 5]).unwrap().0, tenant());
        let mut grown = stored.clone();
        grown.insert(40, 0);
        assert_eq!(TenantKey::open_stored(&m, &key, &grown).unwrap().0, tenant());
        let mut both = stored.clone();
        both[20] ^= 1;
        both[stored.len() / 2 + 20] ^= 1;
        assert!(TenantKey::open_stored(&m, &key, &both).is_err());
    }

    #[test]
    fn a_key_under_another_tenants_name_is_refused() {
        let m = MasterKey::generate();
        let other = ObjectKey::new(ObjectKind::Tenant, m.tenant_id("globex").unwrap());
        let e = TenantKey::open(&m, &other, &tenant().seal(&m)).unwrap_err();
        assert!(e.to_string().contains("another name"), "{e}");
    }

    #[test]
    fn ids_depend_on_the_master_key_and_the_name() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        assert_ne!(a.tenant_id("acme").unwrap(), b.tenant_id("acme").unwrap());
        assert_ne!(a.tenant_id("acme").unwrap(), a.tenant_id("acme2").unwrap());
        assert_eq!(a.tenant_id("acme").unwrap(), a.tenant_id("acme").unwrap());
        assert_eq!(a.write_only().tenant_id("acme"), Err(crate::foundation::crypto::CryptoError::WriteOnly));
    }

    #[test]
    fn names() {
        assert!(check_name("acme-eu 2").is_ok());
        for bad in ["", "a/b", "a\nb", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
