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

/// A policy over `repo` with a directory source (daily), a command source (every 3 hours), the
/// retention tiers of the issue, a copy into `copy`, a check in two slices and a weekly drill.
fn policy(repo: &TestRepo, copy: &TestRepo, src: &std::path::Path, command: &str, notify: &std::path::Path) -> String {
    format!(
        r#"
[repository]
url = "{repo}"
[[copy]]
name = "offsite"
url = "{copy}"
max_lag = "24h"
[[source]]
name = "db"
command = ["sh", "-c", "{command}"]
filename = "db.sql"
every = "3h"
rpo = "6h"
[[source]]
name = "files"
paths = ["{src}"]
exclude = ["*.tmp"]
every = "1d"
rpo = "26h"
[retention]
tiers = ["6h:1d", "1d:7d", "1w:4w", "1M:12M"]
[check]
read_data_subset = "1/2"
every = "1d"
[drill]
every = "7d"
rto = "1h"
[notify]
on_failure = ["sh", "-c", "cat > {notify}"]
"#,
        repo = repo.path().display(),
        copy = copy.path().display(),
        src = src.display(),
        notify = notify.display(),
    )
}

/// `cairn ARGS` with the time injected (`CAIRN_TEST_NOW`): policies are judged at `when`.
fn at(repo: &TestRepo, when: impl ToString, args: Vec<std::ffi::OsString>) -> cairn_tests::repo::Output {
    let mut cmd = repo.command(args);
    cmd.env("CAIRN_TEST_NOW", when.to_string());
    cairn_tests::repo::Output::of(cmd)
}

/// `cairn run` at an injected time, with `--json`: the run record.
fn run_at(repo: &TestRepo, file: &std::path::Path, when: &str) -> cairn_tests::repo::Output {
    at(repo, when, args!["--json", "run", "--policy", file])
}

fn steps(record: &serde_json::Value) -> Vec<String> {
    record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let target = s["target"].as_str().unwrap();
            if target.is_empty() {
                s["kind"].as_str().unwrap().to_string()
            } else {
                format!("{} {target}", s["kind"].as_str().unwrap())
            }
        })
        .collect()
}

/// Issue 16, item 2: `cairn run` does what is due and nothing else, judged from the repository
/// (snapshots and run records), and records each step in the repository.
#[test]
fn run_does_what_is_due_and_records_it() {
    let repo = crate::repo();
    let copy = crate::repo();
    let src = repo.dir("src");
    cairn_tests::data::write_random(&src.join("a"), 1, 100_000);
    std::fs::write(src.join("junk.tmp"), b"left out").unwrap();
    let file = repo.scratch().join("policy.toml");
    let notify = repo.scratch().join("alert.json");
    std::fs::write(&file, policy(&repo, &copy, &src, "echo CREATE TABLE t", &notify)).unwrap();

    let first = run_at(&repo, &file, "2026-01-01T00:00:00Z");
    first.success();
    let record = first.json();
    assert_eq!(
        steps(&record),
        [
            "backup db",
            "backup files",
            "forget",
            "prune",
            "copy offsite",
            "prune offsite",
            "check",
            "drill db",
            "drill files"
        ],
        "{record}"
    );
    assert_eq!(record["steps"][6]["slice"], serde_json::json!([1, 2]), "the first check reads slice 1 of 2");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 2);
    assert!(snaps.iter().all(|s| s["time"].as_str().unwrap().starts_with("2026-01-01T00:00:00")), "{snaps:?}");
    assert_eq!(copy.snapshots().len(), 2, "both copied off-site");

    // An hour later nothing is due; at three hours the database alone, and no second check.
    let idle = run_at(&repo, &file, "2026-01-01T01:00:00Z").success().json();
    assert!(steps(&idle).is_empty(), "{idle}");
    let later = run_at(&repo, &file, "2026-01-01T03:00:00Z");
    assert_eq!(steps(&later.success().json()), ["backup db", "forget", "copy offsite"]);
    // A day on: both sources, the second slice of the check, a daily prune; the drill waits a week.
    let day = run_at(&repo, &file, "2026-01-02T00:00:00Z");
    let day = day.success().json();
    assert_eq!(
        steps(&day),
        ["backup db", "backup files", "forget", "prune", "copy offsite", "prune offsite", "check"],
        "{day}"
    );
    assert_eq!(day["steps"][6]["slice"], serde_json::json!([2, 2]));
    assert!(!notify.exists(), "no failure, no alert");

    // The records are in the repository, private to their owner.
    let records: Vec<_> = std::fs::read_dir(repo.path().join("records")).unwrap().collect();
    assert_eq!(records.len(), 4, "one record per run, even a run with nothing due");
    for r in records {
        let mode = std::os::unix::fs::PermissionsExt::mode(&r.unwrap().metadata().unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "a record readable by others");
    }
}

