//! The deployment files agree with each other and with the code: `flux-app.json` is the
//! generator's output and a valid v8 spec, generator output is valid for every node
//! count, and `Dockerfile.flux-sim` carries the configuration defaults.

use std::path::Path;

use repram_flux::config::Config;
use repram_flux::flux::spec::{self, SpecOptions};
use serde_json::Value;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn flux_app() -> Value {
    serde_json::from_str(&read("flux-app.json")).expect("flux-app.json is JSON")
}

const REGENERATE: &str = "regenerate it with: cargo run -q -- flux-spec --name repram \
     --owner 1ReplaceWithYourFluxZelID --image repram/repram-flux:0.1.0 \
     --domain fade.repram.io --nodes 3 --instances 3 --home-page fade > flux-app.json";

#[test]
fn flux_app_json_is_the_generator_output() {
    let generated = spec::to_json(&spec::generate(&SpecOptions::fade()).unwrap());
    assert!(
        read("flux-app.json") == generated,
        "flux-app.json differs from the generator output; {REGENERATE}\n\ngenerator output:\n{generated}"
    );
}

#[test]
fn flux_app_json_is_a_valid_v8_spec() {
    let app = flux_app();
    let problems: Vec<String> = spec::validate_v8(&app)
        .into_iter()
        .chain(spec::check_repram_env(&app))
        .map(|v| v.to_string())
        .collect();
    assert!(problems.is_empty(), "flux-app.json: {problems:#?}");
}

#[test]
fn flux_app_json_matches_the_plan() {
    let app = flux_app();
    assert_eq!(app["version"], 8);
    assert_eq!(app["instances"], 3);
    let compose = app["compose"].as_array().unwrap();
    assert_eq!(compose.len(), 1);
    let c = &compose[0];
    let ports: Vec<u64> = (8081..=8085).collect();
    assert_eq!(c["ports"], serde_json::json!(ports));
    assert_eq!(c["containerPorts"], c["ports"]);
    assert_eq!(c["domains"][0], "fade.repram.io");
    assert_eq!(c["containerData"], "/tmp");
    assert_eq!(c["repoauth"], "");
    let env = env_pairs(c);
    for (key, want) in [
        ("DISCOVERY_DOMAIN", "localhost"),
        ("BASE_PORT", "8081"),
        ("MAX_PORTS", "5"),
        ("NODE_COUNT", "3"),
        ("REPLICATION_FACTOR", "3"),
        ("REPRAM_CLEANUP_INTERVAL", "30"),
        ("REPRAM_RATE_LIMIT", "100"),
        ("REPRAM_HOME_PAGE", "fade"),
    ] {
        assert_eq!(
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()),
            Some(want),
            "{key}"
        );
    }
    // Flux sets these itself; the spec must not override them. A public spec carries
    // no secret, and no trusted-proxy setting (Flux documents no proxy addresses).
    for key in [
        "FLUX_APP_NAME",
        "FLUX_NODE_HOST_IP",
        "ADVERTISE_HOST",
        "REPRAM_CLUSTER_SECRET",
        "REPRAM_TRUST_PROXY",
        "REPRAM_TRUSTED_PROXIES",
    ] {
        assert!(env.iter().all(|(k, _)| k != key), "{key} must not be set");
    }
    assert_eq!(
        c["hdd"], 1,
        "1 GB is FluxOS's minimum; the data lives in RAM"
    );
    // The memory budget (one copy of the data per process, whatever its node count)
    // stays well inside the component's RAM.
    let config = Config::from_iter(env).unwrap();
    let ram_bytes = c["ram"].as_u64().unwrap() * 1024 * 1024;
    assert!(config.max_storage_bytes <= ram_bytes * 6 / 10);
}

