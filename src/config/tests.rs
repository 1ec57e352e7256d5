use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde_json::Value;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn err(pairs: &[(&str, &str)]) -> String {
    match env(pairs) {
        Ok(c) => panic!("expected an error for {pairs:?}, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn empty_environment_gives_defaults() {
    let c = env(&[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.discovery_domain, "localhost");
    assert_eq!(c.base_port, 8081);
    assert_eq!(c.max_ports, 10);
    assert_eq!(c.node_count, 3);
    assert_eq!(c.replication_factor, 3);
    assert_eq!(c.bind_addr, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert!(c.discovery_peers.is_empty());
    assert_eq!(c.advertise_host, None);
    assert_eq!(c.flux_node_host_ip, None);
    assert_eq!(c.flux_app_name, None);
    assert_eq!(c.flux_api, "https://api.runonflux.io");
    assert_eq!(c.cleanup_interval, Duration::from_secs(30));
    assert_eq!(c.rate_limit, 100);
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(c.max_inflight_bytes, 268_435_456);
    assert_eq!((c.min_ttl, c.max_ttl, c.default_ttl), (300, 86_400, 3_600));
    assert_eq!(c.max_value_bytes, 10_485_760);
    assert_eq!(c.max_storage_bytes, 1_073_741_824);
    assert_eq!(c.write_timeout, Duration::from_millis(2_000));
    assert_eq!(c.cluster_secret, None);
    assert_eq!(c.log_filter, "info");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.port_range(), 8081..=8090);
    assert_eq!(Config::default().validate(), Ok(Config::default()));
}

#[test]
fn for_test_is_valid_and_fast() {
    let c = Config::for_test();
    assert_eq!(c.bind_addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.discovery_domain, "127.0.0.1");
    assert_eq!((c.min_ttl, c.rate_limit), (1, 0));
    assert_eq!(c.write_timeout, Duration::from_millis(500));
    assert!(c.clone().validate().is_ok());
}

#[test]
fn values_are_parsed_and_trimmed() {
    let c = env(&[
        ("NODE_COUNT", " 5 "),
        ("MAX_PORTS", "+20"),
        ("BASE_PORT", "9000"),
        ("BIND_ADDR", "::"),
        ("REPRAM_LOG_FORMAT", "JSON"),
        ("REPRAM_WRITE_TIMEOUT_MS", "750"),
        ("REPRAM_CLEANUP_INTERVAL", "5"),
        ("REPRAM_RATE_LIMIT", "0"),
        ("REPRAM_FLUX_API", "http://flux.example/"),
        ("REPRAM_CLUSTER_SECRET", "  s3cret "),
        ("FLUX_APP_NAME", "fade"),
        ("UNRELATED", "whatever"),
        ("node_count", "not ours"),
    ])
    .unwrap();
    assert_eq!(c.node_count, 5);
    assert_eq!(c.max_ports, 20);
    assert_eq!(c.port_range(), 9000..=9019);
    assert_eq!(c.bind_addr, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.write_timeout, Duration::from_millis(750));
    assert_eq!(c.cleanup_interval, Duration::from_secs(5));
    assert_eq!(c.rate_limit, 0);
    assert_eq!(c.flux_api, "http://flux.example");
    assert_eq!(c.cluster_secret.as_deref(), Some("s3cret"));
    assert_eq!(c.flux_app_name.as_deref(), Some("fade"));
}

#[test]
fn empty_values_mean_default_or_none() {
    let c = env(&[
        ("NODE_COUNT", ""),
        ("BASE_PORT", "  "),
        ("DISCOVERY_DOMAIN", ""),
        ("BIND_ADDR", ""),
        ("REPRAM_CLUSTER_SECRET", ""),
        ("ADVERTISE_HOST", ""),
        ("FLUX_APP_NAME", " "),
        ("REPRAM_LOG_FORMAT", ""),
    ])
    .unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn last_repeated_pair_wins() {
    let c = env(&[("NODE_COUNT", "2"), ("NODE_COUNT", "4")]).unwrap();
    assert_eq!(c.node_count, 4);
}

#[test]
fn exact_error_messages() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("NODE_COUNT", "abc")],
            "NODE_COUNT=abc: expected a whole number",
        ),
        (
            &[("NODE_COUNT", "-1")],
            "NODE_COUNT=-1: expected a whole number",
        ),
        (
            &[("NODE_COUNT", "1.5")],
            "NODE_COUNT=1.5: expected a whole number",
        ),
        (&[("NODE_COUNT", "0")], "NODE_COUNT=0: must be at least 1"),
        (
            &[("BASE_PORT", "70000")],
            "BASE_PORT=70000: expected a port number from 1 to 65535",
        ),
        (
            &[("BASE_PORT", "0")],
            "BASE_PORT=0: expected a port number from 1 to 65535",
        ),
        (
            &[("NODE_COUNT", "11")],
            "NODE_COUNT=11 exceeds MAX_PORTS=10",
        ),
        (
            &[("BASE_PORT", "65531")],
            "BASE_PORT+MAX_PORTS-1 = 65540 exceeds 65535",
        ),
        (
            &[("REPLICATION_FACTOR", "0")],
            "REPLICATION_FACTOR=0: must be at least 1",
        ),
        (
            &[("REPRAM_MIN_TTL", "600"), ("REPRAM_MAX_TTL", "300")],
            "REPRAM_MIN_TTL=600 exceeds REPRAM_MAX_TTL=300",
        ),
        (
            &[("REPRAM_DEFAULT_TTL", "10")],
            "REPRAM_DEFAULT_TTL=10 is outside REPRAM_MIN_TTL..=REPRAM_MAX_TTL (300..=86400)",
        ),
        (
            &[("BIND_ADDR", "nope")],
            "BIND_ADDR=nope: expected an IP address such as 0.0.0.0 or ::",
        ),
        (
            &[("DISCOVERY_PEERS", "foo")],
            "DISCOVERY_PEERS=foo: expected host:port items separated by commas",
        ),
        (
            &[("DISCOVERY_PEERS", "a:1,foo")],
            "DISCOVERY_PEERS=a:1,foo: expected host:port items separated by commas \
             (bad item: foo)",
        ),
        (
            &[("REPRAM_LOG_FORMAT", "xml")],
            "REPRAM_LOG_FORMAT=xml: expected text or json",
        ),
        (
            &[("MAX_PORTS", "99999999")],
            "MAX_PORTS=99999999: expected a whole number from 1 to 65535",
        ),
        (
            &[("MAX_PORTS", "99999999999999999999999999")],
            "MAX_PORTS=99999999999999999999999999: expected a whole number from 1 to 65535",
        ),
        (
            &[("REPRAM_CLEANUP_INTERVAL", "0")],
            "REPRAM_CLEANUP_INTERVAL=0: must be at least 1",
        ),
        (
            &[("REPRAM_FLUX_API", "ftp://x")],
            "REPRAM_FLUX_API=ftp://x: expected an http:// or https:// URL",
        ),
        (
            &[("REPRAM_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.0/33")],
            "REPRAM_TRUSTED_PROXIES=10.0.0.1, 10.0.0.0/33: expected IP addresses or \
             networks such as 203.0.113.7, 198.51.100.0/24 or 2001:db8::/32, separated \
             by commas (bad item: 10.0.0.0/33)",
        ),
        (
            &[
                ("REPRAM_MAX_VALUE_BYTES", "1000"),
                ("REPRAM_MAX_INFLIGHT_BYTES", "999"),
            ],
            "REPRAM_MAX_INFLIGHT_BYTES=999 is below REPRAM_MAX_VALUE_BYTES=1000",
        ),
    ];
    for (pairs, want) in cases {
        assert_eq!(err(pairs), *want, "for {pairs:?}");
    }
}

