use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::cache::coalesce::{Coalescer, Waited};
use crate::cache::{Join, Release};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn one_hundred_concurrent_misses_make_one_leader_and_all_get_its_result() {
    let table = Arc::new(Coalescer::<u32>::new());
    let leaders = Arc::new(AtomicUsize::new(0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (table, leaders, fetches) = (
            Arc::clone(&table),
            Arc::clone(&leaders),
            Arc::clone(&fetches),
        );
        tasks.push(tokio::spawn(async move {
            match table.join("http://h/a") {
                Join::Leader(leader) => {
                    leaders.fetch_add(1, Ordering::SeqCst);
                    fetches.fetch_add(1, Ordering::SeqCst);
                    // The origin takes a while; every other request has joined by then.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    leader.publish(7);
                    Waited::Ready(7)
                }
                Join::Waiter(waiter) => waiter.wait(WAIT).await,
            }
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), Waited::Ready(7));
    }
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(table.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_uncacheable_response_releases_every_waiter_at_once() {
    let table = Coalescer::<u32>::new();
    let Join::Leader(leader) = table.join("k") else {
        panic!("first is the leader");
    };
    let waiters: Vec<_> = (0..10)
        .map(|_| match table.join("k") {
            Join::Waiter(waiter) => tokio::spawn(waiter.wait(WAIT)),
            Join::Leader(_) => panic!("only one leader"),
        })
        .collect();
    let started = tokio::time::Instant::now();
    leader.release();
    for waiter in waiters {
        assert_eq!(
            waiter.await.expect("task"),
            Waited::GoToOrigin(Release::Uncacheable)
        );
    }
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "nobody waited for a timeout"
    );
    assert!(
        matches!(table.join("k"), Join::Leader(_)),
        "the next request leads, no hit-for-pass"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_leader_releases_its_waiters() {
    let table = Coalescer::<u32>::new();
    let Join::Leader(leader) = table.join("k") else {
        panic!("leader");
    };
    let Join::Waiter(waiter) = table.join("k") else {
        panic!("waiter");
    };
    let waiting = tokio::spawn(waiter.wait(WAIT));
    // The leader's request is cancelled: its future, and the guard with it, is dropped.
    let cancelled = tokio::spawn(async move {
        let _leader = leader;
        std::future::pending::<()>().await;
    });
    tokio::task::yield_now().await;
    cancelled.abort();
    assert_eq!(
        waiting.await.expect("task"),
        Waited::GoToOrigin(Release::Abandoned)
    );
    assert_eq!(table.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_wait_times_out_goes_to_the_origin() {
    let table = Coalescer::<u32>::new();
    let Join::Leader(_leader) = table.join("k") else {
        panic!("leader");
    };
    let Join::Waiter(waiter) = table.join("k") else {
        panic!("waiter");
    };
    let started = tokio::time::Instant::now();
    assert_eq!(
        waiter.wait(Duration::from_secs(3)).await,
        Waited::GoToOrigin(Release::TimedOut)
    );
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn try_lead_gives_one_background_refresh_per_key() {
    let table = Coalescer::<u32>::new();
    let first = table.try_lead("k").expect("first refresh");
    assert!(table.try_lead("k").is_none());
    assert!(table.try_lead("other").is_some());
    first.publish(1);
    assert!(
        table.try_lead("k").is_some(),
        "a finished refresh frees the key"
    );
}
