//! Parsing, URLs, backoff, and the cache against a fake API on loopback.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::Config;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SAMPLE: &str = r#"{"status":"success","data":[
    {"name":"repram","ip":"203.0.113.7:16137","hash":"ab","broadcastedAt":"2025-01-01T00:00:00.000Z","expireAt":"2025-01-01T02:00:00.000Z","runningSince":"2025-01-01T00:00:00.000Z"},
    {"name":"repram","ip":"198.51.100.2","hash":"cd"},
    {"name":"repram","ip":"203.0.113.7:16187"},
    {"name":"repram","ip":"[2001:db8::5]:16127"}
]}"#;

#[test]
fn parses_sample_strips_ports_sorts_and_dedups() {
    let list = parse_location_body(SAMPLE.as_bytes()).unwrap();
    assert_eq!(
        list.ips,
        vec![ip("198.51.100.2"), ip("203.0.113.7"), ip("2001:db8::5")]
    );
    assert_eq!(list.skipped, 0);
}

#[test]
fn empty_list_is_fine() {
    let list = parse_location_body(br#"{"status":"success","data":[]}"#).unwrap();
    assert_eq!(list, LocationList::default());
}

#[test]
fn bad_entries_are_skipped_and_counted() {
    let body = br#"{"status":"success","data":[
        {"ip":"203.0.113.9:16137"}, {"ip":42}, {"name":"no ip"}, "not an object",
        {"ip":"not-an-ip"}, {"ip":"0.0.0.0"}, {"ip":"255.255.255.255:1"}, {"ip":"224.0.0.1"},
        {"ip":""}, {"ip":null}, {"ip":"1.2.3.4:port"}
    ]}"#;
    let list = parse_location_body(body).unwrap();
    assert_eq!(list.ips, vec![ip("203.0.113.9")]);
    assert_eq!(list.skipped, 10);
}

#[test]
fn malformed_answers_are_errors_with_one_line_messages() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "malformed answer: not JSON"),
        (b"<html>502 Bad Gateway</html>", "malformed answer: not JSON"),
        (b"[1,2]", "malformed answer: expected a JSON object"),
        (b"{\"data\":[]}", "malformed answer: no \"status\" string"),
        (
            b"{\"status\":\"ok\",\"data\":[]}",
            "malformed answer: status is \"ok\"",
        ),
        (
            b"{\"status\":\"success\",\"data\":{\"ip\":\"1.2.3.4\"}}",
            "malformed answer: \"data\" is not a list",
        ),
        (
            b"{\"status\":\"success\"}",
            "malformed answer: \"data\" is not a list",
        ),
        (
            b"{\"status\":\"error\",\"data\":{\"code\":null,\"name\":\"Error\",\"message\":\"Application not found\"}}",
            "Flux API error: Application not found",
        ),
        (
            b"{\"status\":\"error\",\"data\":\"down\\nfor maintenance\"}",
            "Flux API error: down\\nfor maintenance",
        ),
        (b"{\"status\":\"error\"}", "Flux API error: no message"),
    ];
    for (body, want) in cases {
        let msg = parse_location_body(body).unwrap_err().to_string();
        assert!(
            msg.starts_with(want),
            "{:?} gave {msg:?}",
            String::from_utf8_lossy(body)
        );
        assert!(!msg.contains('\n'), "{msg:?}");
    }
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let base = SAMPLE.as_bytes();
    for _ in 0..2_000 {
        let mut body = base.to_vec();
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(0..body.len());
            body[i] = rng.gen();
        }
        body.truncate(rng.gen_range(0..=body.len()));
        let _ = parse_location_body(&body);
    }
}

#[test]
fn own_ip_is_skipped_with_or_without_port() {
    let ips = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")];
    assert_eq!(
        without_own_ip(&ips, Some("10.0.0.2")),
        vec![ip("10.0.0.1"), ip("10.0.0.3")]
    );
    assert_eq!(
        without_own_ip(&ips, Some("10.0.0.3:16137")),
        vec![ip("10.0.0.1"), ip("10.0.0.2")]
    );
    assert_eq!(without_own_ip(&ips, None), ips.to_vec());
    assert_eq!(without_own_ip(&ips, Some("garbage")), ips.to_vec());
}

#[test]
fn location_urls() {
    let u = LocationUrl::new("https://api.runonflux.io", "repram").unwrap();
    assert_eq!(
        u,
        LocationUrl {
            tls: true,
            host: "api.runonflux.io".into(),
            port: 443,
            path: "/apps/location/repram".into()
        }
    );
    assert_eq!(
        u.to_string(),
        "https://api.runonflux.io/apps/location/repram"
    );
    let u = LocationUrl::new("http://127.0.0.1:9000/base/", "my app").unwrap();
    assert_eq!((u.tls, u.port), (false, 9000));
    assert_eq!(u.path, "/base/apps/location/my%20app");
    assert_eq!(
        u.to_string(),
        "http://127.0.0.1:9000/base/apps/location/my%20app"
    );
    let u = LocationUrl::new("HTTP://[::1]:8000", "a").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 8000));
    assert_eq!(u.host_header(), "[::1]:8000");
    let u = LocationUrl::new("http://[::1]", "a").unwrap();
    assert_eq!(u.port, 80);
    for bad in [
        "ftp://x",
        "api.runonflux.io",
        "http://",
        "http://:80",
        "http://host:0",
        "http://host:65536",
        "http://host:x",
        "http://user@host",
        "http://host?q=1",
        "http://[::1",
        "http://[nope]:80",
        "http://ho st",
    ] {
        assert!(
            matches!(LocationUrl::new(bad, "a"), Err(FluxError::BadUrl { .. })),
            "{bad}"
        );
    }
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let t = LocationTiming::default();
    let secs: Vec<u64> = (1..=10).map(|n| backoff_after(n, &t).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
    assert_eq!(backoff_after(0, &t), t.min_backoff);
    assert_eq!(backoff_after(u32::MAX, &t), t.max_backoff);
}

