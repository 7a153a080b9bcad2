//! Rendering rows as `COPY` text: hand-rolled number and time formatting, because this runs for
//! every field of millions of rows.

use super::vocabulary::*;
use super::{Ctx, Row};
use crate::rng::Rng;

fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn pad(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut v = n;
    for i in (0..width).rev() {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&tmp[..width]);
}

fn money(out: &mut Vec<u8>, cents: u64) {
    num(out, cents / 100);
    out.push(b'.');
    pad(out, cents % 100, 2);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00`, as PostgreSQL prints `timestamptz` in UTC.
pub(super) fn timestamp(out: &mut Vec<u8>, unix: i64, micros: u64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400) as u64;
    // Civil date from days since 1970 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    pad(out, y as u64, 4);
    out.push(b'-');
    pad(out, m as u64, 2);
    out.push(b'-');
    pad(out, d as u64, 2);
    out.push(b' ');
    pad(out, secs / 3600, 2);
    out.push(b':');
    pad(out, secs / 60 % 60, 2);
    out.push(b':');
    pad(out, secs % 60, 2);
    if micros > 0 {
        out.push(b'.');
        pad(out, micros, 6);
    }
    out.extend_from_slice(b"+00");
}

fn lower_ascii(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            'a'..='z' | '0'..='9' => out.push(c as u8),
            'A'..='Z' => out.push(c.to_ascii_lowercase() as u8),
            'ü' => out.extend_from_slice(b"ue"),
            'ö' | 'ø' => out.extend_from_slice(b"oe"),
            'ä' => out.extend_from_slice(b"ae"),
            'é' | 'ë' => out.push(b'e'),
            'ś' => out.push(b's'),
            _ => {}
        }
    }
}

fn hex(out: &mut Vec<u8>, mut v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    for i in (0..digits).rev() {
        tmp[i] = HEX[(v & 15) as usize];
        v >>= 4;
    }
    out.extend_from_slice(&tmp[..digits]);
}

fn uuid(out: &mut Vec<u8>, rng: &mut Rng) {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    hex(out, a >> 32, 8);
    out.push(b'-');
    hex(out, (a >> 16) & 0xFFFF, 4);
    out.extend_from_slice(b"-4");
    hex(out, a & 0xFFF, 3);
    out.push(b'-');
    hex(out, 0x8000 | ((b >> 48) & 0x3FFF), 4);
    out.push(b'-');
    hex(out, b & 0xFFFF_FFFF_FFFF, 12);
}

fn words(out: &mut Vec<u8>, rng: &mut Rng, n: u64) {
    for i in 0..n {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(rng.pick(WORDS).as_bytes());
    }
}

fn sku(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"SKU-");
    let letters = [b'A' + (id % 26) as u8, b'A' + (id / 26 % 26) as u8];
    out.extend_from_slice(&letters);
    pad(out, id % 100, 2);
    out.push(b'-');
    pad(out, id.wrapping_mul(7919) % 10_000, 4);
}

fn tab(out: &mut Vec<u8>) {
    out.push(b'\t');
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\\N");
}

// ---------------------------------------------------------------------------------------------
// Rows

pub(super) fn render_customer(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
    let mut base = ctx.base(row);
    let mut v = ctx.version(row);
    let first = *base.pick(FIRST);
    let last = *base.pick(LAST);
    let (country, cities, _) = *base.pick(COUNTRIES);
    num(out, row.id);
    tab(out);
    out.extend_from_slice(first.as_bytes());
    tab(out);
    out.extend_from_slice(last.as_bytes());
    tab(out);
    lower_ascii(out, first);
    out.push(*base.pick(b"._."));
    lower_ascii(out, last);
    if base.chance(0.6) {
        num(out, base.below(9999));
    }
    out.push(b'@');
    // An e-mail change is a rare update.
    let domain = if row.version > 0 && v.chance(0.05) { *v.pick(DOMAINS) } else { *base.pick(DOMAINS) };
    out.extend_from_slice(domain.as_bytes());
    tab(out);
    if v.chance(0.85) {
        out.push(b'+');
        num(out, base.range(1, 99));
        out.push(b' ');
        num(out, base.range(100_000_000, 999_999_999));
    } else {
        null(out);
    }
    tab(out);
    out.extend_from_slice(country.as_bytes());
    tab(out);
    out.extend_from_slice(base.pick(cities).as_bytes());
    tab(out);
    let created = ctx.created(row, &mut base);
    timestamp(out, created, base.below(1_000_000));
    tab(out);
    timestamp(out, ctx.written(row, created, &mut v), v.below(1_000_000));
    tab(out);
    out.extend_from_slice(v.pick(CUSTOMER_STATUS).as_bytes());
    tab(out);
    money(out, v.log_uniform(0, 2_000_000) + u64::from(row.version) * 4_999);
    tab(out);
    out.extend_from_slice(b"{\"lang\": \"");
    out.extend_from_slice(v.pick(LANGS).as_bytes());
    out.extend_from_slice(b"\", \"theme\": \"");
    out.extend_from_slice(if v.chance(0.4) { b"dark" } else { b"light" });
    out.extend_from_slice(b"\", \"newsletter\": ");
    out.extend_from_slice(if v.chance(0.3) { b"true" } else { b"false" });
    if v.chance(0.5) {
        out.extend_from_slice(b", \"notifications\": {\"sms\": ");
        out.extend_from_slice(if v.chance(0.2) { b"true" } else { b"false" });
        out.extend_from_slice(b", \"email\": ");
        out.extend_from_slice(if v.chance(0.7) { b"true" } else { b"false" });
        out.push(b'}');
    }
    if v.chance(0.3) {
        out.extend_from_slice(b", \"tags\": [");
        let n = v.range(1, 3);
        for i in 0..n {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.push(b'"');
            out.extend_from_slice(v.pick(&["vip", "b2b", "wholesale", "churn-risk", "beta", "reseller"]).as_bytes());
            out.push(b'"');
        }
        out.push(b']');
    }
    if v.chance(0.25) {
        out.extend_from_slice(b", \"referral_code\": \"");
        hex(out, base.next_u64(), 10);
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

pub(super) fn render_product(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
    let mut base = ctx.base(row);
    let mut v = ctx.version(row);
    num(out, row.id);
    tab(out);
    sku(out, row.id);
    tab(out);
    let adjective = *base.pick(&WORDS[..25]);
    let mut cap = adjective.as_bytes().to_vec();
    cap[0] = cap[0].to_ascii_uppercase();
    out.extend_from_slice(&cap);
    out.push(b' ');
    out.extend_from_slice(base.pick(NOUNS).as_bytes());
    out.extend_from_slice(b" ");
    out.push(b'A' + base.below(26) as u8);
    num(out, base.range(1, 999));
    tab(out);
    out.extend_from_slice(base.pick(CATEGORIES).as_bytes());
    tab(out);
    money(out, base.log_uniform(199, 99_999) + v.below(500));
    tab(out);
    num(out, v.below(5000));
    tab(out);
    let n = base.range(15, 80);
    words(out, &mut base, n);
    out.push(b'.');
    tab(out);
    out.extend_from_slice(b"{\"color\": \"");
    out.extend_from_slice(base.pick(COLORS).as_bytes());
    out.extend_from_slice(b"\", \"material\": \"");
    out.extend_from_slice(base.pick(MATERIALS).as_bytes());
    out.extend_from_slice(b"\", \"weight_g\": ");
    num(out, base.range(20, 25_000));
    out.extend_from_slice(b", \"dimensions_mm\": [");
    num(out, base.range(10, 1200));
    out.extend_from_slice(b", ");
    num(out, base.range(10, 800));
    out.extend_from_slice(b", ");
    num(out, base.range(5, 600));
    out.extend_from_slice(b"], \"rating\": ");
    num(out, v.range(1, 4));
    out.push(b'.');
    num(out, v.below(10));
    out.extend_from_slice(b", \"reviews\": ");
    num(out, v.below(4000));
    out.extend_from_slice(b"}\t");
    let created = ctx.created(row, &mut base);
    timestamp(out, ctx.written(row, created, &mut v), v.below(1_000_000));
    out.push(b'\n');
}

pub(super) fn render_order(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
    let mut base = ctx.base(row);
    let mut v = ctx.version(row);
    num(out, row.id);
    tab(out);
    num(out, base.range(1, ctx.customers.max(1)));
    tab(out);
    // Orders move forward through their statuses with each update.
    let start = base.below(3) as usize;
    let status = ORDER_STATUS[(start + row.version as usize * 2).min(4) + usize::from(v.chance(0.03))];
    out.extend_from_slice(status.as_bytes());
    tab(out);
    let (_, cities, currency) = *base.pick(COUNTRIES);
    out.extend_from_slice(currency.as_bytes());
    tab(out);
    let items = base.range(1, 5);
    let mut subtotal = 0;
    let mut items_json = Vec::with_capacity(80 * items as usize);
    items_json.push(b'[');
    for i in 0..items {
        if i > 0 {
            items_json.extend_from_slice(b", ");
        }
        let qty = base.log_uniform(1, 12);
        let price = base.log_uniform(199, 49_999);
        subtotal += qty * price;
        items_json.extend_from_slice(b"{\"sku\": \"");
        sku(&mut items_json, base.range(1, ctx.products.max(1)));
        items_json.extend_from_slice(b"\", \"qty\": ");
        num(&mut items_json, qty);
        items_json.extend_from_slice(b", \"unit_price\": \"");
        money(&mut items_json, price);
        items_json.extend_from_slice(b"\"}");
    }
    items_json.push(b']');
    let tax = subtotal * base.range(5, 25) / 100;
    money(out, subtotal);
    tab(out);
    money(out, tax);
    tab(out);
    money(out, subtotal + tax);
    tab(out);
    let created = ctx.created(row, &mut base);
    timestamp(out, created, base.below(1_000_000));
    tab(out);
    if matches!(status, "shipped" | "delivered") {
        timestamp(out, ctx.written(row, created, &mut v) + 3600, v.below(1_000_000));
    } else {
        null(out);
    }
    tab(out);
    num(out, base.range(1, 250));
    out.push(b' ');
    out.extend_from_slice(base.pick(STREETS).as_bytes());
    out.extend_from_slice(b", ");
    pad(out, base.below(100_000), 5);
    out.push(b' ');
    out.extend_from_slice(base.pick(cities).as_bytes());
    tab(out);
    out.extend_from_slice(&items_json);
    tab(out);
    if v.chance(0.15) {
        let n = v.range(3, 12);
        words(out, &mut v, n);
    } else {
        null(out);
    }
    out.push(b'\n');
}

pub(super) fn render_event(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
    let mut base = ctx.base(row);
    num(out, row.id);
    tab(out);
    if base.chance(0.8) {
        num(out, base.range(1, ctx.customers.max(1)));
    } else {
        null(out);
    }
    tab(out);
    uuid(out, &mut base);
    tab(out);
    let kind = *base.pick(EVENT_KINDS);
    out.extend_from_slice(kind.as_bytes());
    tab(out);
    let at = ctx.created(row, &mut base);
    timestamp(out, at, base.below(1_000_000));
    tab(out);
    for i in 0..4 {
        if i > 0 {
            out.push(b'.');
        }
        num(out, base.range(1, 254));
    }
    tab(out);
    out.extend_from_slice(base.pick(AGENTS).as_bytes());
    tab(out);
    out.extend_from_slice(b"{\"path\": \"");
    match kind {
        "product_view" | "add_to_cart" | "remove_from_cart" => {
            out.extend_from_slice(b"/products/");
            num(out, base.range(1, ctx.products.max(1)));
        }
        "search" => {
            out.extend_from_slice(b"/search?q=");
            out.extend_from_slice(base.pick(NOUNS).as_bytes().split(|&b| b == b' ').next().unwrap_or(b""));
        }
        _ => out.extend_from_slice(base.pick(&["/", "/cart", "/account", "/checkout", "/c/new", "/c/sale"]).as_bytes()),
    }
    out.extend_from_slice(b"\", \"referrer\": \"");
    out.extend_from_slice(base.pick(REFERRERS).as_bytes());
    out.extend_from_slice(b"\", \"duration_ms\": ");
    num(out, base.log_uniform(5, 600_000));
    if base.chance(0.3) {
        out.extend_from_slice(b", \"experiment\": {\"id\": \"exp-");
        num(out, base.range(100, 140));
        out.extend_from_slice(b"\", \"variant\": \"");
        out.push(if base.chance(0.5) { b'A' } else { b'B' });
        out.extend_from_slice(b"\"}");
    }
    if row.version > 0 {
        out.extend_from_slice(b", \"flagged\": true");
    }
    out.extend_from_slice(b"}\n");
}