#[test]
fn every_variable_error_names_the_variable() {
    let bad: &[(&str, &str)] = &[
        ("BASE_PORT", "x"),
        ("MAX_PORTS", "x"),
        ("NODE_COUNT", "x"),
        ("REPLICATION_FACTOR", "x"),
        ("BIND_ADDR", "x"),
        ("DISCOVERY_PEERS", "x"),
        ("REPRAM_FLUX_API", "x"),
        ("REPRAM_CLEANUP_INTERVAL", "x"),
        ("REPRAM_RATE_LIMIT", "x"),
        ("REPRAM_MIN_TTL", "x"),
        ("REPRAM_MAX_TTL", "x"),
        ("REPRAM_DEFAULT_TTL", "x"),
        ("REPRAM_MAX_VALUE_BYTES", "x"),
        ("REPRAM_MAX_STORAGE_BYTES", "x"),
        ("REPRAM_WRITE_TIMEOUT_MS", "x"),
        ("REPRAM_LOG_FORMAT", "x"),
        ("REPRAM_TRUSTED_PROXIES", "x"),
        ("REPRAM_MAX_INFLIGHT_BYTES", "x"),
        ("REPRAM_MAX_INFLIGHT_BYTES", "0"),
        ("REPRAM_LOG", "foo=notalevel"),
        ("RUST_LOG", "foo=notalevel"),
        ("REPRAM_RATE_LIMIT", "4294967296"),
        ("REPRAM_MAX_TTL", "99999999999"),
        ("REPRAM_WRITE_TIMEOUT_MS", "0"),
        ("REPRAM_WRITE_TIMEOUT_MS", "18446744073709551616"),
        ("REPRAM_MAX_VALUE_BYTES", "0"),
        ("REPRAM_MAX_STORAGE_BYTES", "0"),
    ];
    for (var, value) in bad {
        let msg = err(&[(var, value)]);
        assert!(
            msg.starts_with(&format!("{var}={value}: ")),
            "{var}={value} gave {msg:?}"
        );
        assert!(!msg.contains('\n'));
    }
}

