//! The catalogue's tables, indexes and full-text index, and the one-transaction seeding.
//!
//! Owns the database layout and how a fresh file is filled; not the queries the routes run
//! (`catalogue.rs`) nor the connections (`store.rs`). Rows go in first and indexes are built
//! after, which is several times faster than maintaining them row by row.

use std::time::Instant;

use rusqlite::{Connection, Transaction, params};

use super::generator;
use super::words::CATEGORIES;

/// How many users and orders are seeded, whatever the product count.
pub(crate) const USERS: u64 = 1_000;
pub(crate) const ORDERS: u64 = 5_000;

const TABLES: &str = "
CREATE TABLE categories (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sku_prefix TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    description TEXT NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    updated_at INTEGER NOT NULL
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL,
    line INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

// Order lines keep their product id without a foreign key: deleting a product must not rewrite
// order history, as in a real shop.
const INDEXES: &str = "
CREATE INDEX products_by_category ON products (category, id);
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE VIRTUAL TABLE products_fts USING fts5(
    name, content = 'products', content_rowid = 'id', tokenize = 'unicode61'
);
INSERT INTO products_fts (products_fts) VALUES ('rebuild');
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name) VALUES (new.id, new.name);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name) VALUES ('delete', old.id, old.name);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF name ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name) VALUES ('delete', old.id, old.name);
    INSERT INTO products_fts (rowid, name) VALUES (new.id, new.name);
END;
";

/// The `meta` key holding when the catalogue last changed (ms since the Unix epoch).
pub(crate) const CHANGED_AT: &str = "changed_at";

/// Whether this database already holds a catalogue.
pub(crate) fn is_seeded(connection: &Connection) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('products', 'meta')",
        [],
        |row| row.get::<_, i64>(0).map(|count| count == 2),
    )
}

/// What seeding did, for the log line and the report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seeded {
    pub(crate) products: u64,
    pub(crate) elapsed: std::time::Duration,
}

/// Creates the schema and fills it with `products` products, users and orders, all in one
/// transaction.
pub(crate) fn seed(connection: &mut Connection, products: u64) -> rusqlite::Result<Seeded> {
    let started = Instant::now();
    let transaction = connection.transaction()?;
    transaction.execute_batch(TABLES)?;
    insert_categories(&transaction)?;
    let (prices, changed_at_ms) = insert_products(&transaction, products)?;
    insert_users(&transaction)?;
    insert_orders(&transaction, &prices)?;
    transaction.execute_batch(INDEXES)?;
    transaction.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        params![CHANGED_AT, changed_at_ms],
    )?;
    transaction.commit()?;
    // Gives the planner row counts; cheap on a fresh file.
    connection.execute_batch("ANALYZE")?;
    Ok(Seeded {
        products,
        elapsed: started.elapsed(),
    })
}

fn insert_categories(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut insert = transaction
        .prepare("INSERT INTO categories (slug, name, sku_prefix) VALUES (?1, ?2, ?3)")?;
    for category in &CATEGORIES {
        insert.execute(params![category.slug, category.name, category.sku_prefix])?;
    }
    Ok(())
}

/// Returns every product's price (index `id - 1`) for the order lines, and the newest
/// `updated_at`.
fn insert_products(
    transaction: &Transaction<'_>,
    products: u64,
) -> rusqlite::Result<(Vec<i64>, i64)> {
    let mut insert = transaction.prepare(
        "INSERT INTO products (id, sku, name, category, price_cents, description, stock, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut prices = Vec::with_capacity(usize::try_from(products).unwrap_or(0));
    let mut newest = generator::EPOCH_MS;
    for id in 1..=products {
        let row = generator::product(id);
        insert.execute(params![
            i64::try_from(id).unwrap_or(i64::MAX),
            row.sku,
            row.name,
            row.category,
            row.price_cents,
            row.description,
            row.stock,
            row.updated_at_ms,
        ])?;
        prices.push(row.price_cents);
        newest = newest.max(row.updated_at_ms);
    }
    Ok((prices, newest))
}

fn insert_users(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut insert = transaction
        .prepare("INSERT INTO users (id, email, name, created_at) VALUES (?1, ?2, ?3, ?4)")?;
    for id in 1..=USERS {
        let row = generator::user(id);
        insert.execute(params![
            i64::try_from(id).unwrap_or(i64::MAX),
            row.email,
            row.name,
            row.created_at_ms
        ])?;
    }
    Ok(())
}

fn insert_orders(transaction: &Transaction<'_>, prices: &[i64]) -> rusqlite::Result<()> {
    let mut order_insert = transaction.prepare(
        "INSERT INTO orders (id, user_id, status, total_cents, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut line_insert = transaction.prepare(
        "INSERT INTO order_items (order_id, line, product_id, quantity, price_cents) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for id in 1..=ORDERS {
        let row = generator::order(id, USERS, prices.len() as u64);
        let order_id = i64::try_from(id).unwrap_or(i64::MAX);
        let mut total: i64 = 0;
        for (line, item) in (1_i64..).zip(&row.lines) {
            let index = usize::try_from(item.product_id.saturating_sub(1)).unwrap_or(0);
            let price = prices.get(index).copied().unwrap_or(0);
            total = total.saturating_add(price.saturating_mul(item.quantity));
            line_insert.execute(params![
                order_id,
                line,
                item.product_id,
                item.quantity,
                price
            ])?;
        }
        order_insert.execute(params![
            order_id,
            row.user_id,
            row.status,
            total,
            row.created_at_ms
        ])?;
    }
    Ok(())
}
