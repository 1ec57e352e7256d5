//! Rounding, percentiles and how wrk rounds combine into one figure.

use serde_json::{json, Value};

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50/p99/max/mean of durations, in milliseconds.
pub(crate) fn latency_summary(mut samples_ms: Vec<f64>) -> Value {
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let n = samples_ms.len();
    let mean = samples_ms.iter().sum::<f64>() / n.max(1) as f64;
    json!({
        "samples": n,
        "p50_ms": round3(percentile(&samples_ms, 50.0)),
        "p90_ms": round3(percentile(&samples_ms, 90.0)),
        "p99_ms": round3(percentile(&samples_ms, 99.0)),
        "max_ms": round3(samples_ms.last().copied().unwrap_or(f64::NAN)),
        "mean_ms": round3(mean),
    })
}

/// One figure from several wrk rounds of the same server: the throughput over all of
/// them, the median of each latency percentile, the errors summed, and every round's own.
pub(crate) fn combine_rounds(rounds: &[Value]) -> Value {
    let total = |k: &str| rounds.iter().filter_map(|r| r[k].as_f64()).sum::<f64>();
    let (requests, seconds) = (total("requests"), total("seconds"));
    let med = |k: &str| {
        let v: Vec<f64> = rounds.iter().filter_map(|r| r[k].as_f64()).collect();
        (!v.is_empty()).then(|| round3(median(v)))
    };
    json!({
        "requests_per_s": (seconds > 0.0).then(|| round1(requests / seconds)),
        "requests": requests,
        "seconds": round3(seconds),
        "p50_ms": med("p50_ms"),
        "p90_ms": med("p90_ms"),
        "p99_ms": med("p99_ms"),
        "max_ms": med("max_ms"),
        "errors": total("errors"),
        "rounds": rounds.iter().map(|r| r["requests_per_s"].clone()).collect::<Vec<_>>(),
    })
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn rounds_combine_into_one_figure() {
        let round = |requests: f64, seconds: f64, p99: f64| {
            json!({ "requests_per_s": requests / seconds, "requests": requests, "seconds": seconds,
                    "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": p99, "max_ms": 9.0, "errors": 1.0 })
        };
        let c = combine_rounds(&[
            round(400.0, 4.0, 3.0),
            round(200.0, 4.0, 5.0),
            round(600.0, 4.0, 4.0),
        ]);
        assert_eq!(c["requests_per_s"], json!(100.0), "over all rounds");
        assert_eq!(c["p99_ms"], json!(4.0), "median of the rounds");
        assert_eq!(c["errors"], json!(3.0));
        assert_eq!(c["rounds"], json!([100.0, 50.0, 150.0]));
        assert_eq!(combine_rounds(&[])["requests_per_s"], Value::Null);
    }
}
