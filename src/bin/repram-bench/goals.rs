//! Ratios to nginx and the goals the run is judged by.

use serde_json::{json, Value};

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 1000.0).round() / 1000.0),
        _ => None,
    }
}

pub(crate) fn ratios_and_goals(f: &Value) -> (Value, Value) {
    let rps = |p: &str| f.pointer(p).and_then(Value::as_f64);
    // Measured in alternating rounds: the median of the rounds' ratios.
    let get_ratio = rps("/get/ratio_median").or_else(|| {
        ratio(
            rps("/get/repram/requests_per_s"),
            rps("/get/nginx/requests_per_s"),
        )
    });
    let put3_ratio = ratio(
        rps("/put/repram_n3/requests_per_s"),
        rps("/put/nginx/requests_per_s"),
    );
    let put10_ratio = ratio(
        rps("/put/repram_n10/requests_per_s"),
        rps("/put/nginx/requests_per_s"),
    );
    let n10_n3 = ratio(
        rps("/put/repram_n10/requests_per_s"),
        rps("/put/repram_n3/requests_per_s"),
    );
    let ratios = json!({
        "get_vs_nginx": get_ratio,
        "put_n3_vs_nginx": put3_ratio,
        "put_n10_vs_nginx": put10_ratio,
        "put_n10_vs_n3": n10_n3,
    });
    let le = |v: Option<f64>, max: f64| v.map(|v| v <= max);
    let ge = |v: Option<f64>, min: f64| v.map(|v| v >= min);
    let mesh = |n: &str| {
        f.pointer(&format!("/mesh/{n}/median_s"))
            .and_then(Value::as_f64)
    };
    // A size that did not converge misses its goal (its median is null).
    let mesh_met = |n: &str, max: f64| match f.pointer(&format!("/mesh/{n}/converged")) {
        Some(Value::Bool(false)) => Some(false),
        _ => le(mesh(n), max),
    };
    let goals = json!([
        { "figure": "GET throughput vs nginx", "goal": ">= 1.0x", "value": get_ratio, "met": ge(get_ratio, 1.0) },
        { "figure": "PUT N=3 vs nginx", "goal": ">= 0.8x", "value": put3_ratio, "met": ge(put3_ratio, 0.8) },
        { "figure": "PUT N=10 vs N=3", "goal": ">= 0.85x", "value": n10_n3, "met": ge(n10_n3, 0.85) },
        { "figure": "mesh formation N=3 (s)", "goal": "<= 0.2", "value": mesh("n3"), "met": mesh_met("n3", 0.2) },
        { "figure": "mesh formation N=10 (s)", "goal": "<= 0.5", "value": mesh("n10"), "met": mesh_met("n10", 0.5) },
        { "figure": "mesh formation N=100 (s)", "goal": "<= 3", "value": mesh("n100"), "met": mesh_met("n100", 3.0) },
        { "figure": "visible everywhere p99 N=3 (ms)", "goal": "<= 2",
          "value": rps("/visible/n3/visible_everywhere/p99_ms"),
          "met": le(rps("/visible/n3/visible_everywhere/p99_ms"), 2.0) },
        { "figure": "memory overhead per key N=1 (bytes)", "goal": "<= 100 B",
          "value": rps("/memory/n1/overhead_bytes_per_key"),
          "met": le(rps("/memory/n1/overhead_bytes_per_key"), 100.0) },
        { "figure": "catch-up of a late node (s)", "goal": "<= 5",
          "value": rps("/catchup/seconds"), "met": le(rps("/catchup/seconds"), 5.0) },
        { "figure": "GET p99 with 4 clients paging /keys vs without", "goal": "within 2x",
          "value": rps("/listing/get_p99_ratio_with_pagers"),
          "met": le(rps("/listing/get_p99_ratio_with_pagers"), 2.0) },
        { "figure": "SIGKILLed process evicted (s)", "goal": "<= 3",
          "value": rps("/evict/seconds"),
          "met": match f.pointer("/evict/evicted") {
              Some(Value::Bool(false)) => Some(false),
              _ => le(rps("/evict/seconds"), 3.0),
          } },
        { "figure": "1 MiB PUT N=3 vs nginx", "goal": ">= 0.5x",
          "value": rps("/big/put_n3_vs_nginx"), "met": ge(rps("/big/put_n3_vs_nginx"), 0.5) },
        { "figure": "1 MiB GET vs nginx", "goal": ">= 0.8x",
          "value": rps("/big/get_vs_nginx"), "met": ge(rps("/big/get_vs_nginx"), 0.8) },
        { "figure": "RSS growth during 1 MiB PUT load vs in-flight cap + stored values", "goal": "<= 1.0x",
          "value": rps("/big/memory/growth_vs_cap_plus_stored"),
          "met": le(rps("/big/memory/growth_vs_cap_plus_stored"), 1.0) },
        { "figure": "RSS after every key expired vs idle, N=3", "goal": "<= 1.2x",
          "value": rps("/memory/after_expiry/after_expiry_vs_idle"),
          "met": le(rps("/memory/after_expiry/after_expiry_vs_idle"), 1.2) },
        { "figure": "memory per logical key, N=3 vs N=1, 100 B values", "goal": "<= 1.3x",
          "value": rps("/memory/n3_vs_n1"), "met": le(rps("/memory/n3_vs_n1"), 1.3) },
        { "figure": "memory per logical key, N=3 vs N=1, 4 KiB values", "goal": "<= 1.1x",
          "value": rps("/memory/n3_vs_n1_4k"), "met": le(rps("/memory/n3_vs_n1_4k"), 1.1) },
    ]);
    (ratios, goals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn goals_follow_the_figures() {
        let f = json!({
            "get": { "repram": { "requests_per_s": 90.0 }, "nginx": { "requests_per_s": 100.0 } },
            "put": { "repram_n3": { "requests_per_s": 20.0 }, "repram_n10": { "requests_per_s": 10.0 },
                     "nginx": { "requests_per_s": 100.0 } },
            "catchup": { "seconds": 7.5 },
        });
        let (ratios, goals) = ratios_and_goals(&f);
        assert_eq!(ratios["get_vs_nginx"], json!(0.9));
        assert_eq!(goals[0]["met"], json!(false));
        assert_eq!(goals[1]["met"], json!(false));
        assert_eq!(goals[2]["met"], json!(false));
        assert_eq!(goals[3]["met"], Value::Null);
        assert_eq!(goals[8]["met"], json!(false));
    }

    #[test]
    fn the_big_value_and_expiry_goals_follow_the_figures() {
        let f = json!({
            "big": { "put_n3_vs_nginx": 0.6, "get_vs_nginx": 0.7,
                     "memory": { "growth_vs_cap_plus_stored": 1.5 } },
            "memory": { "after_expiry": { "after_expiry_vs_idle": 1.1 },
                        "n3_vs_n1": 1.2, "n3_vs_n1_4k": 1.2 },
        });
        let (_, goals) = ratios_and_goals(&f);
        assert_eq!(goals[15]["met"], json!(true));
        assert_eq!(goals[16]["met"], json!(false));
        assert_eq!(goals[11]["met"], json!(true));
        assert_eq!(goals[12]["met"], json!(false));
        assert_eq!(goals[13]["met"], json!(false));
        assert_eq!(goals[14]["met"], json!(true));
        assert_eq!(goals[0]["met"], Value::Null, "no GET figures, no verdict");
    }

    #[test]
    fn the_get_goal_uses_the_median_of_the_paired_rounds() {
        // The aggregates alone would give 0.7; the rounds' median says 1.05.
        let f = json!({
            "get": { "repram": { "requests_per_s": 70.0 }, "nginx": { "requests_per_s": 100.0 },
                     "round_ratios": [1.05, 0.5, 1.1], "ratio_median": 1.05 },
        });
        let (ratios, goals) = ratios_and_goals(&f);
        assert_eq!(ratios["get_vs_nginx"], json!(1.05));
        assert_eq!(goals[0]["met"], json!(true));
    }
}
