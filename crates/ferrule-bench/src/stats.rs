//! Exact nearest-rank percentiles of a few thousand samples, for scenarios that keep every
//! sample (one per device) and want p95 and p99 without the histogram's bucket error.

/// p50, p95, p99 and the maximum of a set of samples (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Percentiles {
    pub(crate) p50: u64,
    pub(crate) p95: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

impl Percentiles {
    /// The percentiles of `samples` (in any order), `None` when there are none.
    pub(crate) fn of(samples: &[u64]) -> Option<Percentiles> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Percentiles {
            p50: nearest_rank(&sorted, 0.50)?,
            p95: nearest_rank(&sorted, 0.95)?,
            p99: nearest_rank(&sorted, 0.99)?,
            max: *sorted.last()?,
        })
    }
}

/// The nearest-rank `q` quantile (0.0..=1.0) of `sorted`: the smallest sample with at least
/// `q` of all samples at or below it. `None` when empty.
pub(crate) fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // 1-based rank; the float to integer conversion saturates, and the clamp keeps it in range.
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_a_hundred() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.95), Some(95));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&v, 1.0), Some(100));
        assert_eq!(nearest_rank(&v, 0.0), Some(1));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn small_sets_round_up() {
        // With 10 samples p95 and p99 are both the largest: nearest rank never interpolates.
        let v: Vec<u64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.95), Some(100));
        assert_eq!(nearest_rank(&[7], 0.99), Some(7));
    }

    #[test]
    fn percentiles_sort_their_input() {
        let samples = [5, 1, 4, 2, 3];
        assert_eq!(
            Percentiles::of(&samples),
            Some(Percentiles {
                p50: 3,
                p95: 5,
                p99: 5,
                max: 5
            })
        );
        assert_eq!(Percentiles::of(&[]), None);
    }
}
