//! A fake Flux API on 127.0.0.1 for tests: answers every request with the current
//! canned reply and counts requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake answers.
#[derive(Clone)]
pub(crate) enum Reply {
    /// Status code and body.
    Http(u16, String),
    /// Accept, read, never answer.
    Hang,
}

pub(crate) struct FakeApi {
    pub(crate) url: String,
    pub(crate) reply: Arc<Mutex<Reply>>,
    pub(crate) requests: Arc<AtomicUsize>,
    pub(crate) paths: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    pub(crate) fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }
    pub(crate) fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// `{"status":"success","data":[{"ip":…},…]}` for `ips`.
pub(crate) fn list(ips: &[&str]) -> Reply {
    let data: Vec<String> = ips
        .iter()
        .map(|ip| format!("{{\"name\":\"app\",\"ip\":\"{ip}\",\"hash\":\"x\"}}"))
        .collect();
    Reply::Http(
        200,
        format!("{{\"status\":\"success\",\"data\":[{}]}}", data.join(",")),
    )
}

pub(crate) async fn start(reply: Reply) -> FakeApi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let reply = Arc::new(Mutex::new(reply));
    let requests = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (r, n, p) = (reply.clone(), requests.clone(), paths.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (r, n, p) = (r.clone(), n.clone(), p.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                n.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&buf)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                p.lock().unwrap().push(line);
                let reply = r.lock().unwrap().clone();
                match reply {
                    Reply::Hang => {
                        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    }
                    Reply::Http(status, body) => {
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                }
            });
        }
    });
    FakeApi {
        url,
        reply,
        requests,
        paths,
    }
}
