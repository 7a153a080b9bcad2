//! Retention through the real binary (issue 14, item 8): restic's forty retention cases, with
//! every snapshot made by `cairn backup --time` in the cases' order, give exactly the kept sets
//! restic gives, in every run. Five of the snapshots share one time: among them the order is
//! the order they were made in (recorded in each snapshot), never their random ids, so two
//! hosts running `forget` agree on which to keep.

use std::collections::HashMap;
use std::ffi::OsString;

use cairn_tests::{TestRepo, args, exit};
use serde_json::Value;

use crate::repo;

fn data(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/data/retention/");
    serde_json::from_str(&std::fs::read_to_string(format!("{path}{name}")).unwrap()).unwrap()
}

/// What tells the cases' snapshots apart: time, tags, paths.
type Key = (String, Vec<String>, Vec<String>);

fn key(s: &Value) -> Key {
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    (s["time"].as_str().unwrap().to_string(), strings(&s["tags"]), strings(&s["paths"]))
}

/// Every snapshot of the cases, backed up in their order: a stream whose name stands for its
/// paths. Returns each snapshot's id with its key.
fn make_snapshots(repo: &TestRepo) -> HashMap<String, Key> {
    let mut ids = HashMap::new();
    for s in data("snapshots.json").as_array().unwrap() {
        let k = key(s);
        let name = if k.2.is_empty() { "no-paths".to_string() } else { k.2.join("+") };
        let mut a = args!["--json", "backup", "--stdin", "--stdin-filename", &name, "--time", &k.0];
        for tag in &k.1 {
            a.extend([OsString::from("--tag"), OsString::from(tag)]);
        }
        let out = repo.run_with_stdin(a, b"one\n");
        ids.insert(out.success().json()["snapshot"].as_str().unwrap().to_string(), k);
    }
    ids
}

fn policy_args(policy: &serde_json::Map<String, Value>) -> Vec<OsString> {
    let mut a = Vec::new();
    for (name, value) in policy {
        let values: Vec<String> = match value {
            Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            Value::Number(n) => vec![n.to_string()],
            Value::String(s) => vec![s.clone()],
            other => panic!("unexpected policy value {other}"),
        };
        for v in values {
            a.extend([OsString::from(format!("--{name}")), OsString::from(v)]);
        }
    }
    a
}

#[test]
fn restics_retention_cases_keep_the_same_snapshots_through_the_binary() {
    let repo = repo();
    let ids = make_snapshots(&repo);
    assert_eq!(ids.len(), 103);
    // The listing orders equal times by when they were made: the cases' order.
    let listed: Vec<Key> = repo.snapshots().iter().map(|s| ids[s["id"].as_str().unwrap()].clone()).collect();
    let mut made: Vec<Key> = data("snapshots.json").as_array().unwrap().iter().map(key).collect();
    // Stable: equal times stay in the order they were made.
    made.sort_by_key(|k| k.0.parse::<jiff::Timestamp>().unwrap());
    assert_eq!(listed, made, "snapshots with one time are listed in the order they were made");

    let mut failures = Vec::new();
    for (n, case) in data("cases.json").as_array().unwrap().iter().enumerate() {
        let policy = case["policy"].as_object().unwrap();
        let mut a = args!["--json", "forget", "--dry-run", "--group-by", ""];
        a.extend(policy_args(policy));
        let out = repo.run(&a);
        if policy.is_empty() {
            out.code(exit::USAGE).stderr_has("empty policy");
            continue;
        }
        let json = out.success().json();
        let kept: Vec<Key> = json["groups"][0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["keep"] == Value::Bool(true))
            .map(|v| ids[v["id"].as_str().unwrap()].clone())
            .collect();
        let want: Vec<Key> = case["keep"].as_array().unwrap().iter().map(key).collect();
        if kept != want {
            failures.push(format!("case {n} {policy:?}: kept {} want {}", kept.len(), want.len()));
        }
    }
    assert!(failures.is_empty(), "{} of 40 cases differ:\n{}", failures.len(), failures.join("\n"));
}
