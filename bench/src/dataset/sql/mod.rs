//! A `pg_dump`-style SQL dump of a small shop's database, and its day-to-day evolution.
//!
//! Four tables (customers, products, orders, events) with ids, names, e-mail addresses,
//! timestamps, money amounts, free text and JSON columns, rendered as `COPY ... FROM stdin`
//! blocks between the schema statements `pg_dump` writes. Every value comes from a generator
//! seeded by (seed, table, row id, row version), so a row renders the same wherever it appears
//! and a dump is the same bytes on every machine.
//!
//! [`Database::advance_day`] changes a few percent of rows the way a day of traffic does, and the
//! next dump shows it the way `pg_dump` would: `COPY` emits tuples in physical order, and
//! PostgreSQL writes an updated row as a new tuple version, usually at the end of the heap
//! (a HOT update can keep it in its page, modelled as staying in place). Deleted rows leave
//! holes that later inserts may fill after vacuum; everything else is appended. The event log
//! is append-only with retention, so it loses rows at its head and gains them at its tail.
//!
//! Where the changes land matters as much as how many there are: updates to orders go almost
//! all to recent orders, while customers' updates and every table's deletes are scattered. A
//! scattered change touches every 256 KiB window of its table within days, so such a table is
//! all new data to any chunk-based deduplication, while old orders and events deduplicate. The
//! result is that each day's dump shares about 60 % of its bytes with the previous day at the
//! default 256 KiB average chunk size.

use std::io::{self, Write};

use rayon::prelude::*;

use crate::rng::Rng;

mod render;
pub(crate) mod vocabulary;

use render::{render_customer, render_event, render_order, render_product};

/// One row's place in the heap: which row, which version, and the days it was born and last
/// written (16 bytes, so a 1 GiB dump's state fits in a few tens of megabytes).
#[derive(Debug, Clone, Copy)]
struct Row {
    id: u64,
    version: u32,
    born: u16,
    day: u16,
}

/// How a table changes from one day to the next.
#[derive(Debug, Clone, Copy)]
enum Churn {
    /// Updates mostly among the most recent rows (`recent_share` of them land in the newest
    /// `recent` fraction of the table: orders being paid and shipped, new customers completing
    /// their profiles), the rest and the deletes scattered anywhere; inserts at the end or in
    /// vacuumed holes.
    Mutable { recent: f64, recent_share: f64 },
    /// Append-only with retention: deletes the oldest rows, appends new ones (updates only if
    /// the table's update rate is not zero).
    Log,
}

/// Daily change rates as fractions of a table's rows, scaled per table (customers change least,
/// products most, the event log only grows and expires).
#[derive(Debug, Clone, Copy)]
pub struct DailyChange {
    /// Rows updated per day.
    pub update: f64,
    /// Rows inserted per day.
    pub insert: f64,
    /// Rows deleted per day.
    pub delete: f64,
}

impl Default for DailyChange {
    /// 2.5 % updated, 1.5 % inserted, 0.7 % deleted: an ordinary business day.
    fn default() -> Self {
        DailyChange { update: 0.025, insert: 0.015, delete: 0.007 }
    }
}

struct TableDef {
    name: &'static str,
    columns: &'static str,
    /// Share of the dump's bytes at day 0.
    share: f64,
    churn: Churn,
    /// Multipliers on [`DailyChange`] for this table (update, insert, delete).
    rates: (f64, f64, f64),
    render: fn(&Ctx, &Row, &mut Vec<u8>),
}

const TABLES: [TableDef; 4] = [
    TableDef {
        name: "customers",
        columns: "id, first_name, last_name, email, phone, country, city, created_at, updated_at, status, lifetime_value, preferences",
        share: 0.15,
        churn: Churn::Mutable { recent: 0.05, recent_share: 0.5 },
        rates: (0.2, 0.3, 0.1),
        render: render_customer,
    },
    TableDef {
        name: "products",
        columns: "id, sku, name, category, price, stock, description, attributes, updated_at",
        share: 0.03,
        churn: Churn::Mutable { recent: 0.2, recent_share: 0.5 },
        rates: (2.0, 0.2, 0.2),
        render: render_product,
    },
    TableDef {
        name: "orders",
        columns: "id, customer_id, status, currency, subtotal, tax, total, created_at, shipped_at, shipping_address, items, note",
        share: 0.32,
        churn: Churn::Mutable { recent: 0.04, recent_share: 0.99 },
        rates: (1.5, 1.0, 0.05),
        render: render_order,
    },
    TableDef {
        name: "events",
        columns: "id, customer_id, session_id, kind, occurred_at, ip, user_agent, payload",
        share: 0.50,
        churn: Churn::Log,
        rates: (0.0, 1.5, 1.0),
        render: render_event,
    },
];

