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

use std::io::{self, Write};

use rayon::prelude::*;

use crate::rng::Rng;

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
    /// Updates and deletes anywhere (more often among recent rows), inserts at the end or in
    /// vacuumed holes.
    Mutable,
    /// Append-only with retention: deletes the oldest rows, appends new ones, rare updates.
    Log,
}

/// Daily change rates as fractions of a table's rows.
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
        churn: Churn::Mutable,
        rates: (1.0, 0.5, 0.3),
        render: render_customer,
    },
    TableDef {
        name: "products",
        columns: "id, sku, name, category, price, stock, description, attributes, updated_at",
        share: 0.03,
        churn: Churn::Mutable,
        rates: (2.0, 0.2, 0.2),
        render: render_product,
    },
    TableDef {
        name: "orders",
        columns: "id, customer_id, status, currency, subtotal, tax, total, created_at, shipped_at, shipping_address, items, note",
        share: 0.32,
        churn: Churn::Mutable,
        rates: (1.5, 1.0, 0.2),
        render: render_order,
    },
    TableDef {
        name: "events",
        columns: "id, customer_id, session_id, kind, occurred_at, ip, user_agent, payload",
        share: 0.50,
        churn: Churn::Log,
        rates: (0.05, 1.5, 1.0),
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
                Churn::Mutable => {
                    const KEEP: u8 = 0;
                    const DELETE: u8 = 1;
                    const MOVE: u8 = 2;
                    const HOT: u8 = 3;
                    let mut action = vec![KEEP; n];
                    for _ in 0..deletes {
                        action[rng.below(n as u64) as usize] = DELETE;
                    }
                    for _ in 0..updates {
                        // Half the updates hit the newest tenth (orders being shipped, new
                        // customers completing profiles), half anywhere.
                        let i = if rng.chance(0.5) {
                            n - 1 - rng.below((n as u64 / 10).max(1)) as usize
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

// ---------------------------------------------------------------------------------------------
// Vocabulary

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Christopher",
    "Karen",
    "Charles",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Sandra",
    "Mark",
    "Margaret",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Andrew",
    "Emily",
    "Paul",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Sharon",
    "Edward",
    "Laura",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Amy",
    "Jacob",
    "Kathleen",
    "Gary",
    "Angela",
    "Nicholas",
    "Shirley",
    "Eric",
    "Brenda",
    "Jonathan",
    "Emma",
    "Stephen",
    "Anna",
    "Larry",
    "Pamela",
    "Justin",
    "Nicole",
    "Scott",
    "Samantha",
    "Brandon",
    "Katherine",
    "Benjamin",
    "Christine",
    "Samuel",
    "Helen",
    "Gregory",
    "Debra",
    "Alexander",
    "Rachel",
    "Patrick",
    "Carolyn",
    "Frank",
    "Janet",
    "Raymond",
    "Maria",
    "Jack",
    "Catherine",
    "Dennis",
    "Heather",
    "Jerry",
    "Diane",
    "Tyler",
    "Olivia",
    "Aaron",
    "Julie",
    "José",
    "Joyce",
    "Adam",
    "Victoria",
    "Nathan",
    "Ruth",
    "Henry",
    "Virginia",
    "Zachary",
    "Lauren",
    "Douglas",
    "Kelly",
    "Peter",
    "Christina",
    "Kyle",
    "Joan",
    "Noah",
    "Evelyn",
    "Ethan",
    "Judith",
    "Jeremy",
    "Andrea",
    "Walter",
    "Hannah",
    "Christian",
    "Megan",
    "Keith",
    "Cheryl",
    "Roger",
    "Jacqueline",
    "Terry",
    "Martha",
    "Austin",
    "Madison",
    "Sean",
    "Teresa",
    "Gerald",
    "Gloria",
    "Carl",
    "Sara",
    "Harold",
    "Janice",
    "Dylan",
    "Ann",
    "Arthur",
    "Kathryn",
    "Lawrence",
    "Abigail",
    "Jordan",
    "Sophia",
    "Jesse",
    "Frances",
    "Bryan",
    "Jean",
    "Billy",
    "Alice",
    "Bruce",
    "Judy",
    "Gabriel",
    "Isabella",
    "Joe",
    "Julia",
    "Logan",
    "Grace",
    "Alan",
    "Amber",
    "Juan",
    "Denise",
    "Albert",
    "Danielle",
    "Willie",
    "Marilyn",
    "Elijah",
    "Beverly",
    "Wayne",
    "Charlotte",
    "Randy",
    "Natalie",
    "Vincent",
    "Theresa",
    "Mason",
    "Diana",
    "Roy",
    "Brittany",
    "Ralph",
    "Doris",
    "Bobby",
    "Kayla",
    "Russell",
    "Alexis",
    "Bradley",
    "Lori",
    "Philip",
    "Marie",
    "Eugene",
    "Jürgen",
    "Zoë",
    "Søren",
    "Ingrid",
    "Hiroshi",
    "Yuki",
    "Wei",
    "Mei",
    "Aarav",
    "Priya",
    "Oluwaseun",
    "Chiara",
];

const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
    "Richardson",
    "Watson",
    "Brooks",
    "Chavez",
    "Wood",
    "James",
    "Bennett",
    "Gray",
    "Mendoza",
    "Ruiz",
    "Hughes",
    "Price",
    "Alvarez",
    "Castillo",
    "Sanders",
    "Patel",
    "Myers",
    "Long",
    "Ross",
    "Foster",
    "Jimenez",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Romano",
    "Colombo",
    "Ricci",
    "Dubois",
    "Lefebvre",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Tanaka",
    "Suzuki",
    "Takahashi",
    "Watanabe",
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Kowalski",
    "Nowak",
    "Wiśniewski",
    "Jensen",
    "Nielsen",
    "Hansen",
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "O'Brien",
    "O'Connor",
    "Murray",
    "Quinn",
    "Singh",
    "Kumar",
    "Sharma",
    "Okafor",
    "Adeyemi",
    "Mensah",
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Pereira",
    "Costa",
];

const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "icloud.com",
    "proton.me",
    "gmx.de",
    "web.de",
    "orange.fr",
    "libero.it",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
    "naver.com",
    "example.org",
    "fastmail.com",
    "aol.com",
    "comcast.net",
    "btinternet.com",
    "t-online.de",
    "free.fr",
    "wanadoo.fr",
];

const COUNTRIES: &[(&str, &[&str], &str)] = &[
    ("US", &["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Seattle", "Denver", "Boston"], "USD"),
    ("DE", &["Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Leipzig"], "EUR"),
    ("FR", &["Paris", "Marseille", "Lyon", "Toulouse", "Nice", "Nantes", "Strasbourg"], "EUR"),
    ("GB", &["London", "Birmingham", "Manchester", "Glasgow", "Leeds", "Bristol", "Edinburgh"], "GBP"),
    ("IT", &["Roma", "Milano", "Napoli", "Torino", "Palermo", "Bologna", "Firenze"], "EUR"),
    ("ES", &["Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Bilbao"], "EUR"),
    ("JP", &["Tokyo", "Osaka", "Yokohama", "Nagoya", "Sapporo", "Fukuoka", "Kyoto"], "JPY"),
    ("CA", &["Toronto", "Montréal", "Vancouver", "Calgary", "Ottawa", "Edmonton"], "CAD"),
    ("AU", &["Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide", "Canberra"], "AUD"),
    ("BR", &["São Paulo", "Rio de Janeiro", "Brasília", "Salvador", "Fortaleza", "Curitiba"], "BRL"),
    ("NL", &["Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven"], "EUR"),
    ("SE", &["Stockholm", "Göteborg", "Malmö", "Uppsala"], "SEK"),
    ("PL", &["Warszawa", "Kraków", "Łódź", "Wrocław", "Poznań"], "PLN"),
    ("IN", &["Mumbai", "Delhi", "Bengaluru", "Hyderabad", "Chennai", "Pune"], "INR"),
];

const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Park Rd",
    "Elm St",
    "Washington Blvd",
    "Lake View",
    "Hauptstraße",
    "Bahnhofstraße",
    "Rue de la Paix",
    "Via Roma",
    "Calle Mayor",
    "High Street",
    "Station Road",
    "Church Lane",
    "Mill Road",
    "Sunset Blvd",
    "Broadway",
    "King's Road",
    "Rosenweg",
    "Gartenstraße",
];