#[test]
fn error_values_stay_on_one_line() {
    let msg = err(&[("NODE_COUNT", "1\n2")]);
    assert_eq!(msg, "NODE_COUNT=1\\n2: expected a whole number");
    let long = "x".repeat(10_000);
    let msg = err(&[("NODE_COUNT", long.as_str())]);
    assert!(msg.len() < 300, "{msg}");
}

#[test]
fn discovery_peers() {
    let c = env(&[(
        "DISCOVERY_PEERS",
        " 10.0.0.1:8081, ,node-b.example:9000,[::1]:8082,,10.0.0.1:8081 ",
    )])
    .unwrap();
    assert_eq!(
        c.discovery_peers,
        ["10.0.0.1:8081", "node-b.example:9000", "[::1]:8082"]
    );
    assert!(env(&[("DISCOVERY_PEERS", " , ")])
        .unwrap()
        .discovery_peers
        .is_empty());
    for bad in [
        "foo",
        "::1:8081",
        "[::1]",
        "[::1]8081",
        "[nope]:8081",
        "host:0",
        "host:65536",
        "host:",
        ":8081",
        "host:+1",
        "http://host:8081",
        "a b:1",
    ] {
        assert_eq!(
            env(&[("DISCOVERY_PEERS", bad)]),
            Err(ConfigError::BadPeer {
                value: bad.to_string(),
                item: bad.to_string()
            }),
            "{bad}"
        );
    }
}

#[test]
fn advertise_host_falls_back_to_flux_node_host_ip() {
    let c = env(&[("FLUX_NODE_HOST_IP", "203.0.113.7")]).unwrap();
    assert_eq!(c.advertise_host.as_deref(), Some("203.0.113.7"));
    assert_eq!(c.flux_node_host_ip.as_deref(), Some("203.0.113.7"));
    let c = env(&[
        ("FLUX_NODE_HOST_IP", "203.0.113.7"),
        ("ADVERTISE_HOST", "node.example"),
    ])
    .unwrap();
    assert_eq!(c.advertise_host.as_deref(), Some("node.example"));
    let c = env(&[("FLUX_NODE_HOST_IP", "203.0.113.7"), ("ADVERTISE_HOST", "")]).unwrap();
    assert_eq!(c.advertise_host.as_deref(), Some("203.0.113.7"));
    assert_eq!(env(&[]).unwrap().advertise_host, None);
}

