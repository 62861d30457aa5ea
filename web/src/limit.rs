//! Login attempts: after [`MAX_FAILURES`] wrong secrets from one address (or for
//! one account: the key is the caller's choice) within the window, that key is refused until
//! the window has passed, right or wrong.
//!
//! Invariants:
//! - An attempt is counted when it starts, under the same lock as the check, so parallel
//!   guesses cannot slip past the count; a success then clears it.
//! - A success does not reset a locked key (it must wait like everyone else).
//! - The table is bounded ([`MAX_ADDRESSES`]): the oldest *unlocked* entries are dropped to
//!   make room; a locked entry is never forgotten before its window ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ADDRESSES: usize = 10_000;

/// Failure counts per key (a client address by default, or an account name).
#[derive(Debug)]
pub struct LoginLimiter<K = IpAddr> {
    window: Duration,
    failures: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Eq + Hash + Clone> Default for LoginLimiter<K> {
    fn default() -> Self {
        LoginLimiter::new(Duration::from_secs(300))
    }
}

/// Wrong secrets allowed per key and window.
pub const MAX_FAILURES: u32 = 5;

/// `response` with `Retry-After` saying when a locked key may try again (at least 1 s).
pub fn with_retry_after(
    mut response: axum::response::Response,
    wait: Duration,
) -> axum::response::Response {
    let secs = wait.as_secs().max(1);
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(secs),
    );
    response
}

impl<K: Eq + Hash + Clone> LoginLimiter<K> {
    /// A limiter whose window (counted from the first failure) is `window`.
    pub fn new(window: Duration) -> LoginLimiter<K> {
        LoginLimiter {
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u32, Instant)>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a login attempt for `key`: `Err(wait)` while it is locked out; otherwise the
    /// attempt is counted *now*, under the same lock, as a failure until [`Self::succeeded`]
    /// says otherwise. Parallel guesses therefore cannot all pass before any is counted.
    pub fn attempt(&self, key: K) -> Result<(), Duration> {
        let mut t = self.table();
        let now = Instant::now();
        let window = self.window;
        if let Some((n, since)) = t.get(&key) {
            if now.duration_since(*since) >= window {
                t.remove(&key);
            } else if *n >= MAX_FAILURES {
                return Err(window.saturating_sub(now.duration_since(*since)));
            }
        }
        if t.len() >= MAX_ADDRESSES && !t.contains_key(&key) {
            t.retain(|_, (_, since)| now.duration_since(*since) < window);
            // Full of live entries: drop the oldest one that is not locked, so that filling the
            // table with new keys cannot unlock a locked one.
            if t.len() >= MAX_ADDRESSES {
                let victim = t
                    .iter()
                    .filter(|(_, (n, _))| *n < MAX_FAILURES)
                    .min_by_key(|(_, (_, s))| *s)
                    .map(|(k, _)| k.clone());
                match victim {
                    Some(v) => {
                        t.remove(&v);
                    }
                    // Everything is locked: refuse newcomers rather than forget a lock.
                    None => return Err(window),
                }
            }
        }
        let e = t.entry(key).or_insert((0, now));
        e.0 += 1;
        Ok(())
    }

    /// The attempt of `key` was right: its count is cleared.
    pub fn succeeded(&self, key: K) {
        self.table().remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_fifth_failure_until_the_window_passes() {
        let l = LoginLimiter::new(Duration::from_millis(300));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(l.attempt(a).is_ok());
        }
        let wait = l.attempt(a).unwrap_err();
        assert!(wait <= Duration::from_millis(300));
        assert!(l.attempt(b).is_ok(), "another address is not affected");
        std::thread::sleep(Duration::from_millis(350));
        assert!(l.attempt(a).is_ok(), "the window has passed");
    }

    #[test]
    fn a_success_clears_earlier_failures() {
        let l = LoginLimiter::default();
        let a: IpAddr = "::1".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            assert!(l.attempt(a).is_ok());
        }
        l.succeeded(a);
        for _ in 0..MAX_FAILURES {
            assert!(l.attempt(a).is_ok());
        }
        assert!(l.attempt(a).is_err());
    }

    #[test]
    fn parallel_guesses_are_counted_before_any_is_checked() {
        let l = std::sync::Arc::new(LoginLimiter::<String>::default());
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    let l = l.clone();
                    s.spawn(move || l.attempt("lan".to_string()).is_ok() as usize)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, MAX_FAILURES as usize);
    }
}
