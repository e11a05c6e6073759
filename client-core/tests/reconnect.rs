//! Reconnect policies (docs/protocol/client.md, "Automatic reconnect"; checklist item 61).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use talkback_core::reconnect::*;
use talkback_core::{Duration, ReconnectPolicy, RetryContext};

fn ctx(count: u32, elapsed_ms: u64) -> RetryContext {
    RetryContext {
        previous_retry_count: count,
        elapsed: Duration::from_millis(elapsed_ms),
        retry_reason: "lost".into(),
    }
}

fn run(policy: &mut dyn ReconnectPolicy, n: u32) -> Vec<Option<Duration>> {
    (0..n)
        .map(|i| policy.next_retry_delay(&ctx(i, 0)))
        .collect()
}

const fn s(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

#[test]
fn item_61_default_delays_are_0_2_10_30_seconds_then_stop() {
    assert_eq!(
        run(&mut DefaultReconnectPolicy::default(), 5),
        [s(0), s(2), s(10), s(30), None]
    );
}

#[test]
fn item_61_a_custom_list_is_used_as_given_then_stops() {
    let mut policy =
        ListReconnectPolicy::new(vec![Duration::from_millis(5), Duration::from_secs(1)]);
    assert_eq!(
        run(&mut policy, 3),
        [Some(Duration::from_millis(5)), s(1), None]
    );
    assert_eq!(run(&mut ListReconnectPolicy::new(Vec::new()), 1), [None]);
}

#[test]
fn item_61_a_closure_policy_receives_the_context_and_none_ends_retries() {
    let mut seen = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut policy = move |c: &RetryContext| {
        tx.send((c.previous_retry_count, c.elapsed, c.retry_reason.clone()))
            .unwrap();
        (c.previous_retry_count < 2).then_some(Duration::from_millis(c.elapsed.as_millis() as u64))
    };
    assert_eq!(
        policy.next_retry_delay(&ctx(0, 7)),
        Some(Duration::from_millis(7))
    );
    assert_eq!(policy.next_retry_delay(&ctx(2, 9)), None);
    seen.extend(rx.try_iter());
    assert_eq!(
        seen,
        [
            (0, Duration::from_millis(7), "lost".to_string()),
            (2, Duration::from_millis(9), "lost".to_string())
        ]
    );
    let _boxed: Box<dyn ReconnectPolicy> = Box::new(policy);
}

#[test]
fn exponential_backoff_without_jitter_doubles_up_to_the_cap() {
    let mut policy = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(10));
    assert_eq!(run(&mut policy, 6), [s(1), s(2), s(4), s(8), s(10), s(10)]);
    assert_eq!(policy.next_retry_delay(&ctx(u32::MAX, 0)), s(10));
}

#[test]
fn exponential_backoff_stops_after_max_attempts_or_elapsed() {
    let mut policy = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(10))
        .with_max_attempts(2);
    assert_eq!(run(&mut policy, 3), [s(1), s(2), None]);
    let mut policy = ExponentialBackoff::new(Duration::from_secs(1), Duration::from_secs(10))
        .with_max_elapsed(Duration::from_secs(5));
    assert_eq!(policy.next_retry_delay(&ctx(1, 4_999)), s(2));
    assert_eq!(policy.next_retry_delay(&ctx(2, 5_000)), None);
}

#[test]
fn full_jitter_stays_within_the_capped_delay_and_repeats_for_a_seed() {
    let make = |seed| {
        ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(2))
            .with_jitter(Jitter::Full, seed)
    };
    let a = run(&mut make(42), 30);
    assert_eq!(a, run(&mut make(42), 30));
    assert_ne!(a, run(&mut make(43), 30));
    for (i, d) in a.iter().enumerate() {
        let cap = Duration::from_millis(100 * (1u64 << i.min(20))).min(Duration::from_secs(2));
        assert!(d.unwrap() <= cap, "attempt {i}: {d:?} > {cap:?}");
    }
}

#[test]
fn decorrelated_jitter_stays_between_base_and_cap_and_repeats_for_a_seed() {
    let make = |seed| {
        ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(3))
            .with_jitter(Jitter::Decorrelated, seed)
    };
    let a = run(&mut make(7), 50);
    assert_eq!(a, run(&mut make(7), 50));
    assert_ne!(a, run(&mut make(8), 50));
    let mut previous = Duration::from_millis(100);
    for d in a {
        let d = d.unwrap();
        assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(3));
        assert!(d <= previous * 3);
        previous = d;
    }
}
