//! The table printed at the end of a run (and by `repram-bench table`).

use std::fmt::Write as _;

use serde_json::Value;

pub(crate) fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if decimals == 0 {
                // Thousands separators for throughput.
                let s = format!("{:.0}", v);
                let mut out = String::new();
                for (i, c) in s.chars().enumerate() {
                    if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                        out.push(',');
                    }
                    out.push(c);
                }
                out
            } else {
                format!("{v:.decimals$}")
            }
        }
        _ => "-".into(),
    }
}

pub(crate) fn render_table(report: &Value) -> String {
    let f = &report["figures"];
    let num = |p: &str| f.pointer(p).and_then(Value::as_f64);
    let goal = |i: usize| {
        report["goals"][i]["goal"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    let met = |i: usize| match report["goals"][i]["met"].as_bool() {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    let lat = |p: &str| {
        format!(
            "{} / {}",
            fmt_num(num(&format!("{p}/p50_ms")), 2),
            fmt_num(num(&format!("{p}/p99_ms")), 2)
        )
    };
    let mesh_cell = |n: &str| {
        let m = f.pointer(&format!("/mesh/{n}"));
        match m {
            None if f.pointer("/mesh/n3").is_some() => "not in quick mode".to_string(),
            None => "-".to_string(),
            Some(m) if m.get("error").is_some() => "error".into(),
            Some(m) if m["converged"].as_bool() == Some(true) => {
                format!("{} s", fmt_num(m["median_s"].as_f64(), 3))
            }
            Some(m) => format!(
                "did not converge in {}s",
                m["timeout_s"].as_u64().unwrap_or(0)
            ),
        }
    };
    let ratio_cell = |r: &str| fmt_num(report["ratios"][r].as_f64(), 2) + "x";
    let mut rows: Vec<[String; 5]> = vec![[
        "figure".into(),
        "repram-flux".into(),
        "reference".into(),
        "ratio / goal".into(),
        "met".into(),
    ]];
    rows.push([
        "GET req/s (wrk -c50, 100 B)".into(),
        fmt_num(num("/get/repram/requests_per_s"), 0),
        format!("nginx {}", fmt_num(num("/get/nginx/requests_per_s"), 0)),
        format!(
            "{} ({}, median of rounds)",
            ratio_cell("get_vs_nginx"),
            goal(0)
        ),
        met(0).into(),
    ]);
    rows.push([
        "GET p50 / p99 ms".into(),
        lat("/get/repram"),
        format!("nginx {}", lat("/get/nginx")),
        String::new(),
        String::new(),
    ]);
    rows.push([
        "PUT req/s N=3".into(),
        fmt_num(num("/put/repram_n3/requests_per_s"), 0),
        format!("nginx {}", fmt_num(num("/put/nginx/requests_per_s"), 0)),
        format!("{} ({})", ratio_cell("put_n3_vs_nginx"), goal(1)),
        met(1).into(),
    ]);
    rows.push([
        "PUT req/s N=10".into(),
        fmt_num(num("/put/repram_n10/requests_per_s"), 0),
        "N=3".into(),
        format!("{} of N=3 ({})", ratio_cell("put_n10_vs_n3"), goal(2)),
        met(2).into(),
    ]);
    rows.push([
        "PUT p50 / p99 ms N=3; N=10".into(),
        format!("{}; {}", lat("/put/repram_n3"), lat("/put/repram_n10")),
        format!("nginx {}", lat("/put/nginx")),
        String::new(),
        String::new(),
    ]);
    for (i, n) in ["n3", "n10", "n100"].iter().enumerate() {
        rows.push([
            format!("mesh formation N={}", &n[1..]),
            mesh_cell(n),
            String::new(),
            format!("{} s", goal(3 + i)),
            met(3 + i).into(),
        ]);
    }
    rows.push([
        "visible on all, p50 / p99 ms N=3".into(),
        lat("/visible/n3/visible_everywhere"),
        format!("PUT answer {}", lat("/visible/n3/put_response")),
        "p99 <= 2 ms".into(),
        met(6).into(),
    ]);
    rows.push([
        "visible on all, p50 / p99 ms N=10".into(),
        lat("/visible/n10/visible_everywhere"),
        format!("PUT answer {}", lat("/visible/n10/put_response")),
        String::new(),
        String::new(),
    ]);
    rows.push([
        "memory overhead B/key N=1".into(),
        fmt_num(num("/memory/n1/overhead_bytes_per_key"), 0),
        format!(
            "RSS growth {} B/key",
            fmt_num(num("/memory/n1/bytes_per_key_copy_total"), 0)
        ),
        goal(7),
        met(7).into(),
    ]);
    for (i, suffix, size) in [(15, "", "100 B"), (16, "_4k", "4 KiB")] {
        rows.push([
            format!("RSS growth B/key N=3, {size} values"),
            fmt_num(
                num(&format!("/memory/n3{suffix}/growth_bytes_per_logical_key")),
                0,
            ),
            format!(
                "N=1 {}",
                fmt_num(
                    num(&format!("/memory/n1{suffix}/growth_bytes_per_logical_key")),
                    0
                )
            ),
            format!(
                "{}x of N=1 ({})",
                fmt_num(num(&format!("/memory/n3_vs_n1{suffix}")), 2),
                goal(i)
            ),
            met(i).into(),
        ]);
    }
    let catchup = match f.get("catchup") {
        Some(c) if c["caught_up"].as_bool() == Some(true) => {
            format!("{} s", fmt_num(c["seconds"].as_f64(), 3))
        }
        Some(c) if c.get("error").is_some() => "error".into(),
        Some(c) => format!(
            "not done in {}s ({} keys)",
            c["timeout_s"].as_u64().unwrap_or(0),
            c["keys_held_at_end"].as_u64().unwrap_or(0)
        ),
        None => "-".into(),
    };
    rows.push([
        format!(
            "catch-up, {} keys",
            fmt_num(f.pointer("/catchup/keys").and_then(Value::as_f64), 0)
        ),
        catchup,
        String::new(),
        format!("{} s", goal(8)),
        met(8).into(),
    ]);
    rows.push([
        format!(
            "GET p99 ms, alone / 4 pagers ({} keys)",
            fmt_num(f.pointer("/listing/keys").and_then(Value::as_f64), 0)
        ),
        format!(
            "{} / {}",
            fmt_num(num("/listing/get_alone/p99_ms"), 2),
            fmt_num(num("/listing/get_with_pagers/p99_ms"), 2)
        ),
        format!(
            "GET req/s {} / {}",
            fmt_num(num("/listing/get_alone/requests_per_s"), 0),
            fmt_num(num("/listing/get_with_pagers/requests_per_s"), 0)
        ),
        format!(
            "{}x ({})",
            fmt_num(num("/listing/get_p99_ratio_with_pagers"), 2),
            goal(9)
        ),
        met(9).into(),
    ]);
    rows.push([
        "one client pages all keys".into(),
        format!(
            "{} pages, {} s",
            fmt_num(num("/listing/one_client_pages_through_all_keys/pages"), 0),
            fmt_num(num("/listing/one_client_pages_through_all_keys/seconds"), 2)
        ),
        format!(
            "/keys p99 {} ms",
            fmt_num(
                num("/listing/one_client_pages_through_all_keys/call_ms/p99_ms"),
                2
            )
        ),
        String::new(),
        String::new(),
    ]);
    let evict = match f.get("evict") {
        Some(e) if e["evicted"].as_bool() == Some(true) => {
            format!("{} s", fmt_num(e["seconds"].as_f64(), 3))
        }
        Some(e) if e.get("error").is_some() => "error".into(),
        Some(e) => format!("not in {}s", e["timeout_s"].as_u64().unwrap_or(0)),
        None => "-".into(),
    };
    rows.push([
        "SIGKILLed process evicted, 3+3 nodes".into(),
        evict,
        String::new(),
        format!("{} s", goal(10)),
        met(10).into(),
    ]);
    rows.push([
        "memory after every key expired, N=3".into(),
        format!(
            "{} MiB",
            fmt_num(
                num("/memory/after_expiry/rss_after_expiry_kib").map(|k| k / 1024.0),
                1
            )
        ),
        format!(
            "idle {} MiB",
            fmt_num(
                num("/memory/after_expiry/rss_idle_kib").map(|k| k / 1024.0),
                1
            )
        ),
        format!(
            "{}x ({})",
            fmt_num(num("/memory/after_expiry/after_expiry_vs_idle"), 2),
            goal(14)
        ),
        met(14).into(),
    ]);
    rows.push([
        "1 MiB PUT req/s N=3".into(),
        fmt_num(num("/big/repram_put_n3/requests_per_s"), 0),
        format!("nginx {}", fmt_num(num("/big/nginx_put/requests_per_s"), 0)),
        format!(
            "{}x ({})",
            fmt_num(num("/big/put_n3_vs_nginx"), 2),
            goal(11)
        ),
        met(11).into(),
    ]);
    rows.push([
        "1 MiB GET req/s".into(),
        fmt_num(num("/big/repram_get/requests_per_s"), 0),
        format!("nginx {}", fmt_num(num("/big/nginx_get/requests_per_s"), 0)),
        format!("{}x ({})", fmt_num(num("/big/get_vs_nginx"), 2), goal(12)),
        met(12).into(),
    ]);
    rows.push([
        "RSS growth in 1 MiB PUT load".into(),
        format!(
            "{} MiB",
            fmt_num(
                num("/big/memory/rss_peak_growth_bytes").map(|b| b / 1048576.0),
                1
            )
        ),
        format!(
            "cap {} MiB",
            fmt_num(
                num("/big/memory/inflight_cap_bytes").map(|b| b / 1048576.0),
                0
            )
        ),
        format!(
            "{}x of cap + stored ({})",
            fmt_num(num("/big/memory/growth_vs_cap_plus_stored"), 2),
            goal(13)
        ),
        met(13).into(),
    ]);
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let commit = &report["commit"];
    let _ = writeln!(
        out,
        "\nrepram-flux benchmark ({} mode, {} build) — {} — commit {}{}",
        report["mode"].as_str().unwrap_or("?"),
        report["profile"].as_str().unwrap_or("?"),
        report["timestamp"].as_str().unwrap_or("?"),
        commit["sha"]
            .as_str()
            .map(|s| &s[..s.len().min(10)])
            .unwrap_or("?"),
        if commit["dirty"].as_bool() == Some(true) {
            " (uncommitted changes)"
        } else {
            ""
        }
    );
    let m = &report["machine"];
    let _ = writeln!(
        out,
        "machine: {} cores, {}, {} GiB; load before/after: {} / {}\n",
        m["nproc"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["mem_total_gib"],
        report["load_average_before"].as_str().unwrap_or("?"),
        report["load_average_after"].as_str().unwrap_or("?"),
    );
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", line.join(" | "));
        if i == 0 {
            let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "|-{}-|", sep.join("-|-"));
        }
    }
    if let Some(skipped) = report["skipped_for_time"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let names: Vec<&str> = skipped.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "\nskipped (time budget used up): {}", names.join(", "));
    }
    if let Some(errors) = report["errors"].as_array().filter(|a| !a.is_empty()) {
        let _ = writeln!(out, "\nfailed:");
        for e in errors.iter().filter_map(Value::as_str) {
            let _ = writeln!(out, "  - {}", e.lines().next().unwrap_or(""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(fmt_num(Some(1234567.4), 0), "1,234,567");
        assert_eq!(fmt_num(Some(999.0), 0), "999");
        assert_eq!(fmt_num(Some(1.23456), 2), "1.23");
        assert_eq!(fmt_num(None, 2), "-");
    }
}
