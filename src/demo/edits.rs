//! Writes to the catalogue: create, update and delete a product, each in one immediate
//! transaction on the writer connection, with input validation and If-Match checks.
//!
//! Owns what a valid product is and how a write bumps `updated_at` and the catalogue's
//! `changed_at`; not HTTP (`routes.rs`) nor the reads (`catalogue.rs`).

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior, params};
use serde::Deserialize;

use super::catalogue::{self, Product};
use super::schema::CHANGED_AT;
use super::validators::strong_etag;

const MAX_NAME_CHARS: usize = 200;
const MAX_SKU_CHARS: usize = 40;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_PRICE_CENTS: i64 = 1_000_000_000;
const MAX_STOCK: i64 = 1_000_000_000;

/// A SKU no client can send (clients are held to `[A-Za-z0-9_-]`), held for the moment
/// between inserting a product and naming it after its id.
const PENDING_SKU: &str = "#pending";

/// The body of `POST /products`. Unknown fields are ignored, so a body read from
/// `GET /products/{id}` (with its `id` and `updated_at`) can be sent back.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct NewProduct {
    /// Generated from the category and id when absent.
    pub(crate) sku: Option<String>,
    pub(crate) name: String,
    pub(crate) category: String,
    pub(crate) price_cents: i64,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) stock: i64,
}

/// The body of `PUT /products/{id}`: fields left out keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ProductChanges {
    pub(crate) sku: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) price_cents: Option<i64>,
    pub(crate) description: Option<String>,
    pub(crate) stock: Option<i64>,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("no such product")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("a product with this sku already exists")]
    DuplicateSku,
    #[error("the product has changed since the ETag in If-Match")]
    PreconditionFailed,
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("rendering the product: {0}")]
    Render(#[from] serde_json::Error),
}

/// A write that happened: the product as it now is (for create and update) and the
/// catalogue's new `changed_at`.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) product: Option<Product>,
    pub(crate) changed_at_ms: i64,
}

/// Inserts a product, `updated_at` = `now_ms`.
pub(crate) fn create(
    connection: &mut Connection,
    input: NewProduct,
    now_ms: i64,
) -> Result<Written, WriteError> {
    let fields = Fields {
        sku: input.sku,
        name: input.name.trim().to_string(),
        category: input.category,
        price_cents: input.price_cents,
        description: input.description,
        stock: input.stock,
    };
    fields.check()?;
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let prefix = sku_prefix(&transaction, &fields.category)?;
    transaction
        .execute(
            "INSERT INTO products (sku, name, category, price_cents, description, stock, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                fields.sku.as_deref().unwrap_or(PENDING_SKU),
                fields.name,
                fields.category,
                fields.price_cents,
                fields.description,
                fields.stock,
                now_ms
            ],
        )
        .map_err(duplicate_sku)?;
    let id = transaction.last_insert_rowid();
    if fields.sku.is_none() {
        transaction
            .execute(
                "UPDATE products SET sku = ?1 WHERE id = ?2",
                params![format!("{prefix}-{id:06}"), id],
            )
            .map_err(duplicate_sku)?;
    }
    let changed_at_ms = touch(&transaction, now_ms)?;
    let product = catalogue::product(&transaction, id)?.ok_or(WriteError::NotFound)?;
    transaction.commit()?;
    Ok(Written {
        product: Some(product),
        changed_at_ms,
    })
}

/// Applies `changes` to product `id` if `precondition` accepts its current ETag. `updated_at`
/// always moves forward (at least 1 ms), so the ETag changes even for an identical body.
pub(crate) fn update(
    connection: &mut Connection,
    id: i64,
    changes: ProductChanges,
    now_ms: i64,
    precondition: impl FnOnce(&str) -> bool,
) -> Result<Written, WriteError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = catalogue::product(&transaction, id)?.ok_or(WriteError::NotFound)?;
    if !precondition(&strong_etag(&current.body()?)) {
        return Err(WriteError::PreconditionFailed);
    }
    let fields = Fields {
        sku: Some(changes.sku.unwrap_or(current.sku)),
        name: changes
            .name
            .map(|name| name.trim().to_string())
            .unwrap_or(current.name),
        category: changes.category.unwrap_or(current.category),
        price_cents: changes.price_cents.unwrap_or(current.price_cents),
        description: changes.description.unwrap_or(current.description),
        stock: changes.stock.unwrap_or(current.stock),
    };
    fields.check()?;
    sku_prefix(&transaction, &fields.category)?;
    let updated_at_ms = now_ms.max(current.updated_at_ms.saturating_add(1));
    transaction
        .execute(
            "UPDATE products SET sku = ?1, name = ?2, category = ?3, price_cents = ?4, description = ?5,
             stock = ?6, updated_at = ?7 WHERE id = ?8",
            params![
                fields.sku,
                fields.name,
                fields.category,
                fields.price_cents,
                fields.description,
                fields.stock,
                updated_at_ms,
                id
            ],
        )
        .map_err(duplicate_sku)?;
    let changed_at_ms = touch(&transaction, updated_at_ms)?;
    let product = catalogue::product(&transaction, id)?.ok_or(WriteError::NotFound)?;
    transaction.commit()?;
    Ok(Written {
        product: Some(product),
        changed_at_ms,
    })
}