#[test]
fn advertise_host_is_a_host_that_fits_in_gossip() {
    // FluxOS may append its API port: only the address is advertised.
    let c = env(&[("FLUX_NODE_HOST_IP", "203.0.113.7:16137")]).unwrap();
    assert_eq!(c.advertise_host.as_deref(), Some("203.0.113.7"));
    assert_eq!(c.flux_node_host_ip.as_deref(), Some("203.0.113.7:16137"));
    let c = env(&[("ADVERTISE_HOST", "[2001:db8::1]")]).unwrap();
    assert_eq!(c.advertise_host.as_deref(), Some("2001:db8::1"));
    let name = "a".repeat(253);
    let c = env(&[("ADVERTISE_HOST", name.as_str())]).unwrap();
    assert_eq!(c.advertise_host, Some(name));
    for (var, bad) in [
        ("ADVERTISE_HOST", "a".repeat(254)),
        ("ADVERTISE_HOST", "node example".into()),
        ("ADVERTISE_HOST", "node.example:8081".into()),
        ("ADVERTISE_HOST", "[node]".into()),
        ("FLUX_NODE_HOST_IP", "node.example".into()),
        ("FLUX_NODE_HOST_IP", "1.2.3.4:port".into()),
    ] {
        let err = env(&[(var, bad.as_str())]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{var}=")), "{err}");
    }
    let hand_made = Config {
        advertise_host: Some("x".repeat(300)),
        ..Config::default()
    };
    assert!(hand_made.validate().is_err());
}

#[test]
fn trust_proxy_is_retired_whatever_its_value() {
    for value in ["true", "false", "0", "", " yes "] {
        assert_eq!(
            err(&[("REPRAM_TRUST_PROXY", value)]),
            "REPRAM_TRUST_PROXY is retired: list your reverse proxies' addresses in \
             REPRAM_TRUSTED_PROXIES instead (IPs/CIDRs, comma separated; see --help)",
            "{value:?}"
        );
    }
    assert!(Config::help_text().contains("REPRAM_TRUSTED_PROXIES"));
}

#[test]
fn trusted_proxies_are_addresses_and_networks() {
    let c = env(&[(
        "REPRAM_TRUSTED_PROXIES",
        " 203.0.113.7, 198.51.100.0/24,,2001:db8::/32 , ::ffff:10.0.0.0/104, 203.0.113.7",
    )])
    .unwrap();
    let shown: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "203.0.113.7",
            "198.51.100.0/24",
            "2001:db8::/32",
            "10.0.0.0/8"
        ]
    );
    assert!(env(&[("REPRAM_TRUSTED_PROXIES", " ")])
        .unwrap()
        .trusted_proxies
        .is_empty());
    for bad in [
        "localhost",
        "10.0.0.0/8/8",
        "1.2.3.4:80",
        "[::1]",
        "10.0.0.0/x",
    ] {
        assert!(
            err(&[("REPRAM_TRUSTED_PROXIES", bad)]).contains(&format!("(bad item: {bad})"))
                || err(&[("REPRAM_TRUSTED_PROXIES", bad)])
                    .starts_with(&format!("REPRAM_TRUSTED_PROXIES={bad}: expected")),
            "{bad}"
        );
    }
}

#[test]
fn the_inflight_default_never_refuses_the_largest_value() {
    let c = env(&[("REPRAM_MAX_VALUE_BYTES", "500000000")]).unwrap();
    assert_eq!(c.max_inflight_bytes, 500_000_000);
    let c = env(&[("REPRAM_MAX_INFLIGHT_BYTES", "1048576")]);
    assert!(c.is_err(), "below the default 10 MiB value limit");
    let c = env(&[
        ("REPRAM_MAX_VALUE_BYTES", "1048576"),
        ("REPRAM_MAX_INFLIGHT_BYTES", "1048576"),
    ])
    .unwrap();
    assert_eq!(c.max_inflight_bytes, 1_048_576);
}