/// Issue 16, item 2: a failing step does not stop the others; it is recorded, alerts through
/// the notify command (the run record as JSON on its stdin) and gives a non-zero exit.
#[test]
fn a_failing_step_alerts_and_the_others_still_run() {
    let repo = crate::repo();
    let copy = crate::repo();
    let src = repo.dir("src");
    cairn_tests::data::write_random(&src.join("a"), 2, 10_000);
    let file = repo.scratch().join("policy.toml");
    let notify = repo.scratch().join("alert.json");
    std::fs::write(&file, policy(&repo, &copy, &src, "echo partial; exit 3", &notify)).unwrap();
    let out = run_at(&repo, &file, "2026-01-01T00:00:00Z");
    out.code(exit::FAILED);
    let record = out.json();
    assert_eq!(record["steps"][0]["ok"], false, "{record}");
    assert_eq!(record["steps"][1]["kind"], "backup");
    assert_eq!(record["steps"][1]["ok"], true, "the other source is still backed up");
    let alert: serde_json::Value = serde_json::from_slice(&std::fs::read(&notify).unwrap()).unwrap();
    assert_eq!(alert["steps"][0]["target"], "db");
    assert_eq!(alert["steps"][0]["ok"], false);
    assert_eq!(repo.snapshots().len(), 1, "no snapshot of the failed dump");

    // A run that cannot even open the repository alerts as well.
    std::fs::remove_file(&notify).unwrap();
    let mut cmd = repo.command(args!["run", "--policy", &file]);
    cmd.env("CAIRN_PASSWORD", "not the password");
    cairn_tests::repo::Output::of(cmd).code(exit::WRONG_PASSWORD);
    let alert: serde_json::Value = serde_json::from_slice(&std::fs::read(&notify).unwrap()).unwrap();
    assert_eq!(alert["ok"], false);
    assert!(alert["error"].as_str().unwrap().contains("password"), "{alert}");
}

