//! WAL positions, segments and timeline histories, as PostgreSQL defines them.

use crate::format::wal::{WalKind, WalName};

/// Parses `X/Y` (hex), PostgreSQL's text form of a WAL position.
#[must_use]
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// A WAL position as PostgreSQL writes it (`0/2000028`).
#[must_use]
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The segment size at which WAL position `lsn` falls in segment file `file`: the one power of
/// two from 1 MiB to 1 GiB (PostgreSQL's range) that fits.
#[must_use]
pub fn segment_size_from(lsn: u64, file: &WalName) -> Option<u64> {
    (20..=30).map(|bits| 1u64 << bits).find(|&size| segment_of(lsn, size) == (file.log, file.seg))
}

/// The segment (`log`, `seg`) that holds WAL position `lsn`.
#[must_use]
pub fn segment_of(lsn: u64, segment_size: u64) -> (u32, u32) {
    let log = u32::try_from(lsn >> 32).unwrap_or(u32::MAX);
    let seg = u32::try_from((lsn & 0xFFFF_FFFF) / segment_size.max(1)).unwrap_or(u32::MAX);
    (log, seg)
}

/// A segment as one number (PostgreSQL's `XLogSegNo`).
#[must_use]
pub fn segment_number(position: (u32, u32), segment_size: u64) -> u64 {
    u64::from(position.0) * ((1u64 << 32) / segment_size.max(1)) + u64::from(position.1)
}

/// The segment numbered `n`, back as (`log`, `seg`).
#[must_use]
pub fn segment_position(n: u64, segment_size: u64) -> (u32, u32) {
    let per_log = ((1u64 << 32) / segment_size.max(1)).max(1);
    (u32::try_from(n / per_log).unwrap_or(u32::MAX), u32::try_from(n % per_log).unwrap_or(u32::MAX))
}

/// The segment file `n` of `timeline`.
#[must_use]
pub fn segment_name(timeline: u32, n: u64, segment_size: u64) -> WalName {
    let (log, seg) = segment_position(n, segment_size);
    WalName { kind: WalKind::Segment, timeline, log, seg, offset: 0 }
}

/// The segment after `name` on its timeline, for a cluster of `segment_size` segments.
#[must_use]
pub fn next_segment(name: &WalName, segment_size: u64) -> Option<WalName> {
    let n = segment_number(name.position(), segment_size).checked_add(1)?;
    Some(segment_name(name.timeline, n, segment_size))
}

/// Bytes at the start of a WAL segment: `XLogLongPageHeaderData` (magic u16, info u16, timeline
/// u32, page address u64, remaining length u32, padding, system identifier u64, segment size
/// u32, block size u32), in the server's byte order, read here as little-endian (x86-64 and
/// ARM servers; a big-endian server's segments read as foreign).
pub const LONG_HEADER: usize = 40;
/// `XLP_LONG_HEADER` in the info bits.
pub const XLP_LONG_HEADER: u16 = 0x0002;

/// What the first page of a WAL segment says of the cluster that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongHeader {
    /// The database system identifier.
    pub system_identifier: u64,
    /// The segment size, in bytes.
    pub segment_size: u64,
}

/// The long page header at the start of `data`; `None` if it has none (no long-header flag,
/// or a segment size that is not a power of two from 1 MiB to 1 GiB).
#[must_use]
pub fn long_header(data: &[u8]) -> Option<LongHeader> {
    let h = data.get(..LONG_HEADER)?;
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let segment_size = u64::from(u32_at(32));
    let sized = segment_size.is_power_of_two() && (1 << 20..=1 << 30).contains(&segment_size);
    (u16::from_le_bytes([h[2], h[3]]) & XLP_LONG_HEADER != 0 && sized)
        .then(|| LongHeader { system_identifier: u64::from(u32_at(24)) | (u64::from(u32_at(28)) << 32), segment_size })
}

/// One line of a timeline history file: `timeline` ended at `switch` (the next one began).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    /// The earlier timeline.
    pub timeline: u32,
    /// Where it ended.
    pub switch: u64,
}

/// Parses a timeline history file (`<parent>\t<X/Y>\t<reason>` per line; `#` comments).
#[must_use]
pub fn parse_history(text: &str) -> Option<Vec<Switch>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let timeline = fields.next()?.parse().ok()?;
        let switch = parse_lsn(fields.next()?)?;
        out.push(Switch { timeline, switch });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_segments() {
        assert_eq!(parse_lsn("0/2000028"), Some(0x2000028));
        assert_eq!(parse_lsn("A/FF000000"), Some(0xA_FF00_0000));
        assert_eq!(format_lsn(0xA_FF00_0000), "A/FF000000");
        assert_eq!(parse_lsn("nope"), None);
        let file = WalName::parse("000000010000000000000002").unwrap();
        assert_eq!(segment_size_from(0x2000028, &file), Some(16 << 20));
        let file = WalName::parse("000000010000000000000001").unwrap();
        assert_eq!(segment_size_from(0x2000028, &file), Some(32 << 20));
        let n = segment_number((1, 3), 16 << 20);
        assert_eq!(n, 256 + 3);
        assert_eq!(segment_position(n, 16 << 20), (1, 3));
        assert_eq!(segment_name(2, 255, 16 << 20).to_string(), "0000000200000000000000FF");
        let ff = WalName::parse("0000000200000000000000FF").unwrap();
        assert_eq!(next_segment(&ff, 16 << 20).unwrap().to_string(), "000000020000000100000000");
        assert_eq!(next_segment(&ff, 1 << 20).unwrap().to_string(), "000000020000000000000100");
        let last = WalName::parse("00000002000000000000003F").unwrap();
        assert_eq!(next_segment(&last, 64 << 20).unwrap().to_string(), "000000020000000100000000");
        assert_eq!(
            parse_history("1\t0/3000000\tno recovery target specified\n\n2\t0/5000A0\tbefore 2026\n"),
            Some(vec![Switch { timeline: 1, switch: 0x300_0000 }, Switch { timeline: 2, switch: 0x50_00A0 }])
        );
    }
}
