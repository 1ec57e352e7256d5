//! The `evict` phase: seconds until a SIGKILLed process's nodes are declared dead.

use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::children::send_signal;

impl Bench {
    /// Failure detection: two processes of 3 nodes in one mesh; one is SIGKILLed, and the
    /// seconds until every node of the other counts only its 2 siblings (the speed bound
    /// tests/cli.rs no longer asserts).
    pub(crate) async fn phase_evict(&mut self, _s: &Settings) -> Result<Value, String> {
        pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);
        let base = self.free_range(6)?;
        let mut a = self.spawn_server("evict-a", 3, 6, Some(base))?;
        self.wait_mesh(&mut a, Duration::from_secs(10)).await?;
        let mut b = self.spawn_server("evict-b", 3, 6, Some(base))?;
        let ports = a.ports();
        if self
            .wait_peers(&ports, 5, Instant::now(), TIMEOUT)
            .await
            .is_none()
        {
            return Err("the two processes did not form one 6-node mesh".into());
        }
        let killed = Instant::now();
        send_signal(b.pid, Signal::KILL);
        let seconds = self.wait_peers(&ports, 2, killed, TIMEOUT).await;
        let _ = b.stop().await;
        let stop = a.stop().await;
        Ok(json!({
            "evicted": seconds.is_some(),
            "seconds": seconds,
            "timeout_s": TIMEOUT.as_secs(),
            "stop": stop,
        }))
    }
}