/// Issue 16, item 2: two runs started at once do not both back up the same source.
#[test]
fn two_runs_at_once_back_a_source_up_once() {
    let repo = crate::repo();
    let copy = crate::repo();
    let src = repo.dir("src");
    let file = repo.scratch().join("policy.toml");
    let notify = repo.scratch().join("alert.json");
    let text = policy(&repo, &copy, &src, "sleep 2; echo slow dump", &notify);
    // The database source alone: the lock is what is under test.
    let text = text[..text.find("[[source]]\nname = \"files\"").unwrap()].to_string();
    std::fs::write(&file, text).unwrap();
    let start = || {
        let mut cmd = repo.command(args!["--json", "run", "--policy", &file]);
        cmd.env("CAIRN_TEST_NOW", "2026-01-01T00:00:00Z").stdout(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    assert_eq!(repo.snapshots().len(), 1, "the source was backed up once");
    let said = format!("{}{}", String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    assert!(said.contains("left to it") || said.matches("\"backup\"").count() == 1, "{said}");
}

/// Issue 16, item 3: `cairn schedule` starts `cairn run` as often as the policy's shortest
/// common interval, through systemd or cron.
#[test]
fn schedule_writes_a_timer_as_often_as_the_policy_needs() {
    let repo = crate::repo();
    let copy = crate::repo();
    let file = repo.scratch().join("policy.toml");
    std::fs::write(&file, policy(&repo, &copy, &repo.dir("src"), "true", &repo.scratch().join("n"))).unwrap();
    let units = repo.dir("units");
    repo.run(args!["schedule", "--policy", &file, "--systemd", &units]).success();
    let timer = std::fs::read_to_string(units.join("cairn-run.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=10800s"), "every 3 hours: {timer}");
    let service = std::fs::read_to_string(units.join("cairn-run.service")).unwrap();
    let exec = service.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.ends_with(&format!("run --policy {}", std::fs::canonicalize(&file).unwrap().display())), "{exec}");
    let cron = repo.run(args!["schedule", "--policy", &file, "--cron"]).success().stdout_text();
    assert!(cron.starts_with("0 */3 * * * "), "{cron}");
    repo.run(args!["schedule", "--policy", &file]).code(exit::USAGE);
}

/// Issue 16, items 2 and 4: a year of runs every two days (the time injected, nothing slept;
/// two days, not one, to keep CI fast) keeps every promise, and `status --policy` and its
/// metrics file say so; a missed week breaks the RPO and leaves gaps in the two-day tier, and
/// both say exactly that.
#[test]
fn a_simulated_year_keeps_the_policy_and_status_says_which_promise_breaks() {
    let repo = crate::repo();
    let copy = crate::repo();
    let src = repo.dir("src");
    let file = repo.scratch().join("policy.toml");
    let text = format!(
        r#"
[repository]
url = "{repo}"
[[copy]]
name = "offsite"
url = "{copy}"
max_lag = "24h"
[[source]]
name = "files"
paths = ["{src}"]
every = "2d"
rpo = "50h"
[retention]
tiers = ["2d:14d", "1w:4w", "1M:12M"]
[check]
read_data_subset = "1/7"
every = "2d"
[drill]
every = "14d"
rto = "1h"
"#,
        repo = repo.path().display(),
        copy = copy.path().display(),
        src = src.display(),
    );
    std::fs::write(&file, text).unwrap();
    let start: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
    let day = |n: i64| start + jiff::SignedDuration::from_hours(24 * n);
    let days = 366;
    for n in (0..days).step_by(2) {
        std::fs::write(src.join("ledger"), format!("day {n}\n").repeat(100)).unwrap();
        at(&repo, day(n), args!["-q", "run", "--policy", &file]).success();
    }
    let kept = repo.snapshots().len();
    assert!((12..=23).contains(&kept), "a year under 2d:14d, 1w:4w, 1M:12M keeps {kept} snapshots");
    assert_eq!(copy.snapshots().len(), kept, "the copy keeps what the primary keeps");

    let metrics = repo.scratch().join("cairn.prom");
    let status_at = |when: jiff::Timestamp| {
        at(&repo, when, args!["--json", "status", "--policy", &file, "--metrics-file", &metrics])
    };
    let now = day(days - 2) + jiff::SignedDuration::from_hours(2);
    let good = status_at(now);
    let json = good.success().json();
    let json_at_now = json.clone();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["sources"][0]["tier_gaps"], serde_json::json!([]), "{json}");
    assert_eq!(json["check"]["slices_covered"], 7, "the last seven checks read every slice: {json}");
    let prom = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "cairn_source_compliant{source=\"files\"} 1",
        "cairn_source_snapshot_age_seconds{source=\"files\"} 7200",
        "cairn_source_rpo_seconds{source=\"files\"} 180000",
        "cairn_copy_lag_seconds{copy=\"offsite\"} 0",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} not in:\n{prom}");
    }
    for name in [
        "cairn_drill_restore_seconds{source=\"files\"} ",
        "cairn_check_last_success_timestamp_seconds ",
        "cairn_run_last_success_timestamp_seconds ",
    ] {
        assert!(prom.lines().any(|l| l.starts_with(name)), "{name} not in:\n{prom}");
    }

    // The report shows the same figures, and renders in a real browser.
    let html = repo.scratch().join("report.html");
    at(&repo, now, args!["report", "--policy", &file, "--html", &html]).success();
    let dom = render(&html, &repo.scratch().join("report.png"));
    let attr = |name: &str| -> String {
        let at = dom.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("{name} not in the rendered report"));
        let rest = &dom[at + name.len() + 2..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let json = json_at_now;
    assert_eq!(attr("data-ok"), json["ok"].to_string());
    assert_eq!(attr("data-age-seconds"), json["sources"][0]["age_seconds"].to_string());
    assert_eq!(attr("data-lag-seconds"), json["copies"][0]["lag_seconds"].to_string());
    assert_eq!(attr("data-check-covered"), json["check"]["slices_covered"].to_string());
    assert_eq!(attr("data-restore-seconds"), json["drill"]["restore_seconds"][0][1].to_string());

    // A week without a run: the RPO is missed and the two-day tier has gaps, named.
    let late = status_at(day(days + 6));
    late.code(exit::FAILED);
    let json = late.json();
    let source = &json["sources"][0];
    assert_eq!(source["rpo_met"], false, "{json}");
    let gaps: Vec<&str> = source["tier_gaps"].as_array().unwrap().iter().map(|g| g["from"].as_str().unwrap()).collect();
    assert_eq!(
        gaps,
        ["2027-01-02T00:00:00Z", "2027-01-04T00:00:00Z", "2027-01-06T00:00:00Z"],
        "the whole two-day buckets missed (epoch-aligned, as forget counts them): {json}"
    );
    assert_eq!(json["check"]["ok"], false, "no check for a week: {json}");
    assert!(std::fs::read_to_string(&metrics).unwrap().contains("cairn_source_compliant{source=\"files\"} 0"));
}

