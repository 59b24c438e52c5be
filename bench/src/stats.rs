//! Repeated measurements and their medians and tails.
//!
//! Medians rather than means: on a shared machine one measurement in twenty
//! lands on a busy moment, and a mean would report that moment. The 95th
//! percentile is kept beside it so a slow tail is not hidden either.

use std::time::{Duration, Instant};

/// Durations of one operation, one per repetition.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, elapsed: Duration) {
        self.0.push(elapsed);
    }

    /// Runs `op`, records how long it took, and passes its result on.
    pub fn time<T>(&mut self, op: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = op();
        self.push(start.elapsed());
        result
    }

    /// Adds another set's measurements to these.
    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn median(&self) -> Duration {
        self.percentile(0.5)
    }

    /// The duration 95 % of the repetitions did not exceed.
    pub fn p95(&self) -> Duration {
        self.percentile(0.95)
    }

    /// How far the median of a set like this one typically lands from the
    /// true median: 1.2533 σ / √n for roughly normal data, with σ estimated
    /// from the interquartile range so a few outliers do not inflate it.
    pub fn median_standard_error(&self) -> Duration {
        let iqr = self.percentile(0.75).saturating_sub(self.percentile(0.25));
        let sigma = iqr.as_secs_f64() / 1.349;
        Duration::from_secs_f64(1.2533 * sigma / (self.0.len() as f64).sqrt())
    }

    /// Nearest-rank percentile: always one of the measured values, never an
    /// interpolation between two.
    ///
    /// # Panics
    ///
    /// When nothing was measured; [`bounded`] runs every loop at least once,
    /// so that means a figure forgot to measure.
    fn percentile(&self, p: f64) -> Duration {
        assert!(!self.0.is_empty(), "percentile of no samples");
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = (p * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// Repetition indices `0..count`, stopping early once `budget` has passed,
/// but always at least one: every loop in the benchmark is bounded in count
/// and in time, and still measures something on a slow machine.
pub fn bounded(count: usize, budget: Duration) -> impl Iterator<Item = usize> {
    let start = Instant::now();
    (0..count.max(1)).take_while(move |&i| i == 0 || start.elapsed() < budget)
}

/// `n` items in an order that rotates with `rep`, so each side of an
/// interleaved comparison goes first, second and last equally often and
/// neither always runs on the cache or scheduler state the other left.
pub fn rotation(rep: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (rep + k) % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Samples {
        let mut s = Samples::new();
        for &v in values {
            s.push(Duration::from_millis(v));
        }
        s
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(s.median(), Duration::from_millis(3));
        assert_eq!(s.p95(), Duration::from_millis(5));
        let twenty = ms(&(1..=20).collect::<Vec<_>>());
        assert_eq!(twenty.p95(), Duration::from_millis(19));
        assert_eq!(ms(&[7]).p95(), Duration::from_millis(7));
    }

    #[test]
    fn standard_error_shrinks_with_more_samples() {
        let few = ms(&(1..=10).collect::<Vec<_>>());
        let many = ms(&(1..=10).cycle().take(1000).collect::<Vec<_>>());
        assert!(many.median_standard_error() < few.median_standard_error() / 5);
        assert_eq!(ms(&[4, 4, 4, 4]).median_standard_error(), Duration::ZERO);
    }

    #[test]
    fn bounded_runs_at_least_once() {
        assert_eq!(bounded(3, Duration::ZERO).count(), 1);
        assert_eq!(bounded(0, Duration::from_secs(60)).count(), 1);
        assert_eq!(bounded(4, Duration::from_secs(60)).count(), 4);
    }

    #[test]
    fn rotation_starts_each_side_in_turn() {
        let orders: Vec<Vec<usize>> = (0..3).map(|r| rotation(r, 3).collect()).collect();
        assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1]]);
    }
}
