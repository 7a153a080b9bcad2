//! Real `pg_dump` output of a pgbench database, made on a PostgreSQL server the caller names:
//! the one dataset no generator here writes.
//!
//! [`dump_series`] creates a database, fills it with `pgbench -i` at a given scale, dumps it
//! (day 0), runs pgbench's default transactions for a while, dumps it again (day 1), and drops
//! the database. The two dumps are a series the harness backs up from standard input.
//!
//! pgbench leaves its `filler` columns (`char(84)` in accounts and tellers, `char(88)` in
//! branches) blank, so every account row of a dump is its numbers and 84 spaces: a dump that
//! compresses and deduplicates far better than real data would. [`Filler::RowText`] gives each
//! row text of its own, written by the server after `pgbench -i` (SQL below), so the dump's
//! text differs row to row while its size stays the same: a `char(n)` column is `n` characters
//! either way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

/// A PostgreSQL server to make real dumps with: its client programs' directory, address and
/// user (who may create databases).
#[derive(Debug, Clone)]
pub struct Postgres {
    /// Where `pgbench`, `pg_dump`, `psql`, `createdb` and `dropdb` are.
    pub bin: PathBuf,
    /// Host or socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
}

impl Postgres {
    /// `program` (one of the client programs) with the server's address and user.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.args(["-h", &self.host, "-p", &self.port.to_string(), "-U", &self.user]);
        c
    }
}

/// What the filler columns hold in the dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filler {
    /// Blank, as `pgbench -i` leaves them (the `pgbench` dataset).
    Blank,
    /// Text of its own in every row (the `pgbench-text` dataset): 84 (branches: 88) hex digits,
    /// the MD5s of the row's key, of the key + 1,000,000,007 and of its negation, cut to the
    /// column's width. Deterministic, different in every row, and hex text compresses about
    /// 2:1, as text columns do, rather than to nothing.
    RowText,
}

impl Filler {
    /// The dataset's name in the harness and the report.
    #[must_use]
    pub fn dataset(self) -> &'static str {
        match self {
            Filler::Blank => "pgbench",
            Filler::RowText => "pgbench-text",
        }
    }

    /// What the report says the filler columns hold.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Filler::Blank => "blank filler (as `pgbench -i` writes it)",
            Filler::RowText => {
                "every row's filler set after `pgbench -i` to text of its own (84 hex digits: MD5s of the row's key, done in SQL on the server)"
            }
        }
    }

    /// SQL run after `pgbench -i`, one statement per `psql -c` (`VACUUM` cannot run inside the
    /// transaction that one `-c` of several statements would be).
    fn statements(self) -> Vec<String> {
        match self {
            Filler::Blank => Vec::new(),
            Filler::RowText => {
                let text = |key: &str, width: u32| {
                    format!("left(md5({key}::text) || md5(({key} + 1000000007)::text) || md5((-{key})::text), {width})")
                };
                vec![
                    format!("UPDATE pgbench_accounts SET filler = {}", text("aid", 84)),
                    format!("UPDATE pgbench_tellers SET filler = {}", text("tid", 84)),
                    format!("UPDATE pgbench_branches SET filler = {}", text("bid", 88)),
                    // The update left every row's old version behind: rewrite the tables so they
                    // are as compact as `pgbench -i` leaves them, and the transactions that
                    // follow (and so the next dump's row order) meet the same heap as in the
                    // blank series.
                    "VACUUM (FULL, ANALYZE) pgbench_accounts, pgbench_tellers, pgbench_branches".into(),
                ]
            }
        }
    }
}

/// The pgbench scale whose dump is about `bytes` / 2 (scale 1 dumps to about 10 MiB of SQL).
#[must_use]
pub fn scale_for(bytes: u64) -> u64 {
    (bytes / 2 / (10 << 20)).max(1)
}

/// Makes the two dumps in `dir` (`day-00.sql`, `day-01.sql`) from a fresh database `db` at
/// `scale` with `filler`, `seconds` of pgbench's default transactions (2 clients) between them,
/// and drops the database, whether or not the dumps were made. Returns each dump with its length.
///
/// # Errors
/// A client program that fails (with its standard error), or I/O.
pub fn dump_series(
    pg: &Postgres,
    db: &str,
    filler: Filler,
    scale: u64,
    seconds: u64,
    dir: &Path,
) -> Result<Vec<(PathBuf, u64)>> {
    fs::create_dir_all(dir)?;
    let mut create = pg.command("createdb");
    create.arg(db);
    run(create, "createdb")?;
    let result = (|| -> Result<Vec<(PathBuf, u64)>> {
        let mut init = pg.command("pgbench");
        init.args(["-i", "-q", "-s", &scale.to_string(), db]);
        run(init, "pgbench -i")?;
        let statements = filler.statements();
        if !statements.is_empty() {
            let mut psql = pg.command("psql");
            psql.args(["-q", "-v", "ON_ERROR_STOP=1", "-d", db]);
            for s in &statements {
                psql.args(["-c", s]);
            }
            run(psql, "psql (filler text)")?;
        }
        let mut files = Vec::new();
        for day in 0..2 {
            if day > 0 {
                let mut load = pg.command("pgbench");
                load.args(["-c", "2", "-j", "2", "-T", &seconds.to_string(), db]);
                run(load, "pgbench")?;
            }
            let path = dir.join(format!("day-{day:02}.sql"));
            let mut dump = pg.command("pg_dump");
            dump.args(["-f"]).arg(&path).arg(db);
            run(dump, "pg_dump")?;
            let n = fs::metadata(&path)?.len();
            files.push((path, n));
        }
        Ok(files)
    })();
    let mut drop = pg.command("dropdb");
    drop.arg(db);
    let dropped = run(drop, "dropdb");
    let files = result?;
    dropped?;
    Ok(files)
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c.stdin(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    ensure!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_row_text_rewrites_the_filler() {
        assert!(Filler::Blank.statements().is_empty());
        let sql = Filler::RowText.statements();
        assert!(sql[0].starts_with("UPDATE pgbench_accounts SET filler = left(md5(aid::text)"), "{}", sql[0]);
        assert!(sql[0].ends_with(", 84)") && sql[2].ends_with(", 88)"), "{sql:?}");
        assert!(sql.last().is_some_and(|s| s.starts_with("VACUUM (FULL")), "{sql:?}");
        assert_ne!(Filler::Blank.dataset(), Filler::RowText.dataset());
    }

    #[test]
    fn scale_is_half_the_dump_size_at_least_one() {
        assert_eq!(scale_for(2 << 20), 1);
        assert_eq!(scale_for(1 << 30), 51);
    }
}
