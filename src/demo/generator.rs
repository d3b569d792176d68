//! Deterministic catalogue data: a splitmix64 generator and the rows it draws.
//!
//! Owns what the seeded rows look like (products, users, orders), not the word lists
//! (`words.rs`) nor how rows are stored (`schema.rs`). Every product is drawn from its own
//! generator seeded by its id, so product 123 is the same whatever the catalogue size, on
//! every run and every machine.

/// The fixed seed of the whole catalogue. Changing it changes every seeded row and ETag.
pub(crate) const SEED: u64 = 0x5EED_0000_51C0_CAFE;

/// Seeded timestamps fall in the year after this instant (2024-01-01T00:00:00Z, in ms).
pub(crate) const EPOCH_MS: i64 = 1_704_067_200_000;

const YEAR_MS: u64 = 365 * 24 * 60 * 60 * 1000;

use super::words::CATEGORIES;
use super::words::{ADJECTIVES, FEATURES, FIRST_NAMES, LAST_NAMES, MATERIALS, ORDER_STATUSES};

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for test data.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one item of a stream (`stream` tells products from users from orders).
    pub(crate) fn for_item(stream: u64, index: u64) -> Self {
        let mut mixer = Self::new(SEED ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        let base = mixer.next_u64();
        Self::new(base ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0). The modulo bias is irrelevant here.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// A number in `low..=high`.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low.saturating_add(self.below(high.saturating_sub(low).saturating_add(1)))
    }

    fn pick(&mut self, words: &[&'static str]) -> &'static str {
        let index = usize::try_from(self.below(words.len() as u64)).unwrap_or(0);
        words.get(index).copied().unwrap_or("")
    }
}

const PRODUCT_STREAM: u64 = 1;
const USER_STREAM: u64 = 2;
const ORDER_STREAM: u64 = 3;

/// One seeded product, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedProduct {
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) category: &'static str,
    pub(crate) price_cents: i64,
    pub(crate) description: String,
    pub(crate) stock: i64,
    pub(crate) updated_at_ms: i64,
}

/// The product with this id (ids start at 1), the same on every run.
pub(crate) fn product(id: u64) -> SeedProduct {
    let mut rng = SplitMix64::for_item(PRODUCT_STREAM, id);
    let index = usize::try_from(rng.below(CATEGORIES.len() as u64)).unwrap_or(0);
    let category = CATEGORIES.get(index).copied().unwrap_or(CATEGORIES[0]);
    let adjective = rng.pick(ADJECTIVES);
    let material = rng.pick(MATERIALS);
    let noun = rng.pick(category.nouns);
    let (low, high) = category.price_cents;
    // Prices end in 99 or 49 cents, as shops like them.
    let dollars = rng.between(low / 100, high / 100);
    let cents = if rng.below(2) == 0 { 99 } else { 49 };
    let price_cents =
        i64::try_from(dollars.saturating_mul(100).saturating_add(cents)).unwrap_or(i64::MAX);
    let article = if starts_with_vowel(adjective) {
        "An"
    } else {
        "A"
    };
    let mut description = format!(
        "{article} {} {} in {}, {}.",
        adjective.to_lowercase(),
        noun.to_lowercase(),
        material.to_lowercase(),
        rng.pick(FEATURES)
    );
    match rng.below(3) {
        0 => description.push_str(&format!(" Ships within {} days.", rng.between(1, 5))),
        1 => description.push_str(&format!(
            " Pairs well with our other {}.",
            category.name.to_lowercase()
        )),
        _ => {}
    }
    let stock = if rng.below(20) == 0 {
        0
    } else {
        rng.between(1, 500)
    };
    SeedProduct {
        sku: format!("{}-{id:06}", category.sku_prefix),
        name: format!("{adjective} {material} {noun}"),
        category: category.slug,
        price_cents,
        description,
        stock: i64::try_from(stock).unwrap_or(0),
        updated_at_ms: timestamp(&mut rng),
    }
}

/// One seeded user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedUser {
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) created_at_ms: i64,
}

/// The user with this id (ids start at 1).
pub(crate) fn user(id: u64) -> SeedUser {
    let mut rng = SplitMix64::for_item(USER_STREAM, id);
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    SeedUser {
        email: format!(
            "{}.{}{id}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        name: format!("{first} {last}"),
        created_at_ms: timestamp(&mut rng),
    }
}

/// One seeded order line: a product, how many, and the unit price paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedLine {
    pub(crate) product_id: i64,
    pub(crate) quantity: i64,
}