pub(crate) const WORDS: &[&str] = &[
    "durable",
    "lightweight",
    "premium",
    "classic",
    "modern",
    "compact",
    "ergonomic",
    "wireless",
    "organic",
    "handmade",
    "vintage",
    "stainless",
    "waterproof",
    "adjustable",
    "portable",
    "eco-friendly",
    "cotton",
    "leather",
    "steel",
    "bamboo",
    "ceramic",
    "glass",
    "wool",
    "linen",
    "recycled",
    "design",
    "comfort",
    "everyday",
    "travel",
    "kitchen",
    "outdoor",
    "office",
    "garden",
    "fitness",
    "home",
    "kids",
    "pet",
    "bath",
    "storage",
    "lighting",
    "ideal",
    "perfect",
    "for",
    "with",
    "and",
    "the",
    "a",
    "of",
    "in",
    "to",
    "your",
    "easy",
    "clean",
    "fits",
    "most",
    "includes",
    "set",
    "pack",
    "size",
    "colour",
    "finish",
    "warranty",
    "year",
    "quality",
    "tested",
    "certified",
    "soft",
    "strong",
    "smooth",
    "quiet",
    "fast",
    "charging",
    "battery",
    "hours",
    "use",
    "gift",
    "season",
    "edition",
    "limited",
    "new",
    "improved",
    "formula",
    "natural",
    "sustainable",
    "sourced",
    "made",
    "Europe",
    "Japan",
    "crafted",
];

