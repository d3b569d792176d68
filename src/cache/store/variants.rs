//! The entries stored under one primary-key hash, newest first. Nearly every URL has one
//! variant, so that case lives inline in the map's bucket, with what a hit needs to pick it
//! (the check hash and the entry): a hit then probes one table and reads one entry.

use std::slice;
use std::sync::Arc;

use crate::cache::entry::Entry;

/// One stored variant as the primary index sees it.
#[derive(Debug)]
pub(super) struct Variant {
    pub(super) id: u64,
    /// A second, independently seeded hash of the primary key: with the map's key it names
    /// the URL by 128 bits, so a hit need not read the key's text (one cache miss fewer).
    pub(super) check: u64,
    pub(super) entry: Arc<Entry>,
}

/// Variants under one primary hash (several URLs may share a hash; `check` tells them apart).
#[derive(Debug)]
pub(super) enum Variants {
    One(Variant),
    Many(Vec<Variant>),
}

/// Whether removing an id left nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Emptied {
    Yes,
    No,
}

impl Variants {
    pub(super) fn as_slice(&self) -> &[Variant] {
        match self {
            Self::One(variant) => slice::from_ref(variant),
            Self::Many(variants) => variants,
        }
    }

    /// Adds `variant` as the newest.
    pub(super) fn push_front(&mut self, variant: Variant) {
        *self = match std::mem::replace(self, Self::Many(Vec::new())) {
            Self::One(other) => Self::Many(vec![variant, other]),
            Self::Many(mut variants) => {
                variants.insert(0, variant);
                Self::Many(variants)
            }
        };
    }

    pub(super) fn remove(&mut self, id: u64) -> Emptied {
        match self {
            Self::One(other) if other.id == id => Emptied::Yes,
            Self::One(_) => Emptied::No,
            Self::Many(variants) => {
                variants.retain(|other| other.id != id);
                if variants.is_empty() {
                    return Emptied::Yes;
                }
                if variants.len() == 1
                    && let Some(only) = variants.pop()
                {
                    *self = Self::One(only);
                }
                Emptied::No
            }
        }
    }
}
