use super::*;

/// The policy of the issue that asked for policy files, as written there.
const EXAMPLE: &str = r#"
[repository]
url = "/srv/backup/repo"            # any repository URL
password_file = "/etc/cairn/password"
[[copy]]                             # off-site copies, zero or more
name = "offsite"
url = "s3://backups-eu/prod"
password_file = "/etc/cairn/offsite-password"
max_lag = "24h"
[[source]]
name = "shop-db"
command = ["pg_dump", "-h", "db", "shop"]
filename = "shop.sql"
every = "3h"
rpo = "6h"
[[source]]
name = "uploads"
paths = ["/srv/uploads"]
exclude = ["*.tmp"]
every = "1d"
rpo = "26h"
[[source]]
name = "orders-db"
postgres = { cluster = "main", args = ["-h", "/var/run/postgresql", "-U", "postgres"] }
every = "1d"
rpo = "5m"
[retention]
tiers = ["6h:1d", "1d:7d", "1w:4w", "1M:12M"]
[check]
read_data_subset = "1/7"
every = "1d"
[drill]
every = "7d"
rto = "4h"
[erasure]
deadline = "60d"
[notify]
on_failure = ["/usr/local/bin/page-oncall"]   # command run with a JSON summary on stdin
"#;

const H: u64 = 3600;

#[test]
fn the_example_policy_parses_as_written() {
    let p = Policy::parse(EXAMPLE).unwrap();
    assert_eq!(p.repository.url, "/srv/backup/repo");
    assert_eq!(p.repository.password_file.as_deref(), Some(std::path::Path::new("/etc/cairn/password")));
    assert_eq!(p.copies.len(), 1);
    assert_eq!(p.copies[0].max_lag, Some(Duration::from_secs(24 * H)));
    assert_eq!(p.sources.len(), 3);
    assert_eq!(
        p.sources[0].kind,
        SourceKind::Command {
            argv: vec!["pg_dump".into(), "-h".into(), "db".into(), "shop".into()],
            filename: "shop.sql".into()
        }
    );
    assert_eq!((p.sources[0].every, p.sources[0].rpo), (Duration::from_secs(3 * H), Duration::from_secs(6 * H)));
    assert_eq!(
        p.sources[1].kind,
        SourceKind::Paths { paths: vec!["/srv/uploads".into()], exclude: vec!["*.tmp".into()] }
    );
    assert_eq!(
        p.sources[2].kind,
        SourceKind::Postgres {
            cluster: "main".into(),
            args: vec!["-h".into(), "/var/run/postgresql".into(), "-U".into(), "postgres".into()],
            pg_bin: None
        }
    );
    assert_eq!(
        p.sources[2].rpo,
        Duration::from_secs(300),
        "a cluster's RPO may be shorter than its base backups' every"
    );
    assert_eq!(p.retention.iter().map(ToString::to_string).collect::<Vec<_>>(), ["6h:1d", "1d:7d", "1w:4w", "1M:12M"]);
    assert_eq!(p.check.unwrap().read_data, ReadData::Subset { n: 1, m: 7 });
    assert_eq!(p.drill.unwrap().rto, Duration::from_secs(4 * H));
    assert_eq!(p.erasure_deadline, Some(Duration::from_secs(60 * 24 * H)));
    assert_eq!(p.on_failure, ["/usr/local/bin/page-oncall"]);
    assert_eq!(p.shortest_every(), Duration::from_secs(3 * H));
}

/// `EXAMPLE` with the first occurrence of `from` replaced by `to`, parsed: the error.
fn mistake(from: &str, to: &str) -> PolicyError {
    assert!(EXAMPLE.contains(from), "{from}");
    Policy::parse(&EXAMPLE.replacen(from, to, 1)).unwrap_err()
}

