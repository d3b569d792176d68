//! Header shapes: a hit builds its header map from a template shared by every entry whose
//! stored fields have the same names in the same order, filled with the entry's own values.
//!
//! Why: cloning an entry's own `HeaderMap` reads its bucket vector and index table, two
//! allocations reached only through the entry, so on a store far larger than the CPU caches
//! they are a cache miss that waits for the entry's. A template is read by every hit of its
//! shape and stays in cache. The values come from the entry's block, which the index slot
//! starts loading together with the entry (`entry::warm`) and whose head holds their lengths
//! (see [`pack_lengths`]). Responses from one origin mostly share a handful of shapes.
//!
//! Templates are kept per thread: cloning a custom field name clones its `Bytes`, which writes
//! a reference count that threads sharing one template would contend for. A thread builds a
//! template on its first hit of a shape, from that entry's own map with every value emptied.
//! Shape ids are handed out process-wide, at most [`MAX_SHAPES`]; an entry of a new shape past
//! that, or with a value longer than `u16::MAX`, has no shape and a hit clones its own map.
//!
//! Measured on the 2-core VM, 1 KiB objects from nginx (nine fields, one shape). Paired runs
//! (`benches/peers/ab.sh`, this against the map cloned, both builds loaded at once), CPU per
//! request B/A, median of the rounds: 1 000 objects 0.984, 0.996, 0.976; 1 000 000 objects
//! 0.944, 0.977, 0.979 (the last run had two disturbed rounds at 1 000 000). Alone
//! (`benches/peers/objects.sh`, 10 rounds of 8 s, one build after the other), the 1 000 000
//! against 1 000 hit rate went from 0.91 to 0.95 (ratio of the medians; median of the
//! per-round ratios 0.91 to 0.93). A stripped-down build whose hits all cloned one hot map
//! bounded what this could win: 1 000 objects 0.975, 1 000 000 objects 0.945.

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, PoisonError, RwLock};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// The most shapes given an id, over the process's life (a template is about 110 bytes per
/// field, per thread that has served the shape, and each thread's slot vector 96 bytes per
/// id up to the highest it has served). Ids are not reclaimed: past this, new shapes clone
/// their entry's map on every hit, and a warning says so once.
pub(crate) const MAX_SHAPES: usize = 4096;

/// The names, in order, and sensitivity of a map's fields: what a template copies.
type Key = Box<[(HeaderName, bool)]>;

static SHAPES: LazyLock<RwLock<HashMap<Key, ShapeId>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));
/// Whether the registry's being full has been logged.
static FULL_LOGGED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's templates, by shape id.
    static TEMPLATES: RefCell<Vec<Option<HeaderMap>>> = const { RefCell::new(Vec::new()) };
}

/// A shape's id: which template a hit clones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShapeId(NonZeroU16);

impl ShapeId {
    fn index(self) -> usize {
        usize::from(self.0.get() - 1)
    }
}

/// The id of `headers`' shape, given one on first sight; `None` past [`MAX_SHAPES`] or when a
/// value is too long for the lengths table.
pub(crate) fn shape_of(headers: &HeaderMap) -> Option<ShapeId> {
    if headers
        .values()
        .any(|value| value.len() > usize::from(u16::MAX))
    {
        return None;
    }
    let key: Key = headers
        .iter()
        .map(|(name, value)| (name.clone(), value.is_sensitive()))
        .collect();
    if let Some(id) = SHAPES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Some(*id);
    }
    let mut shapes = SHAPES.write().unwrap_or_else(PoisonError::into_inner);
    let next = shapes.len();
    if let Some(id) = shapes.get(&key) {
        return Some(*id);
    }
    if next >= MAX_SHAPES {
        if !FULL_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                shapes = MAX_SHAPES,
                "header shape registry full: hits on responses of new header shapes clone \
                 their stored header map (slower on a large store, same responses)"
            );
        }
        return None;
    }
    let id = ShapeId(NonZeroU16::new(u16::try_from(next + 1).ok()?)?);
    shapes.insert(key, id);
    Some(id)
}

/// Writes the lengths table a block starts with: each value's length, two bytes
/// little-endian, in the map's iteration order. `false` (and part of a table written) when a
/// value is longer than `u16::MAX`, which [`shape_of`] also refuses.
pub(crate) fn pack_lengths(headers: &HeaderMap, block: &mut Vec<u8>) -> bool {
    for value in headers.values() {
        let Ok(len) = u16::try_from(value.len()) else {
            return false;
        };
        block.extend_from_slice(&len.to_le_bytes());
    }
    true
}

/// The size of the lengths table for `headers`.
pub(crate) fn table_len(headers: &HeaderMap) -> usize {
    headers.len().saturating_mul(2)
}

/// A hit's header map: this thread's template of `shape` (built from `own`, the entry's map,
/// the first time) filled with the values in `block`, which starts with their lengths. `None`
/// when a length runs past the block or a value holds a byte no field value may (the caller
/// then clones `own`); a block that is well formed but laid out for another shape is not
/// detected, which is why only `entry::pack` writes blocks and picks their shape.
pub(crate) fn fill(shape: ShapeId, own: &HeaderMap, block: &Bytes) -> Option<HeaderMap> {
    let filled = TEMPLATES.try_with(|templates| {
        let mut templates = templates.try_borrow_mut().ok()?;
        let index = shape.index();
        if templates.len() <= index {
            templates.resize_with(index + 1, || None);
        }
        let template = templates
            .get_mut(index)?
            .get_or_insert_with(|| template_of(own));
        let mut map = template.clone();
        let lengths = block.get(..table_len(&map))?;
        let mut at = lengths.len();
        for (value, len) in map.values_mut().zip(lengths.chunks_exact(2)) {
            let len = usize::from(u16::from_le_bytes(len.try_into().ok()?));
            let end = at.checked_add(len).filter(|end| *end <= block.len())?;
            let sensitive = value.is_sensitive();
            *value = HeaderValue::from_maybe_shared(block.slice(at..end)).ok()?;
            value.set_sensitive(sensitive);
            at = end;
        }
        Some(map)
    });
    // `try_with` fails only while the thread's locals are being destroyed.
    filled.ok().flatten()
}

