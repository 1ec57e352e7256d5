//! The nodes of one process reach each other in memory: a 3-node process meshes, gossips
//! and replicates without one node-to-node HTTP request between its own nodes (every
//! member probes every other, so over loopback HTTP a 100-node process held two sockets
//! per pair and ran out of descriptors).

mod common;

use std::time::Duration;

use common::{env_for, free_range, full_mesh, get, put, wait_for_value, wait_until, Process};

const INTERNAL: &str = "repram_http_requests_total{route=\"Internal\",";

#[tokio::test]
async fn the_nodes_of_one_process_talk_in_memory() {
    let base = free_range(3);
    let server = Process::start(&env_for(base, 3, 3));
    let ports = server.claimed_ports(3).await;
    wait_until(Duration::from_secs(10), "3-node mesh", || full_mesh(&ports)).await;
    let reply = put(
        &format!("http://127.0.0.1:{}/data/sibling-key?ttl=60", ports[0]),
        b"v",
    )
    .await
    .expect("PUT answered");
    assert_eq!(reply.status, 201, "{}", reply.text());
    wait_for_value(&ports, "sibling-key", "v").await;
    // A few membership rounds (a probe every 200 ms or so) after the mesh formed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for &port in &ports {
        let internal = internal_requests(port).await;
        assert_eq!(
            internal, 0.0,
            "node on {port} answered {internal} node-to-node requests over HTTP"
        );
    }
}

/// `/internal/` requests the node on `port` answered over HTTP, whatever their status.
async fn internal_requests(port: u16) -> f64 {
    let text = get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text();
    text.lines()
        .filter(|l| l.starts_with(INTERNAL))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