#[test]
fn cors_origins_are_origins_or_a_star() {
    assert!(env(&[]).unwrap().cors_origins.is_empty());
    let c = env(&[(
        "REPRAM_CORS_ORIGINS",
        " https://Fade.repram.io/ , http://localhost:3000,https://fade.repram.io,,http://[::1]:8080",
    )])
    .unwrap();
    assert_eq!(
        c.cors_origins,
        [
            "https://fade.repram.io",
            "http://localhost:3000",
            "http://[::1]:8080"
        ]
    );
    assert_eq!(
        env(&[("REPRAM_CORS_ORIGINS", "*")]).unwrap().cors_origins,
        ["*"]
    );
    for bad in [
        "fade.repram.io",
        "ftp://x.io",
        "https://",
        "https://x.io/app",
        "https://x.io:0",
        "https://x.io:99999",
        "https://x.io:",
        "https://a b",
        "https://[::1",
        "https://[zz]:80",
        "https://x.io?q",
    ] {
        let msg = err(&[("REPRAM_CORS_ORIGINS", &format!("https://ok.io,{bad}"))]);
        assert!(
            msg.starts_with("REPRAM_CORS_ORIGINS=") && msg.contains(bad.trim_end_matches('/')),
            "{bad:?}: {msg}"
        );
    }
    let hand_built = Config {
        cors_origins: vec!["nope".to_string()],
        ..Config::default()
    };
    assert!(hand_built.validate().is_err());
}

#[test]
fn max_connections_has_bounds() {
    assert_eq!(env(&[]).unwrap().max_connections, 1024);
    assert_eq!(
        env(&[("REPRAM_MAX_CONNECTIONS", "5")])
            .unwrap()
            .max_connections,
        5
    );
    assert_eq!(
        err(&[("REPRAM_MAX_CONNECTIONS", "0")]),
        "REPRAM_MAX_CONNECTIONS=0: must be at least 1"
    );
    assert!(err(&[("REPRAM_MAX_CONNECTIONS", "1000001")]).contains("1000000"));
}

#[test]
fn repram_log_beats_rust_log() {
    let c = env(&[("RUST_LOG", "warn"), ("REPRAM_LOG", "debug")]).unwrap();
    assert_eq!(c.log_filter, "debug");
    let c = env(&[("RUST_LOG", "warn")]).unwrap();
    assert_eq!(c.log_filter, "warn");
    let c = env(&[("RUST_LOG", "warn"), ("REPRAM_LOG", " ")]).unwrap();
    assert_eq!(c.log_filter, "warn");
    assert_eq!(env(&[]).unwrap().log_filter, "info");
}

#[test]
fn quorum_table() {
    let with_rf = |rf| Config {
        replication_factor: rf,
        ..Config::default()
    };
    let rf3 = with_rf(3);
    for (size, want) in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2), (10, 2)] {
        assert_eq!(rf3.quorum(size), want, "rf=3 size={size}");
    }
    assert_eq!(with_rf(5).quorum(10), 3);
    assert_eq!(with_rf(5).quorum(4), 3);
    for size in [0, 1, 2, 10] {
        assert_eq!(with_rf(1).quorum(size), 1);
    }
    assert_eq!(with_rf(0).quorum(5), 1);
    assert_eq!(with_rf(u16::MAX).quorum(usize::MAX), 32_768);
}

#[test]
fn clamp_ttl() {
    let c = Config::default();
    assert_eq!(c.clamp_ttl(None), 3_600);
    assert_eq!(c.clamp_ttl(Some(0)), 300);
    assert_eq!(c.clamp_ttl(Some(299)), 300);
    assert_eq!(c.clamp_ttl(Some(600)), 600);
    assert_eq!(c.clamp_ttl(Some(86_401)), 86_400);
    assert_eq!(c.clamp_ttl(Some(u64::MAX)), 86_400);
    let broken = Config {
        min_ttl: 10,
        max_ttl: 5,
        ..Config::default()
    };
    assert_eq!(broken.clamp_ttl(Some(7)), 5); // no panic on an unvalidated config
}

