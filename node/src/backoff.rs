//! Retry delays: exponential growth with "full jitter".
//!
//! The ceiling of attempt `n` (1-based) is `min(max, initial × 2^(n−1))`; the delay is drawn
//! uniformly between zero and that ceiling, so nodes that lost the hub at the same moment do
//! not come back at the same moment.
//!
//! Invariants: the ceiling never exceeds `max_ms` and never overflows, whatever the attempt
//! number; a delay never exceeds its ceiling.

use std::time::Duration;

use super::config::RetryConfig;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
}

impl Backoff {
    /// The backoff of a retry policy.
    pub fn new(retry: &RetryConfig) -> Backoff {
        Backoff {
            initial_ms: retry.initial_ms.max(1),
            max_ms: retry.max_ms.max(retry.initial_ms).max(1),
        }
    }

    /// The largest delay of attempt `attempt` (1 for the first retry), in milliseconds.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(63);
        let grown = self.initial_ms.checked_shl(shift).unwrap_or(u64::MAX);
        // checked_shl does not detect bits shifted out; compare against the inverse shift.
        let grown = if grown >> shift != self.initial_ms {
            u64::MAX
        } else {
            grown
        };
        grown.min(self.max_ms)
    }

    /// The delay for `attempt` given a random number `random` (any u64).
    pub fn delay_with(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.ceiling_ms(attempt);
        Duration::from_millis(random % (ceiling + 1))
    }

    /// A random delay for `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_u64())
    }
}

/// A random u64 from the operating system's generator (0 if it fails, which only shortens one
/// delay).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff::new(&RetryConfig {
            initial_ms,
            max_ms,
            give_up_after_secs: 1,
        })
    }

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let b = backoff(500, 60_000);
        let ceilings: Vec<u64> = (1..=9).map(|n| b.ceiling_ms(n)).collect();
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]
        );
        assert_eq!(b.ceiling_ms(0), 500, "attempt 0 is treated as the first");
        assert_eq!(b.ceiling_ms(64), 60_000);
        assert_eq!(b.ceiling_ms(u32::MAX), 60_000);
        let huge = backoff(u64::MAX / 3, u64::MAX);
        assert_eq!(huge.ceiling_ms(3), u64::MAX, "overflow saturates");
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let b = backoff(100, 1000);
        assert_eq!(b.delay_with(1, 0), Duration::ZERO);
        assert_eq!(b.delay_with(1, 100), Duration::from_millis(100));
        assert_eq!(b.delay_with(1, 101), Duration::ZERO);
        assert_eq!(b.delay_with(3, 250), Duration::from_millis(250));
        for attempt in 1..20 {
            for _ in 0..50 {
                assert!(b.delay(attempt) <= Duration::from_millis(b.ceiling_ms(attempt)));
            }
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| b.delay(10)).collect();
        assert!(distinct.len() > 1, "delays vary");
    }
}