const NOUNS: &[&str] = &[
    "Backpack",
    "Mug",
    "Lamp",
    "Chair",
    "Desk",
    "Headphones",
    "Speaker",
    "Bottle",
    "Jacket",
    "Sneakers",
    "Watch",
    "Blender",
    "Kettle",
    "Pan",
    "Knife Set",
    "Pillow",
    "Blanket",
    "Towel",
    "Notebook",
    "Pen",
    "Charger",
    "Cable",
    "Keyboard",
    "Mouse",
    "Monitor Stand",
    "Tent",
    "Sleeping Bag",
    "Yoga Mat",
    "Dumbbell",
    "Plant Pot",
    "Candle",
];

const CATEGORIES: &[&str] =
    &["home", "kitchen", "electronics", "apparel", "outdoor", "office", "sports", "beauty", "toys", "garden"];
const COLORS: &[&str] = &["black", "white", "red", "navy", "olive", "sand", "grey", "teal", "burgundy", "charcoal"];
const MATERIALS: &[&str] = &["cotton", "polyester", "steel", "aluminium", "oak", "bamboo", "ceramic", "glass"];
const ORDER_STATUS: &[&str] = &["pending", "paid", "packed", "shipped", "delivered", "cancelled", "refunded"];
const CUSTOMER_STATUS: &[&str] = &["active", "active", "active", "active", "inactive", "suspended", "pending"];
const LANGS: &[&str] = &["en", "de", "fr", "it", "es", "ja", "pt", "nl", "sv", "pl"];
const EVENT_KINDS: &[&str] = &[
    "page_view",
    "page_view",
    "page_view",
    "product_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "checkout_complete",
    "login",
    "logout",
    "signup",
    "newsletter_open",
    "review_submit",
];
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://www.bing.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://news.ycombinator.com/",
    "android-app://com.google.android.gm/",
    "",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0",
    "ShopApp/4.12.1 (iOS 17.5; iPhone15,2)",
    "ShopApp/4.11.0 (Android 13; SM-S911B)",
];

// ---------------------------------------------------------------------------------------------
// Rendering helpers: hand-rolled number and time formatting, because this runs for every field
// of millions of rows.

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
fn timestamp(out: &mut Vec<u8>, unix: i64, micros: u64) {
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

fn render_customer(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
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

fn render_product(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
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

fn render_order(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
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

fn render_event(ctx: &Ctx, row: &Row, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
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
        assert!(share > 0.01 && share < 0.08, "{share}");
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
