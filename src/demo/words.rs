//! The word lists and categories the seeded catalogue is drawn from.
//!
//! Plain data; `generator.rs` decides how it is combined.

/// A category: its slug (used in URLs and Surrogate-Key), display name, SKU prefix, the nouns
/// its product names end with, and its price range in cents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Category {
    pub(crate) slug: &'static str,
    pub(crate) name: &'static str,
    pub(crate) sku_prefix: &'static str,
    pub(crate) nouns: &'static [&'static str],
    pub(crate) price_cents: (u64, u64),
}

const fn category(
    slug: &'static str,
    name: &'static str,
    sku_prefix: &'static str,
    nouns: &'static [&'static str],
    price_cents: (u64, u64),
) -> Category {
    Category {
        slug,
        name,
        sku_prefix,
        nouns,
        price_cents,
    }
}

/// The twenty categories of the catalogue.
pub(crate) const CATEGORIES: [Category; 20] = [
    category(
        "books",
        "Books",
        "BOO",
        &["Novel", "Cookbook", "Field Guide", "Atlas"],
        (800, 6_000),
    ),
    category(
        "lamps",
        "Lamps",
        "LAM",
        &["Desk Lamp", "Floor Lamp", "Reading Lamp", "Pendant Lamp"],
        (2_500, 25_000),
    ),
    category(
        "chairs",
        "Chairs",
        "CHA",
        &["Armchair", "Dining Chair", "Office Chair", "Stool"],
        (4_000, 60_000),
    ),
    category(
        "desks",
        "Desks",
        "DES",
        &["Standing Desk", "Writing Desk", "Corner Desk"],
        (9_000, 90_000),
    ),
    category(
        "rugs",
        "Rugs",
        "RUG",
        &["Runner Rug", "Area Rug", "Wool Rug"],
        (3_000, 80_000),
    ),
    category(
        "mugs",
        "Mugs",
        "MUG",
        &["Coffee Mug", "Travel Mug", "Espresso Cup"],
        (600, 4_000),
    ),
    category(
        "kettles",
        "Kettles",
        "KET",
        &["Kettle", "Gooseneck Kettle", "Stovetop Kettle"],
        (2_000, 15_000),
    ),
    category(
        "bicycles",
        "Bicycles",
        "BIC",
        &["Road Bike", "City Bike", "Gravel Bike", "Folding Bike"],
        (30_000, 400_000),
    ),
    category(
        "tents",
        "Tents",
        "TEN",
        &["Dome Tent", "Tunnel Tent", "Ultralight Tent"],
        (8_000, 90_000),
    ),
    category(
        "headphones",
        "Headphones",
        "HEA",
        &["Headphones", "Earbuds", "Studio Headphones"],
        (2_000, 50_000),
    ),
    category(
        "keyboards",
        "Keyboards",
        "KEY",
        &[
            "Mechanical Keyboard",
            "Compact Keyboard",
            "Ergonomic Keyboard",
        ],
        (3_000, 30_000),
    ),
    category(
        "monitors",
        "Monitors",
        "MON",
        &["Monitor", "Ultrawide Monitor", "Portable Monitor"],
        (12_000, 150_000),
    ),
    category(
        "plants",
        "Plants",
        "PLA",
        &["Fiddle Leaf Fig", "Snake Plant", "Monstera", "Bonsai"],
        (1_500, 12_000),
    ),
    category(
        "candles",
        "Candles",
        "CAN",
        &["Scented Candle", "Pillar Candle", "Tealight Set"],
        (800, 5_000),
    ),
    category(
        "backpacks",
        "Backpacks",
        "BAC",
        &["Daypack", "Hiking Backpack", "Laptop Backpack"],
        (3_000, 25_000),
    ),
    category(
        "watches",
        "Watches",
        "WAT",
        &["Field Watch", "Dive Watch", "Chronograph"],
        (5_000, 200_000),
    ),
    category(
        "sneakers",
        "Sneakers",
        "SNE",
        &["Running Shoe", "Court Sneaker", "Trail Shoe"],
        (4_000, 20_000),
    ),
    category(
        "jackets",
        "Jackets",
        "JAC",
        &["Rain Jacket", "Down Jacket", "Fleece"],
        (5_000, 40_000),
    ),
    category(
        "toys",
        "Toys",
        "TOY",
        &["Wooden Train", "Puzzle", "Plush Bear", "Kite"],
        (900, 8_000),
    ),
    category(
        "board-games",
        "Board games",
        "BOA",
        &["Strategy Game", "Party Game", "Card Game"],
        (1_500, 9_000),
    ),
];

pub(crate) const ADJECTIVES: &[&str] = &[
    "Classic",
    "Compact",
    "Everyday",
    "Heritage",
    "Modern",
    "Nordic",
    "Rustic",
    "Urban",
    "Vintage",
    "Deluxe",
    "Essential",
    "Premium",
    "Coastal",
    "Alpine",
    "Studio",
    "Signature",
    "Weekend",
    "Midnight",
    "Golden",
    "Quiet",
    "Bold",
    "Soft",
    "Bright",
    "Wild",
];

pub(crate) const MATERIALS: &[&str] = &[
    "Oak", "Walnut", "Ash", "Brass", "Copper", "Steel", "Linen", "Wool", "Leather", "Ceramic",
    "Bamboo", "Slate", "Ivory", "Sage", "Indigo", "Charcoal",
];

pub(crate) const FEATURES: &[&str] = &[
    "made to last for years",
    "designed in a small studio",
    "easy to clean and easy to love",
    "tested by our team for a month",
    "backed by a two-year warranty",
    "finished by hand",
];

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sami", "Tara",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Andersen", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Silva",
];

/// The states an order can be in.
pub(crate) const ORDER_STATUSES: &[&str] =
    &["pending", "paid", "shipped", "delivered", "cancelled"];