/// Midnight UTC of day 0 (2025-06-01).
const EPOCH: i64 = 1_748_736_000;
/// Initial rows were created over the three years before day 0.
const HISTORY_SECS: i64 = 3 * 365 * 86_400;

struct Ctx {
    seed: u64,
    table: u64,
    /// Rows at day 0, to place a row's creation time in the history.
    initial_rows: u64,
    /// Highest customer id, for foreign keys.
    customers: u64,
    /// Highest product id, for order items.
    products: u64,
}

impl Ctx {
    fn base(&self, row: &Row) -> Rng {
        Rng::derive(self.seed, &[self.table, row.id])
    }
    fn version(&self, row: &Row) -> Rng {
        Rng::derive(self.seed, &[self.table, row.id, 1 + u64::from(row.version)])
    }
    fn created(&self, row: &Row, rng: &mut Rng) -> i64 {
        if row.born == 0 && row.id <= self.initial_rows {
            let at = EPOCH - HISTORY_SECS + (row.id as i64 * HISTORY_SECS) / self.initial_rows.max(1) as i64;
            at - rng.below(3600) as i64
        } else {
            EPOCH + i64::from(row.born) * 86_400 - 86_400 + rng.below(86_400) as i64
        }
    }
    fn written(&self, row: &Row, created: i64, rng: &mut Rng) -> i64 {
        if row.version == 0 {
            created + rng.below(120) as i64
        } else {
            EPOCH + i64::from(row.day) * 86_400 - 86_400 + rng.below(86_400) as i64
        }
    }
}

/// The state of the database: for each table, its rows in physical (heap) order.
pub struct Database {
    seed: u64,
    day: u16,
    tables: Vec<TableState>,
}

struct TableState {
    rows: Vec<Row>,
    next_id: u64,
    initial_rows: u64,
}

impl Database {
    /// A database whose day-0 dump is about `bytes` long.
    #[must_use]
    pub fn new(seed: u64, bytes: u64) -> Self {
        // Estimate each table's average row length from a sample, then size it to its share.
        let mut tables: Vec<TableState> = Vec::new();
        let (mut customers, mut products) = (1000u64, 100u64);
        for (t, def) in TABLES.iter().enumerate() {
            let ctx = Ctx { seed, table: t as u64, initial_rows: 1000, customers, products };
            let mut buf = Vec::new();
            for id in 1..=500 {
                (def.render)(&ctx, &Row { id, version: 0, born: 0, day: 0 }, &mut buf);
            }
            let avg = buf.len() as f64 / 500.0;
            let n = ((bytes as f64 * def.share / avg) as u64).max(10);
            match def.name {
                "customers" => customers = n,
                "products" => products = n,
                _ => {}
            }
            let rows = (1..=n).map(|id| Row { id, version: 0, born: 0, day: 0 }).collect();
            tables.push(TableState { rows, next_id: n + 1, initial_rows: n });
        }
        Database { seed, day: 0, tables }
    }

    /// The current day (0 for the initial state).
    #[must_use]
    pub fn day(&self) -> u16 {
        self.day
    }

    /// Applies one day of inserts, updates and deletes.
    pub fn advance_day(&mut self, change: &DailyChange) {
        self.day += 1;
        let day = self.day;
        for (t, (def, state)) in TABLES.iter().zip(&mut self.tables).enumerate() {
            let mut rng = Rng::derive(self.seed, &[0xDA7, t as u64, u64::from(day)]);
            let n = state.rows.len();
            let k = |rate: f64, mult: f64| ((n as f64) * rate * mult).round() as usize;
            let (updates, inserts, deletes) =
                (k(change.update, def.rates.0), k(change.insert, def.rates.1), k(change.delete, def.rates.2));
            let mut next_id = state.next_id;
            let mut new_row = || {
                let row = Row { id: next_id, version: 0, born: day, day };
                next_id += 1;
                row
            };
            match def.churn {
                Churn::Log => {
                    state.rows.drain(..deletes.min(n));
                    let len = state.rows.len() as u64;
                    for _ in 0..updates {
                        let i = rng.below(len) as usize;
                        let r = &mut state.rows[i];
                        r.version += 1;
                        r.day = day;
                    }
                    state.rows.extend((0..inserts).map(|_| new_row()));
                }
                Churn::Mutable { recent, recent_share } => {
                    const KEEP: u8 = 0;
                    const DELETE: u8 = 1;
                    const MOVE: u8 = 2;
                    const HOT: u8 = 3;
                    let mut action = vec![KEEP; n];
                    for _ in 0..deletes {
                        action[rng.below(n as u64) as usize] = DELETE;
                    }
                    for _ in 0..updates {
                        let i = if rng.chance(recent_share) {
                            n - 1 - rng.below(((n as f64 * recent) as u64).max(1)) as usize
                        } else {
                            rng.below(n as u64) as usize
                        };
                        if action[i] == KEEP {
                            action[i] = if rng.chance(0.3) { HOT } else { MOVE };
                        }
                    }
                    let mut remaining = inserts;
                    let mut rows = Vec::with_capacity(n + inserts);
                    let mut moved = Vec::with_capacity(updates);
                    for (row, act) in state.rows.iter().zip(&action) {
                        let updated = Row { version: row.version + 1, day, ..*row };
                        match *act {
                            KEEP => rows.push(*row),
                            HOT => rows.push(updated),
                            MOVE => moved.push(updated),
                            _ => {
                                // A vacuumed hole: sometimes reused by an insert.
                                if remaining > 0 && rng.chance(0.25) {
                                    rows.push(new_row());
                                    remaining -= 1;
                                }
                            }
                        }
                    }
                    rows.extend(moved);
                    rows.extend((0..remaining).map(|_| new_row()));
                    state.rows = rows;
                }
            }
            state.next_id = next_id;
        }
    }