/// `own`'s names and sensitivity, in its order, with every value empty (static: no reference
/// count to clone, and no part of the entry's block kept alive). Custom names are copied, so
/// that no two threads' templates share one name's reference count. Its index table is sized
/// like a stored map's, so a hit adds Age and Cache-Status without a rehash (the bucket
/// vector of a copy still grows once: `Vec::clone` keeps no spare room).
fn template_of(own: &HeaderMap) -> HeaderMap {
    let mut template = HeaderMap::with_capacity(own.len().saturating_add(2));
    for (name, value) in own {
        let name =
            HeaderName::from_bytes(name.as_str().as_bytes()).unwrap_or_else(|_| name.clone());
        let mut empty = HeaderValue::from_static("");
        empty.set_sensitive(value.is_sensitive());
        template.append(name, empty);
    }
    // The clone drops the spare buckets `with_capacity` left and keeps the index table.
    template.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::headers as map;

    fn block_of(map: &HeaderMap) -> Bytes {
        let mut block = Vec::new();
        pack_lengths(map, &mut block);
        for value in map.values() {
            block.extend_from_slice(value.as_bytes());
        }
        block.extend_from_slice(b"the body");
        Bytes::from(block)
    }

    fn fields(map: &HeaderMap) -> Vec<(String, Vec<u8>, bool)> {
        map.iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    value.as_bytes().to_vec(),
                    value.is_sensitive(),
                )
            })
            .collect()
    }

    #[test]
    fn a_filled_template_equals_the_entry_map_in_order_values_and_sensitivity() {
        let mut own = map(&[
            ("etag", "\"v1\""),
            ("x-shape-test-a", "custom"),
            ("set-cookie", "a=1"),
            ("cache-control", "max-age=60"),
            ("set-cookie", "b=2"),
            ("content-length", ""),
        ]);
        if let Some(value) = own.get_mut("x-shape-test-a") {
            value.set_sensitive(true);
        }
        let shape = shape_of(&own).unwrap();
        let block = block_of(&own);
        let filled = fill(shape, &own, &block).unwrap();
        assert_eq!(fields(&filled), fields(&own));
        assert_eq!(filled, own);
        // Again, now from this thread's template, with another entry's values.
        let mut other = map(&[
            ("etag", "\"v2\""),
            ("x-shape-test-a", "other"),
            ("set-cookie", "c=3"),
            ("cache-control", "no-cache"),
            ("set-cookie", "d=4"),
            ("content-length", "12"),
        ]);
        if let Some(value) = other.get_mut("x-shape-test-a") {
            value.set_sensitive(true);
        }
        assert_eq!(shape_of(&other), Some(shape));
        let filled = fill(shape, &other, &block_of(&other)).unwrap();
        assert_eq!(fields(&filled), fields(&other));
        // The values are slices of the block, not copies.
        let block = block_of(&other);
        let filled = fill(shape, &other, &block).unwrap();
        let range = block.as_ptr_range();
        assert!(
            filled
                .values()
                .filter(|value| !value.is_empty())
                .all(|value| range.contains(&value.as_bytes().as_ptr()))
        );
    }

    #[test]
    fn names_in_another_order_or_sensitivity_are_another_shape() {
        let one = map(&[("x-shape-test-b", "1"), ("etag", "\"x\"")]);
        let swapped = map(&[("etag", "\"x\""), ("x-shape-test-b", "1")]);
        let mut sensitive = one.clone();
        if let Some(value) = sensitive.get_mut("etag") {
            value.set_sensitive(true);
        }
        let ids = [&one, &swapped, &sensitive].map(|map| shape_of(map).unwrap());
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert_eq!(shape_of(&one.clone()), Some(ids[0]));
        // Each shape fills with its own names, whichever was built first on this thread.
        for map in [&swapped, &one, &sensitive] {
            let shape = shape_of(map).unwrap();
            assert_eq!(
                fields(&fill(shape, map, &block_of(map)).unwrap()),
                fields(map)
            );
        }
    }

    #[test]
    fn a_block_that_does_not_match_gives_none() {
        let own = map(&[("x-shape-test-c", "value"), ("etag", "\"v\"")]);
        let shape = shape_of(&own).unwrap();
        let block = block_of(&own);
        // Too short for the table, and too short for the values it announces.
        assert!(fill(shape, &own, &block.slice(..3)).is_none());
        assert!(fill(shape, &own, &block.slice(..6)).is_none());
        // A length running past the end.
        let mut damaged = block.to_vec();
        damaged[0] = 0xff;
        damaged[1] = 0xff;
        assert!(fill(shape, &own, &Bytes::from(damaged)).is_none());
        // A byte no field value may hold.
        let mut invalid = block.to_vec();
        invalid[4] = b'\n';
        assert!(fill(shape, &own, &Bytes::from(invalid)).is_none());
    }

    #[test]
    fn a_value_too_long_for_the_table_has_no_shape() {
        let long = "v".repeat(usize::from(u16::MAX) + 1);
        let too_long = map(&[("x-shape-test-d", &long)]);
        assert!(shape_of(&too_long).is_none());
        assert!(!pack_lengths(&too_long, &mut Vec::new()));
        let longest = "v".repeat(usize::from(u16::MAX));
        assert!(shape_of(&map(&[("x-shape-test-d", &longest)])).is_some());
    }
}
