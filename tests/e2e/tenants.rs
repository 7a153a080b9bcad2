//! Tenants and crypto-shredding (issue 16, item 5): a policy's sources may name a tenant; each
//! tenant's backups are sealed under its own key and deduplicated only within it, and
//! `cairn erase --tenant` destroys that key in the repository and every copy.

use cairn_tests::{TestRepo, args, exit};

fn at(repo: &TestRepo, when: &str, args: Vec<std::ffi::OsString>) -> cairn_tests::repo::Output {
    let mut cmd = repo.command(args);
    cmd.env("CAIRN_TEST_NOW", when);
    cairn_tests::repo::Output::of(cmd)
}

/// The id of tenant `name` in `repo` (`tenant list`), if it has one.
fn tenant_id(repo: &TestRepo, name: &str) -> Option<String> {
    let list = repo.run(args!["--json", "tenant", "list"]).success().json();
    list.as_array().unwrap().iter().find(|t| t["name"] == name).map(|t| t["id"].as_str().unwrap().to_string())
}

#[test]
fn tenants_are_sealed_apart_and_a_shredded_one_is_gone_everywhere_while_the_others_restore() {
    let repo = crate::repo();
    let copy = crate::repo();
    // The same 2 MB file in both tenants' sources: deduplicated within a tenant, never across.
    let shared = cairn_tests::data::random_bytes(7, 2_000_000);
    let (a, b) = (repo.dir("acme"), repo.dir("globex"));
    for (dir, seed) in [(&a, 1), (&b, 2)] {
        cairn_tests::data::write(&dir.join("shared.bin"), &shared);
        cairn_tests::data::write_random(&dir.join("own.bin"), seed, 300_000);
    }
    let file = repo.scratch().join("policy.toml");
    let source = |name: &str, tenant: &str, dir: &std::path::Path| {
        format!(
            "[[source]]\nname = \"{name}\"\ntenant = \"{tenant}\"\npaths = [\"{}\"]\nevery = \"1d\"\nrpo = \"26h\"\n",
            dir.display()
        )
    };
    let text = format!(
        "[repository]\nurl = \"{}\"\n[[copy]]\nname = \"offsite\"\nurl = \"{}\"\nmax_lag = \"1d\"\n{}{}[check]\nevery = \"1d\"\n[drill]\nevery = \"7d\"\nrto = \"1h\"\n[erasure]\ndeadline = \"60d\"\n",
        repo.path().display(),
        copy.path().display(),
        source("acme-files", "acme", &a),
        source("globex-files", "globex", &b),
    );
    std::fs::write(&file, text).unwrap();

    let record = at(&repo, "2026-01-01T00:00:00Z", args!["--json", "run", "--policy", &file]).success().json();
    let steps = record["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{record}");
    for (kind, target) in
        [("backup", "acme-files"), ("backup", "globex-files"), ("copy", "offsite"), ("drill", "acme-files")]
    {
        assert!(steps.iter().any(|s| s["kind"] == kind && s["target"] == target), "no {kind} {target}: {record}");
    }
    let status = at(&repo, "2026-01-01T01:00:00Z", args!["--json", "status", "--policy", &file]).success().json();
    assert_eq!(status["ok"], true, "{status}");

    // Segregated: the repository itself holds no snapshot, each tenant its own.
    assert!(repo.snapshots().is_empty());
    for (r, tenant, tag) in [(&repo, "acme", "acme-files"), (&copy, "globex", "globex-files")] {
        let listed = r.run(args!["--json", "--tenant", tenant, "snapshots"]).success().json();
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed[0]["tags"][0], tag);
    }
    // No chunk shared across tenants: each tenant's folder holds the shared file's bytes.
    let acme = tenant_id(&repo, "acme").expect("acme made by the run");
    let globex = tenant_id(&repo, "globex").expect("globex made by the run");
    for id in [&acme, &globex] {
        let size = cairn_tests::data::size_of_tree(&repo.path().join("tenants").join(id));
        assert!(size > 2_000_000, "tenant {id} holds {size} bytes: its chunks were deduplicated against another's");
    }
    // Nothing of a tenant opens under the repository's own key: its snapshot put where the
    // repository keeps its own is unreadable there.
    let snap_dir = repo.path().join("tenants").join(&acme).join("snapshots");
    let snap = std::fs::read_dir(&snap_dir).unwrap().next().unwrap().unwrap().path();
    let saved = std::fs::read(&snap).unwrap();
    std::fs::create_dir_all(repo.path().join("snapshots")).unwrap();
    let own = repo.path().join("snapshots").join(snap.file_name().unwrap());
    std::fs::write(&own, &saved).unwrap();
    repo.run(args!["check"]).code(exit::FAILED).stderr_has("authentication failed");
    std::fs::remove_file(&own).unwrap();

    // The key is stored twice: one damaged copy costs nothing, check names it, and repair
    // writes it whole again.
    let key_file = repo.path().join("tenant-keys").join(&globex);
    let whole = std::fs::read(&key_file).unwrap();
    let mut damaged = whole.clone();
    damaged[whole.len() / 4] ^= 1;
    std::fs::write(&key_file, &damaged).unwrap();
    repo.run(args!["--tenant", "globex", "snapshots"]).success();
    let check = repo.run(args!["check"]);
    check.code(exit::FAILED);
    let said = format!("{}{}", check.stdout_text(), check.stderr);
    assert!(said.contains("no backup of tenant `globex` is lost"), "{said}");
    let repaired = repo.run(args!["tenant", "repair"]).success().stdout_text();
    assert!(repaired.contains("tenant `globex`"), "{repaired}");
    assert_eq!(std::fs::read(&key_file).unwrap().len(), whole.len());
    repo.run(args!["check"]).success();

    // Shred acme: its key is destroyed in both repositories, its objects deleted.
    let notice = repo.scratch().join("notice.json");
    let shred =
        args!["--json", "erase", "--policy", &file, "--tenant", "acme", "--request", "EXIT-9", "--notice", &notice];
    let record = at(&repo, "2026-01-02T00:00:00Z", shred).success().json();
    for (n, target) in ["primary", "offsite"].iter().enumerate() {
        let step = &record["steps"][n];
        assert_eq!(step["target"], *target, "{record}");
        assert_eq!(step["ok"], true, "{record}");
        assert_eq!(step["erasure"]["tenant"], "acme");
        assert!(step["erasure"]["key_destroyed_at"].is_string(), "{record}");
        assert!(step["erasure"]["bytes_deleted_at"].is_string(), "{record}");
    }
    for r in [&repo, &copy] {
        r.run(args!["--tenant", "acme", "snapshots"]).code(exit::NOT_FOUND).stderr_has("tenant `acme`");
        assert_eq!(tenant_id(r, "acme"), None);
        r.run(args!["check"]).success();
        r.run(args!["--tenant", "globex", "check", "--read-data"]).success();
    }
    assert!(!repo.path().join("tenants").join(&acme).exists(), "acme's objects are left");
    // A copy of its snapshot kept elsewhere (a locked or cold copy, say) opens under no key:
    // not the repository's, and not the key of a new tenant of the same name.
    repo.run(args!["tenant", "add", "acme"]).success();
    std::fs::create_dir_all(&snap_dir).unwrap();
    std::fs::write(snap_dir.join(snap.file_name().unwrap()), &saved).unwrap();
    repo.run(args!["--tenant", "acme", "check"]).code(exit::FAILED).stderr_has("authentication failed");

    // The other tenant restores exactly, from the repository and from the copy.
    for r in [&repo, &copy] {
        let target = r.scratch().join("restored");
        r.run(args!["--tenant", "globex", "restore", "latest", "--target", &target]).success();
        cairn_tests::compare::assert_trees_equal(&b, &target.join(b.strip_prefix("/").unwrap()));
    }

    // The erasure is on record, its notice verifies, and the deadline promise is kept.
    let listed = repo.run(args!["erase", "--policy", &file, "--list"]).success().stdout_text();
    assert!(listed.contains("request EXIT-9") && listed.contains("tenant acme shredded"), "{listed}");
    repo.run(args!["erase", "--policy", &file, "--verify-notice", &notice]).success();
    assert!(std::fs::read_to_string(&notice).unwrap().contains("\"tenant\": \"acme\""));
    let html = repo.scratch().join("report.html");
    at(&repo, "2026-01-02T01:00:00Z", args!["report", "--policy", &file, "--html", &html]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("tenant acme shredded") && page.contains("key destroyed"), "the erasure log says it");
    let status = at(&repo, "2026-01-02T01:00:00Z", args!["--json", "status", "--policy", &file]).json();
    assert_eq!(status["erasure"]["ok"], true, "{status}");
    assert_eq!(status["erasure"]["pending"], serde_json::json!([]), "{status}");
}