    /// Writes the dump of the current state; returns its length.
    ///
    /// # Errors
    /// Errors of `out`.
    pub fn write_dump<W: Write>(&self, out: &mut W) -> io::Result<u64> {
        let mut written = 0u64;
        let mut put = |out: &mut W, bytes: &[u8]| -> io::Result<()> {
            written += bytes.len() as u64;
            out.write_all(bytes)
        };
        put(out, header(self).as_bytes())?;
        let customers = self.tables[0].initial_rows; // stable foreign keys: a row renders the same every day
        let products = self.tables[1].initial_rows;
        for (t, (def, state)) in TABLES.iter().zip(&self.tables).enumerate() {
            let ctx = Ctx { seed: self.seed, table: t as u64, initial_rows: state.initial_rows, customers, products };
            put(out, format!("--\n-- Data for Name: {0}; Type: TABLE DATA; Schema: public; Owner: shop\n--\n\nCOPY public.{0} ({1}) FROM stdin;\n", def.name, def.columns).as_bytes())?;
            // Render in parallel, a bounded group of slices at a time, and write in order.
            for group in state.rows.chunks(1 << 18) {
                let parts: Vec<Vec<u8>> = group
                    .par_chunks(1 << 13)
                    .map(|rows| {
                        let mut buf = Vec::with_capacity(rows.len() * 400);
                        for row in rows {
                            (def.render)(&ctx, row, &mut buf);
                        }
                        buf
                    })
                    .collect();
                for p in parts {
                    put(out, &p)?;
                }
            }
            put(out, b"\\.\n\n\n")?;
        }
        put(out, footer(self).as_bytes())?;
        Ok(written)
    }
}

fn header(db: &Database) -> String {
    let mut s = String::from(
        "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 16.4 (Debian 16.4-1.pgdg120+1)\n-- Dumped by pg_dump version 16.4 (Debian 16.4-1.pgdg120+1)\n\nSET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\nSET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n\nSET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n",
    );
    let ddl = [
        "customers",
        "    id bigint NOT NULL,\n    first_name text NOT NULL,\n    last_name text NOT NULL,\n    email text NOT NULL,\n    phone text,\n    country character(2) NOT NULL,\n    city text,\n    created_at timestamp with time zone DEFAULT now() NOT NULL,\n    updated_at timestamp with time zone DEFAULT now() NOT NULL,\n    status text DEFAULT 'active'::text NOT NULL,\n    lifetime_value numeric(12,2) DEFAULT 0 NOT NULL,\n    preferences jsonb DEFAULT '{}'::jsonb NOT NULL",
        "products",
        "    id bigint NOT NULL,\n    sku text NOT NULL,\n    name text NOT NULL,\n    category text NOT NULL,\n    price numeric(10,2) NOT NULL,\n    stock integer DEFAULT 0 NOT NULL,\n    description text,\n    attributes jsonb,\n    updated_at timestamp with time zone DEFAULT now() NOT NULL",
        "orders",
        "    id bigint NOT NULL,\n    customer_id bigint NOT NULL,\n    status text NOT NULL,\n    currency character(3) NOT NULL,\n    subtotal numeric(12,2) NOT NULL,\n    tax numeric(12,2) NOT NULL,\n    total numeric(12,2) NOT NULL,\n    created_at timestamp with time zone DEFAULT now() NOT NULL,\n    shipped_at timestamp with time zone,\n    shipping_address text,\n    items jsonb NOT NULL,\n    note text",
        "events",
        "    id bigint NOT NULL,\n    customer_id bigint,\n    session_id uuid NOT NULL,\n    kind text NOT NULL,\n    occurred_at timestamp with time zone NOT NULL,\n    ip inet,\n    user_agent text,\n    payload jsonb",
    ];
    for pair in ddl.chunks(2) {
        let (name, cols) = (pair[0], pair[1]);
        s.push_str(&format!(
            "--\n-- Name: {name}; Type: TABLE; Schema: public; Owner: shop\n--\n\nCREATE TABLE public.{name} (\n{cols}\n);\n\n\nALTER TABLE public.{name} OWNER TO shop;\n\n--\n-- Name: {name}_id_seq; Type: SEQUENCE; Schema: public; Owner: shop\n--\n\nCREATE SEQUENCE public.{name}_id_seq\n    START WITH 1\n    INCREMENT BY 1\n    NO MINVALUE\n    NO MAXVALUE\n    CACHE 1;\n\n\nALTER SEQUENCE public.{name}_id_seq OWNER TO shop;\n\nALTER SEQUENCE public.{name}_id_seq OWNED BY public.{name}.id;\n\n\n"
        ));
    }
    let _ = db;
    s
}