/// Issue 16, item 5: `cairn erase` removes the paths from every snapshot of the repository and
/// of the copy, deletes their bytes in the same command, records it in both, and writes a
/// completion notice that verifies only unchanged; `status` counts an erasure that could not
/// finish against the deadline.
#[test]
fn erase_removes_paths_and_bytes_everywhere_and_proves_it() {
    let repo = crate::repo();
    let copy = crate::repo();
    let src = repo.dir("src");
    cairn_tests::data::write_random(&src.join("keep"), 1, 200_000);
    std::fs::create_dir_all(src.join("customers/4711")).unwrap();
    cairn_tests::data::write_random(&src.join("customers/4711/invoice.pdf"), 2, 3_000_000);
    let file = repo.scratch().join("policy.toml");
    let text = format!(
        "[repository]\nurl = \"{}\"\n[[copy]]\nname = \"offsite\"\nurl = \"{}\"\n[[source]]\nname = \"files\"\npaths = [\"{}\"]\nevery = \"1d\"\nrpo = \"26h\"\n[erasure]\ndeadline = \"60d\"\n",
        repo.path().display(),
        copy.path().display(),
        src.display()
    );
    std::fs::write(&file, text).unwrap();
    for day in ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"] {
        at(&repo, day, args!["-q", "run", "--policy", &file]).success();
    }
    let size = |r: &TestRepo| cairn_tests::data::size_of_tree(r.path());
    let (before, copy_before) = (size(&repo), size(&copy));
    let notice = repo.scratch().join("notice.json");
    let erase =
        args!["--json", "erase", "--policy", &file, "--request", "GDPR-17", "--path", "4711", "--notice", &notice];
    let out = at(&repo, "2026-01-03T00:00:00Z", erase);
    let record = out.success().json();
    for (n, target) in ["primary", "offsite"].iter().enumerate() {
        let step = &record["steps"][n];
        assert_eq!(step["target"], *target);
        assert_eq!(step["ok"], true, "{record}");
        assert_eq!(
            step["erasure"]["snapshots"].as_array().unwrap().len(),
            2,
            "both snapshots rewritten in {target}: {record}"
        );
        assert!(step["erasure"]["bytes_deleted_at"].is_string(), "{record}");
    }
    // No snapshot anywhere lists the path, the bytes are gone from storage, and both check clean.
    for r in [&repo, &copy] {
        // `find` exits 1 when nothing matches, as grep does.
        let found = r.run(args!["--json", "find", "invoice.pdf"]);
        assert_eq!(found.code(exit::FAILED).json(), serde_json::json!([]));
        r.run(args!["check", "--read-data"]).success();
    }
    assert!(size(&repo) + 2_900_000 < before, "the primary's packs still hold the bytes: {} → {}", before, size(&repo));
    assert!(size(&copy) + 2_900_000 < copy_before, "the copy's packs still hold the bytes");
    let kept = repo.run(args!["ls", "latest"]).success().stdout_text();
    assert!(kept.contains("/keep") && !kept.contains("4711"), "{kept}");

    // The record is in both repositories, and the notice verifies until it is changed.
    let listed = repo.run(args!["erase", "--policy", &file, "--list"]).success().stdout_text();
    assert!(listed.contains("request GDPR-17") && listed.contains("offsite"), "{listed}");
    assert!(std::fs::read_dir(copy.path().join("records")).unwrap().count() >= 1, "the copy holds its evidence");
    repo.run(args!["erase", "--policy", &file, "--verify-notice", &notice]).success();
    let text = std::fs::read_to_string(&notice).unwrap();
    assert!(text.contains("/src/customers/4711\""), "the erased directory is named: {text}");
    std::fs::write(&notice, text.replace("GDPR-17", "GDPR-18")).unwrap();
    repo.run(args!["erase", "--policy", &file, "--verify-notice", &notice]).code(exit::FAILED);

    // An erasure the copy could not take is pending, and overdue after the deadline.
    std::fs::rename(copy.path(), repo.scratch().join("copy-away")).unwrap();
    at(&repo, "2026-01-04T00:00:00Z", args!["erase", "--policy", &file, "--request", "GDPR-20", "--path", "keep"])
        .code(exit::FAILED)
        .stderr_has("error: erase offsite:");
    std::fs::rename(repo.scratch().join("copy-away"), copy.path()).unwrap();
    let status = |when: &str| at(&repo, when, args!["--json", "status", "--policy", &file]);
    let json = status("2026-01-05T00:00:00Z").json();
    assert_eq!(json["erasure"]["pending"][0]["request"], "GDPR-20", "{json}");
    assert_eq!(json["erasure"]["pending"][0]["overdue"], false);
    let json = status("2026-03-10T00:00:00Z").json();
    assert_eq!(json["erasure"]["pending"][0]["overdue"], true, "{json}");
    assert_eq!(json["erasure"]["ok"], false);
}

/// Renders `html` in headless Chromium (installed by scripts/chromium.sh; `CAIRN_TEST_CHROMIUM`
/// names another): a screenshot into `png`, which must hold a page, and the DOM as the browser
/// built it, returned.
fn render(html: &std::path::Path, png: &std::path::Path) -> String {
    let browser = std::env::var("CAIRN_TEST_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let run = |what: &str| {
        let out = std::process::Command::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400", what])
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap_or_else(|e| {
                panic!("{browser} could not be run ({e}): run scripts/chromium.sh, or set CAIRN_TEST_CHROMIUM")
            });
        assert!(out.status.success(), "{browser} {what}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&format!("--screenshot={}", png.display()));
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "the screenshot holds no page ({size} bytes)");
    run("--dump-dom")
}
