//! The read queries of the catalogue (the hot ones) and the `Product` representation.
//!
//! Owns the SQL that the GET routes run and how a row becomes JSON. Every hot query here is
//! checked by a test against `EXPLAIN QUERY PLAN` so that none of them scans `products`.
//! Writes live in `edits.rs`; HTTP lives in `routes.rs`.

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::validators::rfc3339_ms;

/// One product by id: the primary key.
pub(crate) const PRODUCT_BY_ID: &str =
    "SELECT products.id, products.sku, products.name, products.category,
    products.price_cents, products.description, products.stock, products.updated_at
    FROM products WHERE products.id = ?1";

/// A page of products in id order. `id > ?1` is the cursor (`after`, 0 for page mode): it makes
/// the plan a range search on the primary key, and lets `after` skip OFFSET altogether.
pub(crate) const PRODUCTS_PAGE: &str =
    "SELECT products.id, products.sku, products.name, products.category,
    products.price_cents, products.description, products.stock, products.updated_at
    FROM products WHERE products.id > ?1 ORDER BY products.id LIMIT ?2 OFFSET ?3";

/// A page of one category in id order, through the `(category, id)` index.
pub(crate) const CATEGORY_PAGE: &str =
    "SELECT products.id, products.sku, products.name, products.category,
    products.price_cents, products.description, products.stock, products.updated_at
    FROM products WHERE products.category = ?1 AND products.id > ?2
    ORDER BY products.id LIMIT ?3 OFFSET ?4";

/// Name search through the FTS5 index, best match first (bm25), id as the tie-break.
pub(crate) const SEARCH: &str =
    "SELECT products.id, products.sku, products.name, products.category,
    products.price_cents, products.description, products.stock, products.updated_at
    FROM products_fts JOIN products ON products.id = products_fts.rowid
    WHERE products_fts MATCH ?1 ORDER BY products_fts.rank, products.id LIMIT ?2 OFFSET ?3";

/// One user's orders, newest first, through the `(user_id, id)` index.
pub(crate) const ORDERS_OF_USER: &str = "SELECT id, status, total_cents, created_at FROM orders WHERE user_id = ?1 ORDER BY id DESC LIMIT 50";

/// The lines of one order: the primary key of `order_items`.
pub(crate) const LINES_OF_ORDER: &str =
    "SELECT product_id, quantity, price_cents FROM order_items WHERE order_id = ?1 ORDER BY line";

const USER_BY_ID: &str = "SELECT id, name, created_at FROM users WHERE id = ?1";

/// A product as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) category: String,
    pub(crate) price_cents: i64,
    pub(crate) description: String,
    pub(crate) stock: i64,
    /// RFC 3339, UTC, millisecond precision.
    pub(crate) updated_at: String,
    #[serde(skip)]
    pub(crate) updated_at_ms: i64,
}

impl Product {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let updated_at_ms: i64 = row.get(7)?;
        Ok(Self {
            id: row.get(0)?,
            sku: row.get(1)?,
            name: row.get(2)?,
            category: row.get(3)?,
            price_cents: row.get(4)?,
            description: row.get(5)?,
            stock: row.get(6)?,
            updated_at: rfc3339_ms(updated_at_ms),
            updated_at_ms,
        })
    }

    /// The JSON body of `GET /products/{id}`; its bytes are what the ETag is computed from.
    pub(crate) fn body(&self) -> Result<Bytes, serde_json::Error> {
        serde_json::to_vec(self).map(Bytes::from)
    }
}

/// Reads one product.
pub(crate) fn product(connection: &Connection, id: i64) -> rusqlite::Result<Option<Product>> {
    connection
        .prepare_cached(PRODUCT_BY_ID)?
        .query_row([id], Product::from_row)
        .optional()
}

/// Which slice of a product list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slice {
    /// Only ids above this one (0: from the start).
    pub(crate) after: i64,
    /// Rows to skip after `after`.
    pub(crate) offset: i64,
    /// Rows to return.
    pub(crate) limit: i64,
}

/// Reads a slice of all products, or of one category.
pub(crate) fn products(
    connection: &Connection,
    category: Option<&str>,
    slice: &Slice,
) -> rusqlite::Result<Vec<Product>> {
    match category {
        Some(category) => connection
            .prepare_cached(CATEGORY_PAGE)?
            .query_map(
                params![category, slice.after, slice.limit, slice.offset],
                Product::from_row,
            )?
            .collect(),
        None => connection
            .prepare_cached(PRODUCTS_PAGE)?
            .query_map(
                params![slice.after, slice.limit, slice.offset],
                Product::from_row,
            )?
            .collect(),
    }
}

/// Reads the products whose names match `fts_query` (an FTS5 expression from
/// [`fts_query`]); `slice.after` is ignored.
pub(crate) fn search(
    connection: &Connection,
    fts_query: &str,
    slice: &Slice,
) -> rusqlite::Result<Vec<Product>> {
    connection
        .prepare_cached(SEARCH)?
        .query_map(
            params![fts_query, slice.limit, slice.offset],
            Product::from_row,
        )?
        .collect()
}

