//! Tenant keys: `TenantKey::decode` on fuzzed CBOR, and `TenantKey::open` and `open_stored` on
//! the same bytes as a sealed (or stored, doubled) object named for tenant `acme` (which must
//! not open unless it comes from a seed).
//!
//! Properties of an accepted key: it has the one known version and a valid name, sealing and
//! opening it again under its own tenant's name gives it back, and its encoding is stable.
#![no_main]

use cairn_core::format::tenant::{TENANT_VERSION, TenantKey, check_name};
use cairn_core::id::{ObjectKey, ObjectKind};
use cairn_fuzz::{cbor, master};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let master = master();
    let acme = ObjectKey::new(ObjectKind::Tenant, master.tenant_id("acme").expect("a full key"));
    if let Ok(tenant) = TenantKey::decode(&acme, data) {
        assert_eq!(tenant.version, TENANT_VERSION);
        assert!(check_name(&tenant.name).is_ok());
        let own = ObjectKey::new(ObjectKind::Tenant, master.tenant_id(&tenant.name).expect("a full key"));
        let reopened = TenantKey::open(&master, &own, &tenant.seal(&master)).expect("a sealed key opens");
        assert_eq!(reopened, tenant);
        let enc = cbor(&tenant);
        assert_eq!(cbor(&TenantKey::decode(&acme, &enc).expect("an encoded key decodes")), enc);
    }
    if let Ok(tenant) = TenantKey::open(&master, &acme, data) {
        assert_eq!(tenant.name, "acme", "opened under acme's name, so it is acme's key");
    }
    // The stored form, two copies: whatever the bytes, a key that opens is acme's, and an
    // object whose copies differ is reported damaged.
    if let Ok((tenant, damaged)) = TenantKey::open_stored(&master, &acme, data) {
        assert_eq!(tenant.name, "acme");
        let n = data.len();
        assert!(damaged || (n % 2 == 0 && data[..n / 2] == data[n / 2..]));
    }
});
