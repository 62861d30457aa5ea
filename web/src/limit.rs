//! Login attempts: after [`LoginLimiter::MAX_FAILURES`] wrong secrets from one address (or for
//! one account: the key is the caller's choice) within the window, that key is refused until
//! the window has passed, right or wrong.
//!
//! Invariants:
//! - A success does not reset a locked address (it must wait like everyone else); it does
//!   clear the failures of an address that is not locked.
//! - The table is bounded: past [`MAX_ADDRESSES`] addresses the oldest entries are dropped.

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

impl<K: Eq + Hash + Clone> LoginLimiter<K> {
    /// Wrong secrets allowed per key and window.
    pub const MAX_FAILURES: u32 = MAX_FAILURES;

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

    /// `Err(wait)` while `ip` is locked out.
    pub fn check(&self, ip: K) -> Result<(), Duration> {
        let mut t = self.table();
        let now = Instant::now();
        match t.get(&ip) {
            Some((n, since)) if now.duration_since(*since) >= self.window => {
                let _ = n;
                t.remove(&ip);
                Ok(())
            }
            Some((n, since)) if *n >= Self::MAX_FAILURES => {
                Err(self.window.saturating_sub(now.duration_since(*since)))
            }
            _ => Ok(()),
        }
    }

    /// Records a wrong secret from `ip`.
    pub fn failed(&self, ip: K) {
        let mut t = self.table();
        let now = Instant::now();
        if t.len() >= MAX_ADDRESSES && !t.contains_key(&ip) {
            let window = self.window;
            t.retain(|_, (_, since)| now.duration_since(*since) < window);
            if t.len() >= MAX_ADDRESSES
                && let Some(oldest) = t
                    .iter()
                    .min_by_key(|(_, (_, s))| *s)
                    .map(|(k, _)| k.clone())
            {
                t.remove(&oldest);
            }
        }
        let e = t.entry(ip).or_insert((0, now));
        e.0 += 1;
    }

    /// Records a right secret from `ip` (only reached when not locked).
    pub fn succeeded(&self, ip: K) {
        self.table().remove(&ip);
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
            assert!(l.check(a).is_ok());
            l.failed(a);
        }
        let wait = l.check(a).unwrap_err();
        assert!(wait <= Duration::from_millis(300));
        assert!(l.check(b).is_ok(), "another address is not affected");
        std::thread::sleep(Duration::from_millis(350));
        assert!(l.check(a).is_ok(), "the window has passed");
    }

    #[test]
    fn a_success_clears_earlier_failures() {
        let l = LoginLimiter::default();
        let a: IpAddr = "::1".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            l.failed(a);
        }
        l.succeeded(a);
        l.failed(a);
        assert!(l.check(a).is_ok());
    }
}