/// The most words a search looks at, and the longest word.
const MAX_WORDS: usize = 8;
const MAX_WORD_CHARS: usize = 40;

/// Turns what a user typed into an FTS5 query: every word becomes a quoted term, so FTS5
/// operators and quotes in the input are only ever words. Words of two characters or more
/// match as prefixes; a single character matches only itself, since as a prefix it would
/// match most of the catalogue. `None` when there is no word.
pub(crate) fn fts_query(typed: &str) -> Option<String> {
    let terms: Vec<String> = typed
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(MAX_WORDS)
        .map(|word| {
            let word: String = word
                .chars()
                .take(MAX_WORD_CHARS)
                .collect::<String>()
                .to_lowercase();
            let prefix = if word.chars().count() > 1 { "*" } else { "" };
            format!("\"{word}\"{prefix}")
        })
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" "))
    }
}

/// One user's recent orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct UserOrders {
    pub(crate) user_id: i64,
    pub(crate) name: String,
    pub(crate) orders: Vec<Order>,
    #[serde(skip)]
    pub(crate) last_modified_ms: i64,
}

/// An order and its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) status: String,
    pub(crate) total_cents: i64,
    pub(crate) created_at: String,
    pub(crate) lines: Vec<Line>,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Line {
    pub(crate) product_id: i64,
    pub(crate) quantity: i64,
    pub(crate) price_cents: i64,
}

