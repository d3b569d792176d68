//! The ids stored under one primary-key hash, newest first. Nearly every URL has one variant,
//! so that case lives inline in the map's bucket: a hit then needs no extra heap access.

use std::slice;

/// Ids under one primary hash (several URLs may share a hash; the store compares keys).
#[derive(Debug)]
pub(super) enum Variants {
    One(u64),
    Many(Vec<u64>),
}

/// Whether removing an id left nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Emptied {
    Yes,
    No,
}

impl Variants {
    pub(super) fn as_slice(&self) -> &[u64] {
        match self {
            Self::One(id) => slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }

    /// Adds `id` as the newest.
    pub(super) fn push_front(&mut self, id: u64) {
        match self {
            Self::One(other) => *self = Self::Many(vec![id, *other]),
            Self::Many(ids) => ids.insert(0, id),
        }
    }

    pub(super) fn remove(&mut self, id: u64) -> Emptied {
        match self {
            Self::One(other) if *other == id => Emptied::Yes,
            Self::One(_) => Emptied::No,
            Self::Many(ids) => {
                ids.retain(|other| *other != id);
                match ids.as_slice() {
                    [] => Emptied::Yes,
                    [only] => {
                        *self = Self::One(*only);
                        Emptied::No
                    }
                    _ => Emptied::No,
                }
            }
        }
    }
}