/// Deletes product `id` if `precondition` accepts its current ETag.
pub(crate) fn delete(
    connection: &mut Connection,
    id: i64,
    now_ms: i64,
    precondition: impl FnOnce(&str) -> bool,
) -> Result<Written, WriteError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = catalogue::product(&transaction, id)?.ok_or(WriteError::NotFound)?;
    if !precondition(&strong_etag(&current.body()?)) {
        return Err(WriteError::PreconditionFailed);
    }
    transaction.execute("DELETE FROM products WHERE id = ?1", [id])?;
    let changed_at_ms = touch(&transaction, now_ms)?;
    transaction.commit()?;
    Ok(Written {
        product: None,
        changed_at_ms,
    })
}

/// A product's fields as they will be stored.
struct Fields {
    sku: Option<String>,
    name: String,
    category: String,
    price_cents: i64,
    description: String,
    stock: i64,
}

impl Fields {
    fn check(&self) -> Result<(), WriteError> {
        let invalid = |message: &str| Err(WriteError::Invalid(message.to_string()));
        if let Some(sku) = &self.sku {
            let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if sku.is_empty() || sku.chars().count() > MAX_SKU_CHARS || !sku.chars().all(allowed) {
                return invalid("sku must be 1 to 40 letters, digits, '-' or '_'");
            }
        }
        if self.name.is_empty()
            || self.name.chars().count() > MAX_NAME_CHARS
            || self.name.chars().any(char::is_control)
        {
            return invalid("name must be 1 to 200 printable characters");
        }
        if !(0..=MAX_PRICE_CENTS).contains(&self.price_cents) {
            return invalid("price_cents must be between 0 and 1000000000");
        }
        if !(0..=MAX_STOCK).contains(&self.stock) {
            return invalid("stock must be between 0 and 1000000000");
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return invalid("description must be at most 2000 characters");
        }
        Ok(())
    }
}

/// The SKU prefix of `category`, or `Invalid` if there is no such category.
fn sku_prefix(transaction: &Transaction<'_>, category: &str) -> Result<String, WriteError> {
    let mut select =
        transaction.prepare_cached("SELECT sku_prefix FROM categories WHERE slug = ?1")?;
    match select.query_row([category], |row| row.get(0)) {
        Ok(prefix) => Ok(prefix),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(WriteError::Invalid(format!(
            "unknown category {category:?}"
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Moves the catalogue's `changed_at` forward (never back) and returns it.
fn touch(transaction: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<i64> {
    transaction.query_row(
        "UPDATE meta SET value = max(value, ?2) WHERE key = ?1 RETURNING value",
        params![CHANGED_AT, now_ms],
        |row| row.get(0),
    )
}

fn duplicate_sku(error: rusqlite::Error) -> WriteError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation
                && failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            WriteError::DuplicateSku
        }
        _ => WriteError::Database(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Fields {
        Fields {
            sku: None,
            name: "Oak Lamp".into(),
            category: "lamps".into(),
            price_cents: 4_999,
            description: String::new(),
            stock: 3,
        }
    }

    #[test]
    fn valid_fields_pass_the_checks() {
        assert!(valid().check().is_ok());
    }

    #[test]
    fn out_of_range_or_malformed_fields_are_invalid() {
        let cases = [
            Fields {
                name: String::new(),
                ..valid()
            },
            Fields {
                name: "x".repeat(201),
                ..valid()
            },
            Fields {
                price_cents: -1,
                ..valid()
            },
            Fields {
                stock: -5,
                ..valid()
            },
            Fields {
                sku: Some("has space".into()),
                ..valid()
            },
            Fields {
                sku: Some(PENDING_SKU.into()),
                ..valid()
            },
            Fields {
                description: "d".repeat(2_001),
                ..valid()
            },
        ];
        for fields in cases {
            assert!(matches!(fields.check(), Err(WriteError::Invalid(_))));
        }
    }
}
