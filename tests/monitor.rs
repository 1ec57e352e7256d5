//! `scripts/monitor-health.sh` and `scripts/monitor-gossip.sh` with `--once` against real
//! `repram-flux` processes on free high ports of 127.0.0.1: their tables, their exit
//! status (0 all well, 1 something down or not meshed, 2 bad arguments).
//! Needs bash, curl and python3, like the scripts.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Run `scripts/<script>` with `args`: exit status, stdout, stderr.
fn run(script: &str, args: &[&str]) -> (i32, String, String) {
    let path = format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .expect("run bash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The table row of `port` in monitor-health's output.
fn health_row(out: &str, port: u16) -> &str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(port.to_string().as_str()))
        .unwrap_or_else(|| panic!("no row for port {port}:\n{out}"))
}

async fn node_id(port: u16) -> String {
    let r = get(&format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("/health answers");
    r.json()["node_id"].as_str().expect("node_id").to_string()
}

#[tokio::test]
async fn monitor_scripts_report_a_healthy_mesh_and_a_down_or_split_one() {
    // A: 3 nodes on base..base+2. B (started later): 1 node alone on base+3, its own
    // range, so it never meets A.
    let base = free_range(4);
    let a = Process::start(&env_for(base, 3, 3));
    let mut ports = a.claimed_ports(3).await;
    ports.sort();
    assert_eq!(ports, [base, base + 1, base + 2]);
    wait_until(Duration::from_secs(5), "full mesh", || full_mesh(&ports)).await;
    let ids = [
        node_id(base).await,
        node_id(base + 1).await,
        node_id(base + 2).await,
    ];
    let range3 = format!("{base}-{}", base + 2);
    let range4 = format!("{base}-{}", base + 3);

    // All up: exit 0, every port healthy with its node id and 2 peers.
    let (code, out, err) = run("monitor-health.sh", &["--once", "127.0.0.1", &range3]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("3/3 healthy"), "{out}");
    for (i, id) in ids.iter().enumerate() {
        let row = health_row(&out, base + i as u16);
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..4], ["healthy", id.as_str(), "2"], "{row}");
    }
    let (code, out, err) = run("monitor-gossip.sh", &["--once", "127.0.0.1", &range3]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("3 node(s) answering"), "{out}");
    assert!(
        out.contains("mesh complete: 3 node(s), every one sees the other 2"),
        "{out}"
    );
    for id in &ids {
        assert!(out.contains(id.as_str()), "{id} missing:\n{out}");
    }
    assert!(out.contains("key counts agree: 0 on every node"), "{out}");

    // A port of the range without a node: health says DOWN and exits 1; gossip skips it.
    let (code, out, _) = run("monitor-health.sh", &["--once", "127.0.0.1", &range4]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("3/4 healthy"), "{out}");
    assert!(health_row(&out, base + 3).contains("DOWN"), "{out}");
    let (code, out, _) = run("monitor-gossip.sh", &["--once", "127.0.0.1", &range4]);
    assert_eq!(code, 0, "{out}");

    // A node on the range that is not in A's mesh: gossip reports the split, exits 1.
    let b = Process::start(&env_for(base + 3, 1, 1));
    assert_eq!(b.claimed_ports(1).await, [base + 3]);
    let url = format!("http://127.0.0.1:{}/ready", base + 3);
    wait_until(Duration::from_secs(5), "B ready", || {
        let url = url.clone();
        async move { get(&url).await.is_some_and(|r| r.status == 200) }
    })
    .await;
    let (code, out, _) = run("monitor-health.sh", &["--once", "127.0.0.1", &range4]);
    assert_eq!(code, 0, "every port answers healthy:\n{out}");
    let (code, out, _) = run("monitor-gossip.sh", &["--once", "127.0.0.1", &range4]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("mesh INCOMPLETE (6 of 12 directed links)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(":{} does not see :{}", base, base + 3)),
        "{out}"
    );

    // A killed: health shows its ports DOWN, gossip finds nobody on its range; both exit 1.
    drop(a);
    let (code, out, _) = run("monitor-health.sh", &["--once", "127.0.0.1", &range3]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0/3 healthy"), "{out}");
    for p in base..=base + 2 {
        assert!(health_row(&out, p).contains("DOWN"), "{out}");
    }
    let (code, out, _) = run("monitor-gossip.sh", &["--once", "127.0.0.1", &range3]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no node answers on this range"), "{out}");
}

#[test]
fn monitor_scripts_reject_bad_arguments_with_exit_2_and_one_line() {
    for (script, name) in [
        ("monitor-health.sh", "monitor-health"),
        ("monitor-gossip.sh", "monitor-gossip"),
    ] {
        for (args, says) in [
            (&["--bogus"][..], "unknown option --bogus"),
            (&["--host"][..], "--host needs a value"),
            (&["--once", "--timeout"][..], "--timeout needs a value"),
            (&["h", "8081-8083", "2", "extra"][..], "too many arguments"),
            (&["h", "eighty"][..], "PORTS must be FIRST-LAST or a port"),
            (&["h", "9000-8000"][..], "bad port range 9000-8000"),
            (&["h", "1-70000"][..], "bad port range 1-70000"),
            (
                &["h", "8081", "soon"][..],
                "INTERVAL must be a number of seconds",
            ),
            (
                &["--timeout", "-1"][..],
                "--timeout must be a number of seconds",
            ),
        ] {
            let (code, out, err) = run(script, args);
            assert_eq!(code, 2, "{script} {args:?}: {out}{err}");
            assert_eq!(
                err.trim(),
                err.lines().next().unwrap_or_default(),
                "one line: {err}"
            );
            assert!(
                err.starts_with(&format!("{name}: ")) && err.contains(says),
                "{script} {args:?} said: {err}"
            );
            assert!(out.is_empty(), "{out}");
        }
        let (code, out, _) = run(script, &["--help"]);
        assert_eq!(code, 0);
        assert!(out.contains(&format!("scripts/{script} [--once]")), "{out}");
        assert!(!out.contains("set -euo"), "{out}");
    }
}
