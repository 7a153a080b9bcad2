//! Policy files (issue 16, item 1): `cairn policy check` accepts the documented policy and
//! names the line and column of a mistake, with the usage exit code.

use cairn_tests::{TestRepo, args, exit};

/// The complete policy of docs/POLICY.md.
fn documented() -> String {
    let doc = include_str!("../../docs/POLICY.md");
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_string()
}

#[test]
fn policy_check_accepts_the_documented_policy_and_names_the_line_of_a_mistake() {
    let repo = TestRepo::uninitialized(env!("CARGO_BIN_EXE_cairn"));
    let good = repo.scratch().join("policy.toml");
    std::fs::write(&good, documented()).unwrap();
    let out = repo.run(args!["--json", "policy", "check", &good]).success().json();
    assert_eq!(out["valid"], true);
    assert_eq!(out["sources"][0]["name"], "shop-db");
    assert_eq!(out["sources"][1]["rpo_seconds"], 26 * 3600);
    assert_eq!(out["run_every_seconds"], 3 * 3600, "{out}");

    let text = documented();
    let line = text.lines().position(|l| l.starts_with("rpo = \"6h\"")).unwrap() + 1;
    let bad = repo.scratch().join("broken.toml");
    std::fs::write(&bad, text.replacen("rpo = \"6h\"", "rpo = \"2h\"", 1)).unwrap();
    repo.run(args!["policy", "check", &bad])
        .code(exit::USAGE)
        .stderr_has(&format!("broken.toml:{line}:7:"))
        .stderr_has("could never be kept");
    std::fs::write(&bad, text.replacen("[drill]", "[drills]", 1)).unwrap();
    repo.run(args!["policy", "check", &bad]).code(exit::USAGE).stderr_has("unknown field `drills`");
}