/// One seeded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedOrder {
    pub(crate) user_id: i64,
    pub(crate) status: &'static str,
    pub(crate) created_at_ms: i64,
    pub(crate) lines: Vec<SeedLine>,
}

/// The order with this id, placed by one of `users` users for 1 to 4 of `products` products.
pub(crate) fn order(id: u64, users: u64, products: u64) -> SeedOrder {
    let mut rng = SplitMix64::for_item(ORDER_STREAM, id);
    let user_id = i64::try_from(rng.between(1, users.max(1))).unwrap_or(1);
    let status = rng.pick(ORDER_STATUSES);
    let created_at_ms = timestamp(&mut rng);
    let count = if products == 0 { 0 } else { rng.between(1, 4) };
    let lines = (0..count)
        .map(|_| SeedLine {
            product_id: i64::try_from(rng.between(1, products)).unwrap_or(1),
            quantity: i64::try_from(rng.between(1, 3)).unwrap_or(1),
        })
        .collect();
    SeedOrder {
        user_id,
        status,
        created_at_ms,
        lines,
    }
}

fn timestamp(rng: &mut SplitMix64) -> i64 {
    EPOCH_MS.saturating_add(i64::try_from(rng.below(YEAR_MS)).unwrap_or(0))
}

fn starts_with_vowel(word: &str) -> bool {
    word.chars().next().is_some_and(|c| "AEIOU".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs of splitmix64 seeded with 0, from the reference implementation.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn same_seed_gives_the_same_product_123() {
        assert_eq!(product(123), product(123));
        let first = product(123);
        assert_eq!(
            first.sku,
            format!("{}-000123", sku_prefix_of(first.category))
        );
        assert!(first.updated_at_ms >= EPOCH_MS);
    }

    #[test]
    fn product_123_is_pinned_across_builds() {
        // Pinned: a change here changes every seeded ETag, which benchmarks and docs rely on.
        let seeded = product(123);
        assert_eq!(seeded.sku, "TEN-000123", "{seeded:?}");
        assert_eq!(seeded.name, "Bright Ash Tunnel Tent");
        assert_eq!(seeded.category, "tents");
        assert_eq!(seeded.price_cents, 63_599);
        assert_eq!(seeded.stock, 1);
        assert_eq!(seeded.updated_at_ms, 1_705_176_668_659);
        assert_eq!(
            seeded.description,
            "A bright tunnel tent in ash, tested by our team for a month. \
             Pairs well with our other tents."
        );
    }

    #[test]
    fn products_differ_from_each_other() {
        let names: std::collections::HashSet<String> =
            (1..=200).map(|id| product(id).name).collect();
        assert!(
            names.len() > 150,
            "only {} distinct names in 200 products",
            names.len()
        );
    }

    #[test]
    fn every_category_is_used_and_slugs_are_unique() {
        let used: std::collections::HashSet<&str> =
            (1..=2_000).map(|id| product(id).category).collect();
        assert_eq!(used.len(), CATEGORIES.len());
        let prefixes: std::collections::HashSet<&str> =
            CATEGORIES.iter().map(|c| c.sku_prefix).collect();
        assert_eq!(prefixes.len(), CATEGORIES.len());
    }

    #[test]
    fn prices_stay_in_their_category_range() {
        for id in 1..=500 {
            let seeded = product(id);
            let range = CATEGORIES
                .iter()
                .find(|c| c.slug == seeded.category)
                .map(|c| c.price_cents);
            let (low, high) = range.unwrap_or((0, 0));
            let price = u64::try_from(seeded.price_cents).unwrap_or(0);
            assert!(price >= low && price <= high + 99, "{seeded:?}");
        }
    }

    #[test]
    fn orders_reference_existing_users_and_products() {
        for id in 1..=100 {
            let seeded = order(id, 10, 50);
            assert!((1..=10).contains(&seeded.user_id));
            assert!(!seeded.lines.is_empty() && seeded.lines.len() <= 4);
            assert!(
                seeded
                    .lines
                    .iter()
                    .all(|line| (1..=50).contains(&line.product_id))
            );
        }
        assert!(order(1, 10, 0).lines.is_empty());
    }

    fn sku_prefix_of(slug: &str) -> &'static str {
        CATEGORIES
            .iter()
            .find(|c| c.slug == slug)
            .map(|c| c.sku_prefix)
            .unwrap_or("")
    }
}
