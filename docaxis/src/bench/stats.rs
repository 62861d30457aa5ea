//! Latency statistics of a benchmark run: nearest-rank percentiles over exact samples.
//!
//! Invariants: every sample counts (no sampling, no histogram buckets); a percentile is always
//! one of the measured values (nearest-rank definition), so p100 is the maximum and p0 the
//! minimum; an empty sample set has no percentiles rather than an invented zero.

use std::time::Duration;

/// Summary of a set of latencies, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct LatencySummary {
    pub count: usize,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The `p`-th percentile (0 ≤ p ≤ 100) of `sorted` (ascending) by the nearest-rank method: the
/// smallest value such that at least `p` % of the samples are ≤ it. `None` when empty.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let n = sorted.len();
    // Rank in 1..=n; p = 0 is the minimum.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Summarises `samples` (any order). `None` when empty.
pub(crate) fn summarize(samples: &[Duration]) -> Option<LatencySummary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    let at = |p: f64| percentile(&sorted, p).map(ms).unwrap_or(0.0);
    let total: Duration = sorted.iter().sum();
    Some(LatencySummary {
        count: sorted.len(),
        min_ms: at(0.0),
        mean_ms: ms(total) / sorted.len() as f64,
        p50_ms: at(50.0),
        p90_ms: at(90.0),
        p99_ms: at(99.0),
        max_ms: at(100.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&sorted, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&sorted, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&sorted, 99.5), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&sorted, 0.0), Some(Duration::from_millis(1)));

        // Four samples: the median is the second, p99 the last.
        let four = ms(&[10, 20, 30, 40]);
        assert_eq!(percentile(&four, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&four, 51.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&four, 99.0), Some(Duration::from_millis(40)));

        let one = ms(&[7]);
        assert_eq!(percentile(&one, 50.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&one, 99.0), Some(Duration::from_millis(7)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summaries_sort_their_input() {
        let s = summarize(&ms(&[30, 10, 40, 20])).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.min_ms, 10.0);
        assert_eq!(s.p50_ms, 20.0);
        assert_eq!(s.p99_ms, 40.0);
        assert_eq!(s.max_ms, 40.0);
        assert_eq!(s.mean_ms, 25.0);
        assert_eq!(summarize(&[]), None);
    }
}