fn footer(db: &Database) -> String {
    let mut s = String::new();
    for (def, state) in TABLES.iter().zip(&db.tables) {
        s.push_str(&format!(
            "--\n-- Name: {0}_id_seq; Type: SEQUENCE SET; Schema: public; Owner: shop\n--\n\nSELECT pg_catalog.setval('public.{0}_id_seq', {1}, true);\n\n\n",
            def.name,
            state.next_id - 1
        ));
    }
    for def in &TABLES {
        s.push_str(&format!(
            "--\n-- Name: {0} {0}_pkey; Type: CONSTRAINT; Schema: public; Owner: shop\n--\n\nALTER TABLE ONLY public.{0}\n    ADD CONSTRAINT {0}_pkey PRIMARY KEY (id);\n\n\n",
            def.name
        ));
    }
    s.push_str("--\n-- Name: customers_email_key; Type: INDEX; Schema: public; Owner: shop\n--\n\nCREATE UNIQUE INDEX customers_email_key ON public.customers USING btree (lower(email));\n\n\n--\n-- Name: orders_customer_id_idx; Type: INDEX; Schema: public; Owner: shop\n--\n\nCREATE INDEX orders_customer_id_idx ON public.orders USING btree (customer_id, created_at DESC);\n\n\n--\n-- Name: events_occurred_at_idx; Type: INDEX; Schema: public; Owner: shop\n--\n\nCREATE INDEX events_occurred_at_idx ON public.events USING brin (occurred_at);\n\n\n--\n-- Name: orders orders_customer_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: shop\n--\n\nALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id);\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n");
    s
}

#[cfg(test)]
mod tests {
    use super::render::timestamp;
    use super::*;

    fn dump(db: &Database) -> Vec<u8> {
        let mut out = Vec::new();
        db.write_dump(&mut out).unwrap();
        out
    }

    #[test]
    fn size_determinism_and_daily_change() {
        let mut db = Database::new(1, 2 << 20);
        let day0 = dump(&db);
        assert!(day0.len() > (3 << 20) / 2 && day0.len() < 3 << 20, "{}", day0.len());
        assert_eq!(day0, dump(&Database::new(1, 2 << 20)));
        assert_ne!(day0, dump(&Database::new(2, 2 << 20)));
        let text = String::from_utf8(day0.clone()).unwrap();
        assert!(text.contains("COPY public.orders (id, customer_id"));
        // Every data line has as many fields as its table has columns.
        let mut cols = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("COPY public.") {
                cols = rest.split(',').count();
            } else if line == "\\." {
                cols = 0;
            } else if cols > 0 {
                assert_eq!(line.split('\t').count(), cols, "{line}");
            }
        }
        db.advance_day(&DailyChange::default());
        let day1 = dump(&db);
        let a: std::collections::HashSet<&[u8]> = day0.split(|&b| b == b'\n').collect();
        let changed = day1.split(|&b| b == b'\n').filter(|l| !a.contains(l)).count();
        let lines = day1.split(|&b| b == b'\n').count();
        let share = changed as f64 / lines as f64;
        assert!(share > 0.005 && share < 0.08, "{share}");
    }

    #[test]
    fn timestamps_format() {
        let mut out = Vec::new();
        timestamp(&mut out, EPOCH, 0);
        assert_eq!(out, b"2025-06-01 00:00:00+00");
        out.clear();
        timestamp(&mut out, 951_782_400 + 86_399, 5);
        assert_eq!(out, b"2000-02-29 23:59:59.000005+00");
    }
}
