//! `cairn report --policy --html`: one self-contained HTML page (no script, no network: inline
//! SVG and CSS) that shows whether a policy was kept over the last year, from the same status
//! `status --policy` computes and the run records behind it.
//!
//! Every figure that `status --json` also gives is written with its exact value in a `data-`
//! attribute beside the human form, so a test (or a person) can hold the two side by side; the
//! whole status is embedded too, as JSON in an inert `<script type="application/json">`.

use std::fmt::Write as _;

use crate::format::record::{RunRecord, StepKind};
use crate::format::snapshot::Snapshot;
use crate::foundation::id::SnapshotId;
use crate::policy::Policy;
use crate::policy::status::PolicyStatus;

/// How far back the charts reach.
const YEAR: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 366);
const WIDTH: f64 = 900.0;

/// The report as one HTML document.
#[must_use]
pub fn html(
    policy: &Policy,
    status: &PolicyStatus,
    snapshots: &[(SnapshotId, Snapshot)],
    records: &[RunRecord],
) -> String {
    let now = status.now;
    let from = now - YEAR;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cairn policy report: {url}</title>\n<style>{CSS}</style></head><body>\n<h1>Backup policy report</h1>\n<p class=\"meta\">Repository <code>{url}</code>, as of <time data-now=\"{now}\">{now}</time>.</p>",
        url = esc(&policy.repository.url),
    );
    let verdict = if status.ok { "every promise is kept" } else { "the policy is NOT kept" };
    let _ = writeln!(
        h,
        "<h2 id=\"summary\" class=\"{}\" data-ok=\"{}\">Summary: {verdict}</h2>\n<table><tr><th>promise</th><th>status</th><th>measured</th></tr>",
        class(status.ok),
        status.ok
    );
    for s in &status.sources {
        let age = s.age_seconds.map_or_else(|| "no snapshot".to_string(), |a| format!("{} old", human_secs(a)));
        let gaps =
            if s.tier_gaps.is_empty() { String::new() } else { format!(", {} tier buckets empty", s.tier_gaps.len()) };
        row(
            &mut h,
            &format!("source <b>{}</b>: RPO {} and retention tiers", esc(&s.name), human_secs(s.rpo_seconds as i64)),
            s.ok,
            &format!(
                "<span data-source=\"{}\" data-age-seconds=\"{}\">{age}</span>{gaps}",
                esc(&s.name),
                s.age_seconds.map_or(-1, |a| a)
            ),
        );
    }
    for c in &status.copies {
        let measured = match (&c.error, c.lag_seconds) {
            (Some(e), _) => format!("cannot be read: {}", esc(e)),
            (None, lag) => format!(
                "<span data-copy=\"{}\" data-lag-seconds=\"{}\">lag {}</span>, {} snapshots behind",
                esc(&c.name),
                lag.unwrap_or(-1),
                human_secs(lag.unwrap_or(0)),
                c.missing
            ),
        };
        let max = c.max_lag_seconds.map_or_else(|| "no limit".into(), |m| human_secs(m as i64));
        row(&mut h, &format!("copy <b>{}</b> within {max}", esc(&c.name)), c.ok, &measured);
    }
    if let Some(c) = &status.check {
        row(
            &mut h,
            &format!("check every {}, every slice each cycle", human_secs(c.every_seconds as i64)),
            c.ok,
            &format!(
                "<span data-check-covered=\"{}\" data-check-slices=\"{}\">{} of {} slices</span>; last success {}",
                c.slices_covered,
                c.slices,
                c.slices_covered,
                c.slices,
                c.last_success.map_or_else(|| "never".into(), |t| t.to_string())
            ),
        );
    }
    if let Some(d) = &status.drill {
        let times: Vec<String> = d
            .restore_seconds
            .iter()
            .map(|(s, secs)| {
                format!(
                    "<span data-drill-source=\"{}\" data-restore-seconds=\"{secs}\">{} {secs:.1} s</span>",
                    esc(s),
                    esc(s)
                )
            })
            .collect();
        row(
            &mut h,
            &format!(
                "restore drill every {} within RTO {}",
                human_secs(d.every_seconds as i64),
                human_secs(d.rto_seconds as i64)
            ),
            d.ok,
            &if times.is_empty() { "no drill yet".to_string() } else { times.join(", ") },
        );
    }
    if let Some(e) = &status.erasure {
        let overdue = e.pending.iter().filter(|p| p.overdue).count();
        row(
            &mut h,
            &format!("erasure within {}", human_secs(e.deadline_seconds as i64)),
            e.ok,
            &format!(
                "<span data-erasure-pending=\"{}\">{} requests, {} pending, {overdue} overdue</span>",
                e.pending.len(),
                e.requests,
                e.pending.len()
            ),
        );
    }
    h.push_str("</table>\n");

    for source in &policy.sources {
        let _ = writeln!(h, "<h2>Source {}</h2>", esc(&source.name));
        let mine: Vec<jiff::Timestamp> =
            snapshots.iter().filter(|(_, s)| s.tags.contains(&source.name)).map(|(_, s)| s.time).collect();
        h.push_str("<h3>Snapshots kept, by retention tier</h3>\n");
        h.push_str(&timeline(policy, &mine, from, now));
        let backups: Vec<jiff::Timestamp> = records
            .iter()
            .filter(|r| {
                r.steps
                    .iter()
                    .any(|s| s.kind == StepKind::Backup && s.target == source.name && s.ok && s.snapshot.is_some())
            })
            .map(|r| r.started)
            .filter(|t| *t >= from)
            .collect();
        let _ = writeln!(
            h,
            "<h3>Recovery point achieved (age of the newest backup; RPO {})</h3>",
            human_secs(source.rpo.as_secs() as i64)
        );
        h.push_str(&rpo_chart(&backups, source.rpo.as_secs_f64(), from, now));
    }
    if !status.copies.is_empty() {
        h.push_str("<h2>Copies</h2>\n<table><tr><th>copy</th><th>last successful copy</th><th>lag now</th></tr>\n");
        for c in &status.copies {
            let last =
                last_ok(records, StepKind::Copy, Some(&c.name)).map_or_else(|| "never".into(), |t| t.to_string());
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{last}</td><td>{}</td></tr>",
                esc(&c.name),
                c.lag_seconds.map_or_else(|| "unknown".into(), human_secs)
            );
        }
        h.push_str("</table>\n");
    }
    if status.check.is_some() {
        h.push_str("<h2>Checks</h2>\n<table><tr><th>run</th><th>slice</th><th>outcome</th></tr>\n");
        for (t, s) in steps_of(records, StepKind::Check).iter().rev().take(14) {
            let slice = s.slice.map_or_else(|| "all".into(), |(n, m)| format!("{n}/{m}"));
            let _ = writeln!(
                h,
                "<tr><td>{t}</td><td>{slice}</td><td class=\"{}\">{}</td></tr>",
                class(s.ok),
                esc(&s.message)
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(d) = &status.drill {
        h.push_str("<h2>Restore drills against the RTO</h2>\n");
        let drills: Vec<(jiff::Timestamp, f64, bool)> = steps_of(records, StepKind::Drill)
            .into_iter()
            .filter(|(t, _)| *t >= from)
            .map(|(t, s)| (t, s.seconds, s.ok))
            .collect();
        h.push_str(&drill_chart(&drills, d.rto_seconds as f64, from, now));
    }
    let erasures = steps_of(records, StepKind::Erase);
    if status.erasure.is_some() || !erasures.is_empty() {
        h.push_str("<h2>Erasure log</h2>\n<table><tr><th>recorded</th><th>request</th><th>repository</th><th>snapshots</th><th>paths</th><th>bytes deleted</th></tr>\n");
        for (t, s) in &erasures {
            let Some(e) = &s.erasure else { continue };
            let gone = match (e.bytes_deleted_at, e.held.len()) {
                (Some(t), _) => t.to_string(),
                (None, 0) => "<b>not yet</b>".into(),
                (None, held) => format!("<b>{held} objects held by the storage</b> (unreadable)"),
            };
            // A tenant shredded: every backup of it, unreadable from when its key was destroyed.
            let (snapshots, paths) = match &e.tenant {
                Some(tenant) => (
                    format!("tenant {} shredded", esc(tenant)),
                    e.key_destroyed_at.map_or_else(|| "no key there".into(), |k| format!("key destroyed {k}")),
                ),
                None => (e.snapshots.len().to_string(), e.files.len().to_string()),
            };
            let _ = writeln!(
                h,
                "<tr><td>{t}</td><td>{}</td><td>{}</td><td>{snapshots}</td><td>{paths}</td><td class=\"{}\">{gone}</td></tr>",
                esc(&e.request),
                esc(&s.target),
                class(e.bytes_deleted_at.is_some())
            );
        }
        h.push_str("</table>\n");
    }
    let json = serde_json::to_string(status).unwrap_or_default().replace("</", "<\\/");
    let _ = writeln!(h, "<script type=\"application/json\" id=\"cairn-status\">{json}</script>\n</body></html>");
    h
}

const CSS: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
.ok{color:#176b2c}.fail{color:#b00020;font-weight:bold}.meta{color:#555}svg{background:#fafafa;border:1px solid #ddd}\
text{font-size:11px;fill:#444}";

fn class(ok: bool) -> &'static str {
    if ok { "ok" } else { "fail" }
}

fn row(h: &mut String, promise: &str, ok: bool, measured: &str) {
    let _ = writeln!(
        h,
        "<tr><td>{promise}</td><td class=\"{}\">{}</td><td>{measured}</td></tr>",
        class(ok),
        if ok { "kept" } else { "NOT kept" }
    );
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn human_secs(s: i64) -> String {
    if s.abs() >= 2 * 86_400 {
        format!("{:.1} d", s as f64 / 86_400.0)
    } else if s.abs() >= 3600 {
        format!("{:.1} h", s as f64 / 3600.0)
    } else {
        format!("{s} s")
    }
}

fn x_of(t: jiff::Timestamp, from: jiff::Timestamp, now: jiff::Timestamp) -> f64 {
    let span = now.duration_since(from).as_secs_f64().max(1.0);
    (t.duration_since(from).as_secs_f64() / span).clamp(0.0, 1.0) * WIDTH
}

fn steps_of(records: &[RunRecord], kind: StepKind) -> Vec<(jiff::Timestamp, &crate::format::record::StepRecord)> {
    records.iter().flat_map(|r| r.steps.iter().filter(move |s| s.kind == kind).map(move |s| (r.started, s))).collect()
}

fn last_ok(records: &[RunRecord], kind: StepKind, target: Option<&str>) -> Option<jiff::Timestamp> {
    steps_of(records, kind)
        .into_iter()
        .filter(|(_, s)| s.ok && target.is_none_or(|t| s.target == t))
        .map(|(t, _)| t)
        .max()
}

/// A row per retention tier: each kept snapshot as a tick, in the row of the longest tier
/// that keeps it (the newest in its bucket, within the tier's reach).
fn timeline(policy: &Policy, times: &[jiff::Timestamp], from: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let rows = policy.retention.len().max(1);
    let height = 24.0 * rows as f64 + 24.0;
    let mut svg = format!("<svg width=\"{}\" height=\"{height}\" role=\"img\">", WIDTH + 80.0);
    let newest = times.iter().max().copied();
    let mut placed = vec![false; times.len()];
    for (row, tier) in policy.retention.iter().enumerate().rev() {
        let y = 12.0 + 24.0 * row as f64;
        let _ = write!(svg, "<text x=\"{}\" y=\"{}\">{tier}</text>", WIDTH + 6.0, y + 4.0);
        let Some(newest) = newest else { continue };
        let reach = tier.reach_from(newest);
        let mut best: std::collections::HashMap<i128, usize> = std::collections::HashMap::new();
        for (i, t) in times.iter().enumerate().filter(|(_, t)| **t > reach) {
            let b = tier.bucket_of(*t);
            if best.get(&b).is_none_or(|&j| times[j] < *t) {
                best.insert(b, i);
            }
        }
        for &i in best.values() {
            if placed[i] || times[i] < from {
                continue;
            }
            placed[i] = true;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{}\" width=\"3\" height=\"16\" fill=\"hsl({},60%,40%)\"><title>{}</title></rect>",
                x_of(times[i], from, now),
                y - 8.0,
                40 + 70 * row,
                times[i]
            );
        }
    }
    let _ = writeln!(
        svg,
        "<text x=\"0\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text></svg>",
        height - 4.0,
        from.strftime("%Y-%m-%d"),
        WIDTH,
        height - 4.0,
        now.strftime("%Y-%m-%d")
    );
    svg
}

/// The age of the newest backup over time, a saw-tooth, against the RPO line.
fn rpo_chart(backups: &[jiff::Timestamp], rpo: f64, from: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let height = 120.0;
    let mut sorted = backups.to_vec();
    sorted.sort();
    // The worst age reached between two backups, for the vertical scale.
    let mut worst = rpo;
    for w in sorted.windows(2) {
        worst = worst.max(w[1].duration_since(w[0]).as_secs_f64());
    }
    if let Some(last) = sorted.last() {
        worst = worst.max(now.duration_since(*last).as_secs_f64());
    }
    let y = |age: f64| height - 10.0 - (age / (worst * 1.1)) * (height - 20.0);
    let mut points = String::new();
    for (i, t) in sorted.iter().enumerate() {
        let next = sorted.get(i + 1).copied().unwrap_or(now);
        let _ = write!(
            points,
            "{:.1},{:.1} {:.1},{:.1} ",
            x_of(*t, from, now),
            y(0.0),
            x_of(next, from, now),
            y(next.duration_since(*t).as_secs_f64())
        );
    }
    format!(
        "<svg width=\"{}\" height=\"{height}\" role=\"img\"><line x1=\"0\" x2=\"{WIDTH}\" y1=\"{r:.1}\" y2=\"{r:.1}\" stroke=\"#b00020\" stroke-dasharray=\"4\"/><text x=\"{}\" y=\"{:.1}\">RPO</text><polyline fill=\"none\" stroke=\"#1f5fa8\" points=\"{points}\"/></svg>\n",
        WIDTH + 80.0,
        WIDTH + 6.0,
        y(rpo) + 4.0,
        r = y(rpo)
    )
}

/// Each drill's restore time as a bar, against the RTO line.
fn drill_chart(
    drills: &[(jiff::Timestamp, f64, bool)],
    rto: f64,
    from: jiff::Timestamp,
    now: jiff::Timestamp,
) -> String {
    let height = 120.0;
    let top = drills.iter().map(|d| d.1).fold(rto, f64::max) * 1.1;
    let y = |secs: f64| height - 10.0 - (secs / top) * (height - 20.0);
    let mut svg = format!(
        "<svg width=\"{}\" height=\"{height}\" role=\"img\"><line x1=\"0\" x2=\"{WIDTH}\" y1=\"{r:.1}\" y2=\"{r:.1}\" stroke=\"#b00020\" stroke-dasharray=\"4\"/><text x=\"{}\" y=\"{:.1}\">RTO</text>",
        WIDTH + 80.0,
        WIDTH + 6.0,
        y(rto) + 4.0,
        r = y(rto)
    );
    for (t, secs, ok) in drills {
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"4\" height=\"{:.1}\" fill=\"{}\"><title>{t}: {secs:.1} s</title></rect>",
            x_of(*t, from, now),
            y(*secs),
            (height - 10.0 - y(*secs)).max(1.0),
            if *ok { "#176b2c" } else { "#b00020" }
        );
    }
    svg.push_str("</svg>\n");
    svg
}