#[test]
fn generated_specs_are_valid_for_1_to_20_nodes() {
    for nodes in 1..=20u16 {
        for instances in [1, 3, 100] {
            let opts = SpecOptions {
                nodes,
                instances,
                ..SpecOptions::fade()
            };
            let app = serde_json::to_value(spec::generate(&opts).unwrap()).unwrap();
            let problems: Vec<String> = spec::validate_v8(&app)
                .into_iter()
                .chain(spec::check_repram_env(&app))
                .map(|v| v.to_string())
                .collect();
            assert!(problems.is_empty(), "nodes={nodes}: {problems:#?}");
            let compose = app["compose"].as_array().unwrap();
            assert_eq!(
                compose.len(),
                usize::from(nodes.div_ceil(5)),
                "nodes={nodes}"
            );
            let mut all_ports = Vec::new();
            let mut node_total = 0;
            for c in compose {
                assert!(c["ports"].as_array().unwrap().len() <= 5);
                all_ports.extend(
                    c["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_u64().unwrap()),
                );
                let config = Config::from_iter(env_pairs(c)).unwrap();
                node_total += config.node_count;
                if compose.len() > 1 {
                    assert!(
                        !config.discovery_peers.is_empty(),
                        "components must seed each other"
                    );
                }
            }
            assert_eq!(node_total, nodes);
            let expected: Vec<u64> = (8081..8081 + 5 * compose.len() as u64).collect();
            assert_eq!(
                all_ports, expected,
                "nodes={nodes}: consecutive ranges from 8081"
            );
        }
    }
}

#[test]
fn dockerfile_env_is_the_config_defaults() {
    let env = dockerfile_env();
    assert!(!env.is_empty(), "no ENV in Dockerfile.flux-sim");
    for key in [
        "DISCOVERY_DOMAIN",
        "BASE_PORT",
        "MAX_PORTS",
        "NODE_COUNT",
        "BIND_ADDR",
    ] {
        assert!(
            env.iter().any(|(k, _)| k == key),
            "Dockerfile.flux-sim lacks ENV {key}"
        );
    }
    let help = Config::help_text();
    for (key, _) in &env {
        assert!(
            help.contains(key.as_str()),
            "ENV {key} is not a configuration variable"
        );
        assert!(
            ![
                "FLUX_APP_NAME",
                "FLUX_NODE_HOST_IP",
                "ADVERTISE_HOST",
                "REPRAM_LOG",
                "RUST_LOG"
            ]
            .contains(&key.as_str()),
            "ENV {key} would override what Flux or the user sets"
        );
    }
    assert_eq!(Config::from_iter(env).unwrap(), Config::default());
}

#[test]
fn dockerfile_exposes_the_default_range_and_flux_ports_fit() {
    let owned = instructions(&read("Dockerfile.flux-sim"));
    let expose: Vec<&str> = owned
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .collect();
    let range = Config::default().port_range();
    assert_eq!(expose, [format!("{}-{}", range.start(), range.end())]);
    for c in flux_app()["compose"].as_array().unwrap() {
        for p in c["ports"].as_array().unwrap() {
            let p = u16::try_from(p.as_u64().unwrap()).unwrap();
            assert!(range.contains(&p), "flux-app.json port {p} is not EXPOSEd");
        }
    }
}

#[test]
fn flux_env_over_image_env_is_a_valid_config() {
    // What the container sees on Flux: the image's ENV, overridden by the spec's env.
    let mut env = dockerfile_env();
    env.extend(env_pairs(&flux_app()["compose"][0]));
    let config = Config::from_iter(env).unwrap();
    assert_eq!(
        (config.node_count, config.max_ports, config.base_port),
        (3, 5, 8081)
    );
}

#[test]
fn dockerfile_shape() {
    let owned = instructions(&read("Dockerfile.flux-sim"));
    let lines: Vec<&str> = owned.iter().map(String::as_str).collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("FROM rust:1-slim-bookworm AS "),
        "{}",
        froms[0]
    );
    assert_eq!(froms[1], "FROM debian:bookworm-slim");
    let runtime: Vec<&str> = lines
        .iter()
        .skip_while(|l| **l != froms[1])
        .copied()
        .collect();
    let user = runtime
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    let entry = runtime
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    assert!(
        entry.starts_with('['),
        "exec form keeps the binary PID 1: {entry}"
    );
    let health = runtime
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("HEALTHCHECK");
    assert!(health.contains("healthcheck"), "{health}");
    // The dependency layer is built before the sources are copied in.
    let copy_src = lines
        .iter()
        .position(|l| l.starts_with("COPY src"))
        .unwrap();
    let first_build = lines
        .iter()
        .position(|l| l.contains("cargo build"))
        .unwrap();
    assert!(
        first_build < copy_src,
        "dependencies are not cached in their own layer"
    );
    let ignore = read(".dockerignore");
    assert!(ignore
        .lines()
        .any(|l| l.trim() == "*" || l.trim() == "target"));
}

/// `(KEY, value)` pairs of a component's `environmentParameters`.
fn env_pairs(component: &Value) -> Vec<(String, String)> {
    component["environmentParameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Dockerfile instructions with continuation lines joined and comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
            }
        }
    }
    out
}

/// The `ENV KEY=value …` pairs of the runtime stage.
fn dockerfile_env() -> Vec<(String, String)> {
    let text = read("Dockerfile.flux-sim");
    let mut env = Vec::new();
    for line in instructions(&text) {
        if let Some(rest) = line.strip_prefix("ENV ") {
            for item in rest.split_whitespace() {
                let (k, v) = item
                    .split_once('=')
                    .unwrap_or_else(|| panic!("ENV item {item:?} is not KEY=value"));
                env.push((k.to_string(), v.to_string()));
            }
        }
    }
    env
}

#[test]
fn flux_app_json_and_generator_write_keys_in_the_formatter_order() {
    // FluxOS verifies the registration signature over JSON.stringify of the spec as its
    // specificationFormatter rebuilt it: keys out of that order cannot be signed as written.
    let generated = spec::to_json(&spec::generate(&SpecOptions::fade()).unwrap());
    for (what, text) in [
        ("flux-app.json", read("flux-app.json")),
        ("generator output", generated),
    ] {
        let found: Vec<String> = spec::key_order_violations(&text)
            .unwrap()
            .into_iter()
            .map(|v| v.to_string())
            .collect();
        assert!(found.is_empty(), "{what}: {found:#?}");
    }
}
