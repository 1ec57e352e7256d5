//! The real binary on Flux duty: `flux-spec`, `healthcheck`, and two "Flux instances"
//! (processes on 127.0.0.2 and 127.0.0.3) that find each other only through a fake Flux
//! location API.

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{binary, free_range, get, put, wait_until, Process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn flux_spec_prints_the_committed_spec() {
    let out = binary()
        .args([
            "flux-spec",
            "--name",
            "repram",
            "--owner",
            "1ReplaceWithYourFluxZelID",
            "--image",
            "repram/repram-flux:0.1.0",
            "--domain",
            "fade.repram.io",
            "--nodes",
            "3",
            "--instances",
            "3",
            "--home-page",
            "fade",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flux-app.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn flux_spec_bad_input_exits_2_with_one_line() {
    let base = [
        "flux-spec",
        "--name",
        "demo",
        "--owner",
        "1abc",
        "--image",
        "me/img:1",
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["flux-spec"], "missing --name, --owner, --image"),
        (
            &["--nodes", "0"],
            "--nodes 0: expected a whole number from 1 to 50",
        ),
        (
            &["--nodes", "51"],
            "--nodes 51: expected a whole number from 1 to 50",
        ),
        (
            &["--instances", "many"],
            "--instances many: expected a whole number from 1 to 100",
        ),
        (&["--frobnicate"], "unknown argument --frobnicate"),
        (
            &["--domain", "http://x.example"],
            "--domain http://x.example: expected a domain name",
        ),
    ];
    for (extra, want) in cases {
        let mut args: Vec<&str> = if extra == &["flux-spec"] {
            vec![]
        } else {
            base.to_vec()
        };
        args.extend_from_slice(extra);
        let out = binary().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("repram-flux flux-spec: {want}")),
            "{args:?}: {stderr}"
        );
    }
    let out = binary().args(["flux-spec", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: repram-flux flux-spec"));
    let out = binary()
        .args([
            "flux-spec",
            "--nodes",
            "12",
            "--name",
            "big",
            "--owner",
            "1abc",
            "--image",
            "me/img:1",
        ])
        .output()
        .unwrap();
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(spec["compose"].as_array().unwrap().len(), 3);
}

#[test]
fn flux_spec_check_exit_statuses() {
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/flux-app.json");
    let out = binary()
        .args(["flux-spec", "--check", committed])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    // Valid, with the example's placeholders: the warnings status, not the error one.
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .count(),
        3
    );

    // Standard input, a spec of one's own: clean.
    let own = binary()
        .args([
            "flux-spec",
            "--name",
            "kv",
            "--owner",
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "--image",
            "me/repram-flux:1.0.0",
        ])
        .output()
        .unwrap();
    assert_eq!(own.status.code(), Some(0));
    assert!(
        own.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let mut child = binary()
        .args(["flux-spec", "--check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &own.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "-: valid v8 app\n")
    );

    // A secret in a public spec is an error.
    let text = String::from_utf8(own.stdout).unwrap().replace(
        "\"REPRAM_RATE_LIMIT=100\",",
        "\"REPRAM_RATE_LIMIT=100\", \"REPRAM_CLUSTER_SECRET=0123456789abcdef\",",
    );
    let mut child = binary()
        .args(["flux-spec", "--check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("REPRAM_CLUSTER_SECRET in a public spec"),
        "{report}"
    );

    let help = binary().args(["flux-spec", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit status: 0 printed"), "{help}");
    assert!(
        help.contains("3 the\nchecked spec is valid but has warnings"),
        "{help}"
    );
}

fn healthcheck(env: &[(&str, String)]) -> (i32, String) {
    let mut cmd = binary();
    cmd.arg("healthcheck")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_reports_the_local_nodes() {
    let base = free_range(4);
    let env = common::env_for(base, 4, 2);
    let mut proc = Process::start(&env);
    let ports = proc.claimed_ports(2).await;
    // Not on Flux (or an older FluxOS): said once, before the nodes start.
    let log = proc.log_text();
    assert_eq!(
        log.matches("FLUX_APP_NAME is not set: the Flux location API is not asked")
            .count(),
        1,
        "{log}"
    );
    for p in &ports {
        let url = format!("http://127.0.0.1:{p}/health");
        wait_until(Duration::from_secs(10), "health", || {
            let url = url.clone();
            async move { get(&url).await.is_some_and(|r| r.status == 200) }
        })
        .await;
    }
    let (code, out) = tokio::task::spawn_blocking({
        let env = env.clone();
        move || healthcheck(&env)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("healthy: 2 of 2 nodes healthy"), "{out}");

    // Expecting more nodes than run is unhealthy.
    let mut more = env.clone();
    more.retain(|(k, _)| *k != "NODE_COUNT");
    more.push(("NODE_COUNT", "3".into()));
    let (code, out) = tokio::task::spawn_blocking(move || healthcheck(&more))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("unhealthy: 2 of 3"), "{out}");

    proc.signal("KILL");
    proc.wait_exit(Duration::from_secs(5));
    let (code, out) = tokio::task::spawn_blocking(move || healthcheck(&env))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");

    let (code, _) = tokio::task::spawn_blocking(|| healthcheck(&[("NODE_COUNT", "x".into())]))
        .await
        .unwrap();
    assert_eq!(code, 2);
}

/// A fake Flux API on 127.0.0.1 answering every request with `body`.
async fn fake_flux_api(body: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if buf.starts_with(b"GET /apps/location/repram ") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

/// Peer addresses seen by the node at `addr` (`ip:port`).
async fn peer_addrs(addr: &str) -> Vec<String> {
    let Some(r) = get(&format!("http://{addr}/peers")).await else {
        return Vec::new();
    };
    let mut out: Vec<String> = r.json()["peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_mesh_through_the_flux_location_api() {
    let base = free_range(3);
    let (api, hits) = fake_flux_api(
        r#"{"status":"success","data":[
            {"name":"repram","ip":"127.0.0.2:16137","hash":"a"},
            {"name":"repram","ip":"127.0.0.3:16137","hash":"a"},
            {"name":"repram","ip":"127.0.0.4:16137","hash":"stale entry of a dead instance"}
        ]}"#
        .to_string(),
    )
    .await;
    let instance = |ip: &str| -> Vec<(&'static str, String)> {
        vec![
            ("DISCOVERY_DOMAIN", ip.to_string()),
            ("BIND_ADDR", ip.to_string()),
            ("BASE_PORT", base.to_string()),
            ("MAX_PORTS", "3".into()),
            ("NODE_COUNT", "2".into()),
            ("REPRAM_MIN_TTL", "1".into()),
            ("FLUX_APP_NAME", "repram".into()),
            ("FLUX_NODE_HOST_IP", ip.to_string()),
            ("REPRAM_FLUX_API", api.clone()),
        ]
    };
    let a = Process::start(&instance("127.0.0.2"));
    let mut b = Process::start(&instance("127.0.0.3"));
    let a_ports = a.claimed_ports(2).await;
    let b_ports = b.claimed_ports(2).await;
    for (p, ip) in [(&a, "127.0.0.2"), (&b, "127.0.0.3")] {
        let log = p.log_text();
        let note = format!("on Flux as app repram on {ip}: other instances are found");
        assert_eq!(log.matches(&note).count(), 1, "{log}");
    }
    let a_addrs: Vec<String> = a_ports.iter().map(|p| format!("127.0.0.2:{p}")).collect();
    let b_addrs: Vec<String> = b_ports.iter().map(|p| format!("127.0.0.3:{p}")).collect();
    let everyone: Vec<String> = a_addrs.iter().chain(&b_addrs).cloned().collect();

    for me in &everyone {
        let mut want: Vec<String> = everyone.iter().filter(|x| *x != me).cloned().collect();
        want.sort();
        let me = me.clone();
        wait_until(
            Duration::from_secs(15),
            &format!("{me} sees the 4-node mesh"),
            || {
                let (me, want) = (me.clone(), want.clone());
                async move { peer_addrs(&me).await == want }
            },
        )
        .await;
    }
    // Two processes, each asking once at start (plus refreshes): one answer serves every
    // node of a process.
    assert!(hits.load(Ordering::SeqCst) >= 2);

    let r = put(
        &format!("http://{}/data/across?ttl=600", a_addrs[0]),
        b"flux",
    )
    .await
    .unwrap();
    assert!(r.status == 201 || r.status == 202, "{}", r.status);
    let url = format!("http://{}/data/across", b_addrs[1]);
    wait_until(
        Duration::from_secs(10),
        "the write reaches the other instance",
        || {
            let url = url.clone();
            async move {
                get(&url)
                    .await
                    .is_some_and(|r| r.status == 200 && r.body == "flux")
            }
        },
    )
    .await;

    // Instance B dies: A's nodes drop B's after the failure detector's few seconds.
    b.signal("KILL");
    b.wait_exit(Duration::from_secs(5));
    for me in &a_addrs {
        let want: Vec<String> = a_addrs.iter().filter(|x| *x != me).cloned().collect();
        let me = me.clone();
        wait_until(
            Duration::from_secs(15),
            &format!("{me} evicts instance B"),
            || {
                let (me, want) = (me.clone(), want.clone());
                async move { peer_addrs(&me).await == want }
            },
        )
        .await;
    }
    assert!(!a.log_text().contains("panicked"));
}
