//! Delivery latency: measured from each event's *intended* send time (the open-loop schedule),
//! so a publisher or server that falls behind shows up as latency instead of hiding it
//! (coordinated omission). Recorded in microseconds in an HDR histogram, plus one histogram per
//! second for the timeline.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies above this are clamped (one minute, in microseconds).
const HIGHEST: u64 = 60_000_000;

pub struct Latencies {
    all: Histogram<u64>,
    per_second: Vec<Histogram<u64>>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Second {
    pub second: usize,
    pub deliveries: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST, 3).expect("constant bounds are valid")
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { all: histogram(), per_second: Vec::new() }
    }
}

impl Latencies {
    /// Records one delivery `latency_us` after its intended send time, `second` seconds into the run.
    pub fn record(&mut self, second: usize, latency_us: u64) {
        let value = latency_us.clamp(1, HIGHEST);
        let _ = self.all.record(value);
        while self.per_second.len() <= second {
            self.per_second.push(histogram());
        }
        let _ = self.per_second[second].record(value);
    }

    pub fn count(&self) -> u64 {
        self.all.len()
    }

    pub fn percentiles(&self) -> Percentiles {
        summary(&self.all)
    }

    /// The percentiles of the last whole second recorded, for progress lines.
    pub fn second(&self, second: usize) -> Option<Percentiles> {
        self.per_second.get(second).map(summary)
    }

    pub fn timeline(&self) -> Vec<Second> {
        self.per_second
            .iter()
            .enumerate()
            .map(|(second, h)| Second {
                second,
                deliveries: h.len(),
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            })
            .collect()
    }

    /// The latency at each of `quantiles`, for the distribution chart.
    pub fn distribution(&self, quantiles: &[f64]) -> Vec<(f64, u64)> {
        quantiles.iter().map(|&q| (q, self.all.value_at_quantile(q))).collect()
    }
}

fn summary(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        mean_us: h.mean(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_stream() {
        let mut latencies = Latencies::default();
        // 1..=1000 µs once each: p50 ≈ 500, p99 ≈ 990, max 1000.
        for us in 1..=1000 {
            latencies.record((us / 500) as usize, us);
        }
        let p = latencies.percentiles();
        assert_eq!(p.count, 1000);
        assert!((499..=501).contains(&p.p50_us), "{p:?}");
        assert!((989..=991).contains(&p.p99_us), "{p:?}");
        assert_eq!(p.max_us, 1000);
        let timeline = latencies.timeline();
        assert_eq!(timeline.len(), 3);
        assert_eq!(timeline.iter().map(|s| s.deliveries).sum::<u64>(), 1000);
    }
}