/// The 1-based line of `EXAMPLE` that holds `needle`.
fn line_of(needle: &str) -> usize {
    EXAMPLE.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn every_mistake_names_its_line() {
    let e = mistake("every = \"3h\"", "evry = \"3h\"");
    assert_eq!(e.line, line_of("every = \"3h\""), "{e}");
    assert!(e.message.contains("unknown field `evry`"), "{e}");

    let e = mistake("rpo = \"26h\"", "rpo = \"26x\"");
    assert_eq!((e.line, e.column), (line_of("rpo = \"26h\""), 7), "{e}");
    assert!(e.message.contains("rpo") && e.message.contains("26x"), "{e}");

    let e = mistake("rpo = \"6h\"", "rpo = \"2h\"");
    assert_eq!(e.line, line_of("rpo = \"6h\""), "{e}");
    assert!(e.message.contains("could never be kept"), "{e}");

    let e = mistake("postgres = {", "paths = [\"/x\"]\npostgres = {");
    assert!(e.message.contains("one of `command`, `paths` or `postgres`"), "{e}");
    let e = mistake("cluster = \"main\"", "clustr = \"main\"");
    assert!(e.message.contains("unknown field `clustr`"), "{e}");

    let e = mistake("\"1w:4w\"", "\"1w:4q\"");
    assert_eq!(e.line, line_of("tiers ="), "{e}");
    assert!(e.message.contains("retention tier"), "{e}");

    let e = mistake("read_data_subset = \"1/7\"", "read_data_subset = \"8/7\"");
    assert_eq!(e.line, line_of("read_data_subset"), "{e}");

    let e = mistake("name = \"uploads\"", "name = \"shop-db\"");
    assert_eq!(e.line, line_of("name = \"uploads\""), "{e}");
    assert!(e.message.contains("a second source named `shop-db`"), "{e}");

    let e = mistake("paths = [\"/srv/uploads\"]", "paths = [\"/srv/uploads\"]\ncommand = [\"tar\"]");
    assert!(e.message.contains("not both"), "{e}");

    let e = mistake("filename = \"shop.sql\"\n", "");
    assert!(e.message.contains("needs a `filename`"), "{e}");

    let e = mistake("every = \"7d\"", "every = 7");
    assert_eq!(e.line, line_of("every = \"7d\""), "{e}");

    let e = mistake("url = \"s3://backups-eu/prod\"", "url = \"/srv/backup/repo\"");
    assert!(e.message.contains("another repository"), "{e}");

    let e = mistake("[drill]", "[drills]");
    assert_eq!(e.line, line_of("[drill]"), "{e}");

    let e = mistake("exclude = [\"*.tmp\"]", "exclude = [\"*.tmp\"]\ntenant = \"acme/eu\"");
    assert_eq!(e.line, line_of("exclude = [\"*.tmp\"]") + 1, "{e}");
    assert!(e.message.contains("source `uploads`") && e.message.contains("`/`"), "{e}");
}

#[test]
fn a_source_may_name_its_tenant() {
    let p = Policy::parse(&EXAMPLE.replacen("exclude = [\"*.tmp\"]", "exclude = [\"*.tmp\"]\ntenant = \"acme\"", 1))
        .unwrap();
    let tenants: Vec<Option<&str>> = p.sources.iter().map(|s| s.tenant.as_deref()).collect();
    assert_eq!(tenants, [None, Some("acme"), None]);
}

#[test]
fn a_policy_needs_a_repository_and_a_source() {
    let e = Policy::parse("[[source]]\nname = \"x\"\npaths = [\"/x\"]\nevery = \"1h\"\nrpo = \"2h\"\n").unwrap_err();
    assert!(e.message.contains("repository"), "{e}");
    let e = Policy::parse("[repository]\nurl = \"/r\"\n").unwrap_err();
    assert!(e.message.contains("no [[source]]"), "{e}");
}

/// The complete example of docs/POLICY.md parses, and says what the issue's example says.
#[test]
fn the_documented_policy_parses() {
    let doc = include_str!("../../../docs/POLICY.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    let documented = Policy::parse(&doc[start..end]).unwrap();
    assert_eq!(documented, Policy::parse(EXAMPLE).unwrap());
}