fn fast() -> LocationTiming {
    LocationTiming {
        timeout: Duration::from_millis(300),
        refresh_every: Duration::from_millis(100),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        first_wait: Duration::from_secs(2),
    }
}

/// Polls `get` until it returns `want` (or fails the test after 5 s).
async fn get_until(cache: &LocationCache, api: &str, want: &Result<Vec<IpAddr>, FluxError>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = cache.get(api, "app", &fast()).await;
        if &got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn fetches_over_http_and_caches() {
    let api = fake::start(fake::list(&["127.0.0.2:16137", "127.0.0.3"])).await;
    let url = LocationUrl::new(&api.url, "my-app").unwrap();
    let list = LocationClient::new()
        .fetch(&url, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(list.ips, vec![ip("127.0.0.2"), ip("127.0.0.3")]);
    assert_eq!(
        api.paths.lock().unwrap()[0],
        "GET /apps/location/my-app HTTP/1.1"
    );

    let cache = LocationCache::new();
    let want = Ok(vec![ip("127.0.0.2"), ip("127.0.0.3")]);
    assert_eq!(cache.get(&api.url, "app", &fast()).await, want);
    let after_first = api.count();
    // Fresh: answered from the cache, no new request.
    assert_eq!(cache.get(&api.url, "app", &fast()).await, want);
    assert_eq!(api.count(), after_first);
}

#[tokio::test]
async fn failures_keep_the_last_good_list_and_recover() {
    let api = fake::start(fake::list(&["127.0.0.2"])).await;
    let cache = LocationCache::new();
    assert_eq!(
        cache.get(&api.url, "app", &fast()).await,
        Ok(vec![ip("127.0.0.2")])
    );

    api.set(fake::Reply::Http(500, "oops".into()));
    let before = api.count();
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.count() < before + 2 {
        // Every answer meanwhile is the last good list.
        assert_eq!(
            cache.get(&api.url, "app", &fast()).await,
            Ok(vec![ip("127.0.0.2")])
        );
        assert!(Instant::now() < deadline, "no retry happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    api.set(fake::list(&["127.0.0.4", "127.0.0.5:1"]));
    get_until(
        &cache,
        &api.url,
        &Ok(vec![ip("127.0.0.4"), ip("127.0.0.5")]),
    )
    .await;

    // A refresh that hangs does not hold up the answer: the last good list comes back
    // while the request is still open (the fake holds it 30 s, the test waits 20 s).
    api.set(fake::Reply::Hang);
    let patient = LocationTiming {
        timeout: Duration::from_secs(3600),
        ..fast()
    };
    let hung_before = api.count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.count() == hung_before {
        assert!(Instant::now() < deadline, "no refresh was sent");
        let got = tokio::time::timeout(
            Duration::from_secs(20),
            cache.get(&api.url, "app", &patient),
        )
        .await;
        assert_eq!(
            got,
            Ok(Ok(vec![ip("127.0.0.4"), ip("127.0.0.5")])),
            "waited for the refresh"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tokio::time::timeout(
            Duration::from_secs(20),
            cache.get(&api.url, "app", &patient)
        )
        .await,
        Ok(Ok(vec![ip("127.0.0.4"), ip("127.0.0.5")])),
        "waited for the hung refresh"
    );
}

#[tokio::test]
async fn errors_without_a_good_list_are_returned() {
    let api = fake::start(fake::Reply::Http(200, "<html>gateway</html>".into())).await;
    let cache = LocationCache::new();
    let err = cache.get(&api.url, "app", &fast()).await.unwrap_err();
    assert!(
        err.to_string().starts_with("malformed answer: not JSON"),
        "{err}"
    );

    let api = fake::start(fake::Reply::Http(404, String::new())).await;
    let err = cache.get(&api.url, "app", &fast()).await.unwrap_err();
    assert!(
        matches!(err, FluxError::Status { status: 404, .. }),
        "{err}"
    );

    // A server that never answers: the request's own timeout (300 ms) ends it.
    let api = fake::start(fake::Reply::Hang).await;
    let err = tokio::time::timeout(Duration::from_secs(60), cache.get(&api.url, "app", &fast()))
        .await
        .expect("the request timed out by itself")
        .unwrap_err();
    assert!(matches!(err, FluxError::Timeout { .. }), "{err}");

    // Nothing listens there: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = cache.get(&closed, "app", &fast()).await.unwrap_err();
    assert!(matches!(err, FluxError::Unreachable { .. }), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[tokio::test]
async fn https_to_a_plain_server_is_a_clean_error() {
    use tokio::io::AsyncWriteExt;
    // A plain-HTTP server that answers at once, whatever it receives.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let url = LocationUrl::new(&https, "app").unwrap();
    let err = LocationClient::new()
        .fetch(&url, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, FluxError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test]
async fn own_ip_is_removed_by_instance_ips() {
    let api = fake::start(fake::list(&["127.0.0.2:16137", "127.0.0.3:16137"])).await;
    let c = Config {
        flux_app_name: Some("app".into()),
        flux_api: api.url.clone(),
        flux_node_host_ip: Some("127.0.0.3".into()),
        ..Config::for_test()
    };
    assert_eq!(
        instance_ips(&c, &LocationCache::new()).await,
        Ok(vec![ip("127.0.0.2")])
    );
}

#[tokio::test]
async fn not_on_flux_without_app_name() {
    let c = Config::for_test();
    assert_eq!(
        instance_ips(&c, &LocationCache::new()).await,
        Err(FluxError::NotOnFlux)
    );
}