#[test]
fn validate_catches_hand_built_configs() {
    let base = Config::default;
    let cases = [
        (
            Config {
                discovery_domain: String::new(),
                ..base()
            },
            "DISCOVERY_DOMAIN=: must not be empty",
        ),
        (
            Config {
                max_ports: 0,
                ..base()
            },
            "MAX_PORTS=0: must be at least 1",
        ),
        (
            Config {
                base_port: 65535,
                max_ports: 2,
                node_count: 1,
                ..base()
            },
            "BASE_PORT+MAX_PORTS-1 = 65536 exceeds 65535",
        ),
        (
            Config {
                cleanup_interval: Duration::ZERO,
                ..base()
            },
            "REPRAM_CLEANUP_INTERVAL=0: must be at least 1",
        ),
        (
            Config {
                write_timeout: Duration::ZERO,
                ..base()
            },
            "REPRAM_WRITE_TIMEOUT_MS=0: must be at least 1",
        ),
        (
            Config {
                discovery_peers: vec!["nope".to_string()],
                ..base()
            },
            "DISCOVERY_PEERS=nope: expected host:port items separated by commas",
        ),
    ];
    for (config, want) in cases {
        assert_eq!(config.validate().unwrap_err().to_string(), want);
    }
    let fast = Config {
        cleanup_interval: Duration::from_millis(100),
        ..base()
    };
    assert!(fast.validate().is_ok());
    let extremes = env(&[
        ("BASE_PORT", "65535"),
        ("MAX_PORTS", "1"),
        ("NODE_COUNT", "1"),
    ])
    .unwrap();
    assert_eq!(extremes.port_range(), 65535..=65535);
}

#[test]
fn help_text_mentions_every_variable() {
    let help = Config::help_text();
    assert!(help.starts_with("usage: repram-flux [--help|--version]"));
    assert!(help.contains("-h") && help.contains("-V"));
    for var in VARS {
        assert!(help.contains(var), "help lacks {var}");
    }
    for default in [
        "localhost",
        "8081",
        "86400",
        "10485760",
        "1073741824",
        "2000",
    ] {
        assert!(help.contains(default), "help lacks {default}");
    }
}

#[test]
fn secret_is_redacted() {
    let c = env(&[("REPRAM_CLUSTER_SECRET", "hunter2-very-secret")]).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!format!("{c:#?}").contains("hunter2"));
    assert!(format!("{c:?}").contains("<redacted>"));
    let json = c.effective_json();
    assert!(!json.to_string().contains("hunter2"));
    assert_eq!(json["REPRAM_CLUSTER_SECRET"], "<redacted>");
    assert_eq!(
        Config::default().effective_json()["REPRAM_CLUSTER_SECRET"],
        Value::Null
    );
}

#[test]
fn effective_json_uses_variable_names() {
    let json = Config::default().effective_json();
    let obj = json.as_object().unwrap();
    for var in VARS.iter().filter(|v| **v != "RUST_LOG") {
        assert!(obj.contains_key(*var), "missing {var}");
    }
    assert_eq!(json["BASE_PORT"], 8081);
    assert_eq!(json["BIND_ADDR"], "0.0.0.0");
    assert_eq!(json["REPRAM_WRITE_TIMEOUT_MS"], 2000);
    assert_eq!(json["REPRAM_CLEANUP_INTERVAL"], 30);
    assert_eq!(json["REPRAM_LOG_FORMAT"], "text");
    assert_eq!(json["REPRAM_TRUSTED_PROXIES"], serde_json::json!([]));
    assert_eq!(json["REPRAM_MAX_INFLIGHT_BYTES"], 268_435_456);
    assert_eq!(json["DISCOVERY_PEERS"], serde_json::json!([]));
    assert_eq!(json["ADVERTISE_HOST"], Value::Null);
}

#[test]
fn from_env_reads_the_process_environment() {
    // Only checks that it runs; the test process environment is not controlled.
    let _ = Config::from_env();
}