/// Reads a user's 50 newest orders, or `None` if there is no such user.
pub(crate) fn orders_of_user(
    connection: &Connection,
    user_id: i64,
) -> rusqlite::Result<Option<UserOrders>> {
    let user = connection
        .prepare_cached(USER_BY_ID)?
        .query_row([user_id], |row| {
            Ok((row.get::<_, String>(1)?, row.get::<_, i64>(2)?))
        })
        .optional()?;
    let Some((name, created_at_ms)) = user else {
        return Ok(None);
    };
    let heads: Vec<(i64, String, i64, i64)> = connection
        .prepare_cached(ORDERS_OF_USER)?
        .query_map([user_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut lines = connection.prepare_cached(LINES_OF_ORDER)?;
    let mut orders = Vec::with_capacity(heads.len());
    let mut last_modified_ms = created_at_ms;
    for (id, status, total_cents, order_created_ms) in heads {
        last_modified_ms = last_modified_ms.max(order_created_ms);
        let order_lines = lines
            .query_map([id], |row| {
                Ok(Line {
                    product_id: row.get(0)?,
                    quantity: row.get(1)?,
                    price_cents: row.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        orders.push(Order {
            id,
            status,
            total_cents,
            created_at: rfc3339_ms(order_created_ms),
            lines: order_lines,
        });
    }
    Ok(Some(UserOrders {
        user_id,
        name,
        orders,
        last_modified_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoApp, DemoOptions};

    /// Every query a GET route runs.
    const HOT_QUERIES: &[&str] = &[
        PRODUCT_BY_ID,
        PRODUCTS_PAGE,
        CATEGORY_PAGE,
        SEARCH,
        ORDERS_OF_USER,
        LINES_OF_ORDER,
        USER_BY_ID,
    ];

    fn plan(connection: &Connection, sql: &str) -> Vec<String> {
        let count = connection.prepare(sql).unwrap().parameter_count();
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut statement = connection.prepare(&explain).unwrap();
        // Parameters of the right type so the planner sees what the routes bind.
        let text_first = sql.contains("MATCH ?1") || sql.contains("category = ?1");
        let values: Vec<rusqlite::types::Value> = (1..=count)
            .map(|index| match (index, sql.contains("MATCH ?1")) {
                (1, true) => rusqlite::types::Value::Text("\"lamp\"*".into()),
                (1, false) if text_first => rusqlite::types::Value::Text("books".into()),
                _ => rusqlite::types::Value::Integer(1),
            })
            .collect();
        statement
            .query_map(rusqlite::params_from_iter(values), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The tables of the catalogue. `products_fts` is not one of them: a MATCH is planned as
    /// `SCAN products_fts VIRTUAL TABLE INDEX ..`, which is the FTS5 index lookup itself.
    const TABLES: &[&str] = &["products", "orders", "order_items", "users", "categories"];

    /// A plan line that walks a whole table, in rowid order (`SCAN t`) or in the order of an
    /// index (`SCAN t USING [COVERING] INDEX i`): either way every row is visited. A lookup
    /// prints `SEARCH t USING ...`.
    fn full_scan(lines: &[String]) -> Option<&String> {
        lines.iter().find(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("SCAN")
                && words.next().is_some_and(|table| TABLES.contains(&table))
        })
    }

    #[test]
    fn no_hot_query_scans_a_whole_table() {
        let app = DemoApp::open(DemoOptions {
            products: 500,
            path: None,
        })
        .unwrap();
        app.store
            .read(|connection| {
                for sql in HOT_QUERIES {
                    let lines = plan(connection, sql);
                    assert!(!lines.is_empty());
                    assert_eq!(full_scan(&lines), None, "{sql}\n{lines:#?}");
                }
                Ok::<_, rusqlite::Error>(())
            })
            .unwrap();
    }

    #[test]
    fn each_hot_query_searches_the_index_meant_for_it() {
        let app = DemoApp::open(DemoOptions {
            products: 500,
            path: None,
        })
        .unwrap();
        let expected: &[(&str, &[&str])] = &[
            (
                PRODUCT_BY_ID,
                &["SEARCH products USING INTEGER PRIMARY KEY (rowid=?)"],
            ),
            (
                PRODUCTS_PAGE,
                &["SEARCH products USING INTEGER PRIMARY KEY (rowid>?)"],
            ),
            (
                CATEGORY_PAGE,
                &["SEARCH products USING INDEX products_by_category (category=? AND id>?)"],
            ),
            (
                SEARCH,
                &[
                    "SCAN products_fts VIRTUAL TABLE INDEX",
                    "SEARCH products USING INTEGER PRIMARY KEY (rowid=?)",
                ],
            ),
            (
                ORDERS_OF_USER,
                &["SEARCH orders USING INDEX orders_by_user (user_id=?)"],
            ),
            (
                LINES_OF_ORDER,
                &["SEARCH order_items USING PRIMARY KEY (order_id=?)"],
            ),
            (
                USER_BY_ID,
                &["SEARCH users USING INTEGER PRIMARY KEY (rowid=?)"],
            ),
        ];
        app.store
            .read(|connection| {
                for (sql, wanted) in expected {
                    let lines = plan(connection, sql);
                    for step in *wanted {
                        assert!(
                            lines.iter().any(|line| line.starts_with(step)),
                            "{step} not in the plan of {sql}\n{lines:#?}"
                        );
                    }
                }
                Ok::<_, rusqlite::Error>(())
            })
            .unwrap();
    }

    #[test]
    fn the_full_scan_detector_recognises_full_scans() {
        let app = DemoApp::open(DemoOptions {
            products: 50,
            path: None,
        })
        .unwrap();
        app.store
            .read(|connection| {
                for sql in [
                    "SELECT id FROM products WHERE description = 'x'",
                    "SELECT id FROM products ORDER BY category, id",
                    "SELECT id FROM orders WHERE status = 'paid'",
                ] {
                    let lines = plan(connection, sql);
                    assert!(full_scan(&lines).is_some(), "{sql}\n{lines:#?}");
                }
                Ok::<_, rusqlite::Error>(())
            })
            .unwrap();
    }

    #[test]
    fn search_finds_seeded_names_by_prefix() {
        let app = DemoApp::open(DemoOptions {
            products: 500,
            path: None,
        })
        .unwrap();
        let wanted = crate::demo::generator::product(42).name;
        let word = wanted.split(' ').next_back().unwrap().to_string();
        let prefix: String = word.chars().take(3).collect();
        let query = fts_query(&prefix).unwrap();
        let slice = Slice {
            after: 0,
            offset: 0,
            limit: 500,
        };
        let found = app
            .store
            .read(|connection| search(connection, &query, &slice))
            .unwrap();
        assert!(
            found.iter().any(|product| product.id == 42),
            "{word} not found by {prefix}"
        );
    }

    #[test]
    fn fts_query_quotes_every_word_and_drops_operators() {
        assert_eq!(fts_query("Oak lamp").as_deref(), Some("\"oak\"* \"lamp\"*"));
        assert_eq!(
            fts_query("\"ab\" OR c*").as_deref(),
            Some("\"ab\"* \"or\"* \"c\"")
        );
        assert_eq!(fts_query("  --  "), None);
    }

    #[test]
    fn two_catalogues_of_different_sizes_hold_the_same_product_123() {
        let read_123 = |products| {
            let app = DemoApp::open(DemoOptions {
                products,
                path: None,
            })
            .unwrap();
            app.store
                .read(|connection| product(connection, 123))
                .unwrap()
                .unwrap()
                .body()
                .unwrap()
        };
        let (small, large) = (read_123(150), read_123(900));
        assert_eq!(small, large);
        assert_eq!(
            crate::demo::validators::strong_etag(&small),
            crate::demo::validators::strong_etag(&large)
        );
    }

    #[test]
    fn seeded_product_123_is_the_generated_one() {
        let app = DemoApp::open(DemoOptions {
            products: 200,
            path: None,
        })
        .unwrap();
        let stored = app
            .store
            .read(|connection| product(connection, 123))
            .unwrap()
            .unwrap();
        let seeded = crate::demo::generator::product(123);
        assert_eq!(stored.name, seeded.name);
        assert_eq!(stored.sku, seeded.sku);
        assert_eq!(stored.price_cents, seeded.price_cents);
        assert_eq!(stored.updated_at_ms, seeded.updated_at_ms);
        assert_eq!(
            app.store
                .read(|connection| product(connection, 201))
                .unwrap(),
            None
        );
    }
}
