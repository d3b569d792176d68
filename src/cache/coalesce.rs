//! Request coalescing: concurrent misses for one key make one origin fetch.
//!
//! The first request for a key becomes the [`Leader`]; the others get a [`Waiter`] and wait
//! (bounded) for the leader's result. The leader ends in one of three ways, and each releases
//! every waiter at once:
//!
//! * [`Leader::publish`]: the response was stored; waiters get the stored entry.
//! * [`Leader::release`]: the response could not be stored (uncacheable, too big, an error);
//!   waiters go to the origin themselves, in parallel. There is no hit-for-pass
//!   serialisation: the next request for the key simply becomes a new leader.
//! * the leader is dropped (its request was cancelled, its task panicked): `Drop` releases the
//!   waiters the same way.
//!
//! A waiter whose wait times out goes to the origin itself. Waiting uses `tokio::sync::watch`
//! and `tokio::time`, so paused-time tests drive it; the table is a `std::sync::Mutex` held for
//! a map operation only, never across an `.await`.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// Why a waiter must fetch from the origin itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The leader's response was not stored.
    Uncacheable,
    /// The leader went away without a result.
    Abandoned,
    /// The bounded wait ran out.
    TimedOut,
    /// The leader stored another Vary variant than this request selects.
    OtherVariant,
}

impl Release {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Uncacheable => "uncacheable",
            Self::Abandoned => "abandoned",
            Self::TimedOut => "timed-out",
            Self::OtherVariant => "other-variant",
        }
    }
}

/// The outcome of a wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waited<T> {
    /// The leader's stored result.
    Ready(T),
    /// Fetch from the origin yourself.
    GoToOrigin(Release),
}

#[derive(Clone, Debug)]
enum Landing<T> {
    Pending,
    Ready(T),
    Released(Release),
}

type Table<T> = Mutex<HashMap<String, Arc<watch::Sender<Landing<T>>>>>;

/// The table of in-flight fetches, keyed by cache key.
#[derive(Debug)]
pub struct Coalescer<T> {
    table: Arc<Table<T>>,
}

impl<T> Default for Coalescer<T> {
    fn default() -> Self {
        Self {
            table: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// The role a request gets for a key.
#[derive(Debug)]
pub enum Join<T> {
    /// Fetch from the origin, then publish or release.
    Leader(Leader<T>),
    /// Wait for the leader.
    Waiter(Waiter<T>),
}

/// The one request fetching a key. Releases its waiters when dropped.
#[derive(Debug)]
pub struct Leader<T> {
    table: Arc<Table<T>>,
    key: String,
    sender: Arc<watch::Sender<Landing<T>>>,
    finished: Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Finished {
    No,
    Yes,
}

/// A request waiting on a leader.
#[derive(Debug)]
pub struct Waiter<T> {
    receiver: watch::Receiver<Landing<T>>,
}

impl<T: Clone> Coalescer<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<watch::Sender<Landing<T>>>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leads the fetch of `key`, or waits on the request that does.
    pub fn join(&self, key: &str) -> Join<T> {
        let mut table = self.lock();
        if let Some(sender) = table.get(key) {
            return Join::Waiter(Waiter {
                receiver: sender.subscribe(),
            });
        }
        let (sender, _) = watch::channel(Landing::Pending);
        let sender = Arc::new(sender);
        table.insert(key.to_owned(), Arc::clone(&sender));
        Join::Leader(Leader {
            table: Arc::clone(&self.table),
            key: key.to_owned(),
            sender,
            finished: Finished::No,
        })
    }

    /// Leads the fetch of `key` if nobody is fetching it: for a stale-while-revalidate
    /// background refresh, which must happen once per key.
    pub fn try_lead(&self, key: &str) -> Option<Leader<T>> {
        let mut table = self.lock();
        match table.entry(key.to_owned()) {
            MapEntry::Occupied(_) => None,
            MapEntry::Vacant(slot) => {
                let (sender, _) = watch::channel(Landing::Pending);
                let sender = Arc::new(sender);
                slot.insert(Arc::clone(&sender));
                Some(Leader {
                    table: Arc::clone(&self.table),
                    key: key.to_owned(),
                    sender,
                    finished: Finished::No,
                })
            }
        }
    }

    /// Fetches in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

impl<T> Leader<T> {
    /// The key being fetched.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Hands the stored result to every waiter.
    pub fn publish(mut self, value: T) {
        self.land(Landing::Ready(value));
    }

    /// Sends every waiter to the origin (the response was not stored).
    pub fn release(mut self) {
        self.land(Landing::Released(Release::Uncacheable));
    }

    fn land(&mut self, landing: Landing<T>) {
        if self.finished == Finished::Yes {
            return;
        }
        self.finished = Finished::Yes;
        // Leave the table first so a request arriving now leads a new fetch (or hits the
        // store) instead of waiting on a finished one.
        {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            if table
                .get(&self.key)
                .is_some_and(|current| Arc::ptr_eq(current, &self.sender))
            {
                table.remove(&self.key);
            }
        }
        self.sender.send_replace(landing);
    }
}

impl<T> Drop for Leader<T> {
    fn drop(&mut self) {
        self.land(Landing::Released(Release::Abandoned));
    }
}

impl<T: Clone> Waiter<T> {
    /// Waits at most `timeout` for the leader.
    pub async fn wait(mut self, timeout: Duration) -> Waited<T> {
        let landed = tokio::time::timeout(
            timeout,
            self.receiver
                .wait_for(|landing| !matches!(landing, Landing::Pending)),
        )
        .await;
        match landed {
            Err(_) => Waited::GoToOrigin(Release::TimedOut),
            Ok(Err(_)) => Waited::GoToOrigin(Release::Abandoned),
            Ok(Ok(landing)) => match &*landing {
                Landing::Ready(value) => Waited::Ready(value.clone()),
                Landing::Released(release) => Waited::GoToOrigin(*release),
                Landing::Pending => Waited::GoToOrigin(Release::Abandoned),
            },
        }
    }
}
