//! The state of one run: arguments, client, port ranges, time budget, errors; its
//! settings per mode; and starting a server process.

use std::cell::Cell;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::args::Args;
use crate::children::{port_is_free, Children, Server};
use crate::http::Http;
use crate::{FIRST_PORT, LAST_PORT, VALUE_BYTES};

pub(crate) struct Bench {
    pub(crate) args: Args,
    pub(crate) http: Http,
    pub(crate) next_port: Cell<u16>,
    pub(crate) started: Instant,
    pub(crate) budget: Duration,
    pub(crate) errors: Vec<String>,
    pub(crate) value: Bytes,
    /// Extra environment for every server started (the soak's TTL policy).
    pub(crate) server_env: Vec<(&'static str, String)>,
    /// The child processes alive, killed when the run ends or is interrupted.
    pub(crate) children: Children,
}

impl Bench {
    pub(crate) fn new(args: Args, budget: Duration, children: Children) -> Bench {
        Bench {
            args,
            http: Http::new(),
            next_port: Cell::new(FIRST_PORT),
            started: Instant::now(),
            budget,
            errors: Vec::new(),
            value: Bytes::from(vec![b'v'; VALUE_BYTES]),
            server_env: Vec::new(),
            children,
        }
    }

    pub(crate) fn settings(&self) -> Settings {
        if self.args.quick {
            Settings {
                wrk_seconds: 2,
                wrk_warmup_seconds: 0,
                get_rounds: 1,
                get_round_seconds: 2,
                mesh_reps: 1,
                // N=100 takes tens of seconds to start and stop; only the full run has it.
                mesh_sizes: vec![3, 10],
                mesh_timeout_small: 10,
                mesh_timeout_large: 10,
                visible_writes: 100,
                memory_keys: 2_000,
                catchup_keys: 2_000,
                catchup_timeout: 20,
                converge_timeout: 10,
                listing_keys: 5_000,
                listing_wrk_seconds: 2,
                big_wrk_seconds: 2,
            }
        } else {
            Settings {
                wrk_seconds: 10,
                wrk_warmup_seconds: 2,
                get_rounds: 3,
                get_round_seconds: 4,
                mesh_reps: 3,
                mesh_sizes: vec![3, 10, 100],
                mesh_timeout_small: 10,
                mesh_timeout_large: 30,
                visible_writes: 1000,
                memory_keys: 100_000,
                catchup_keys: 100_000,
                catchup_timeout: 60,
                converge_timeout: 30,
                listing_keys: 200_000,
                listing_wrk_seconds: 8,
                big_wrk_seconds: 6,
            }
        }
    }

    pub(crate) fn wants(&self, phase: &str) -> bool {
        match &self.args.only {
            Some(only) => only.contains(phase),
            None => true,
        }
    }

    pub(crate) fn over_budget(&self) -> bool {
        self.started.elapsed() > self.budget
    }

    /// A free range of `size` consecutive loopback ports; ranges are never reused in a run.
    pub(crate) fn free_range(&self, size: u16) -> Result<u16, String> {
        let mut base = self.next_port.get();
        while base.saturating_add(size) < LAST_PORT {
            match (base..base + size).find(|p| !port_is_free(*p)) {
                None => {
                    self.next_port.set(base + size);
                    return Ok(base);
                }
                Some(busy) => base = busy + 1,
            }
        }
        Err(format!(
            "no {size} consecutive free ports between {FIRST_PORT} and {LAST_PORT}"
        ))
    }

    pub(crate) fn spawn_server(
        &self,
        label: &str,
        nodes: u16,
        max_ports: u16,
        base: Option<u16>,
    ) -> Result<Server, String> {
        let base = match base {
            Some(b) => b,
            None => self.free_range(max_ports)?,
        };
        let logs = self.args.tmp.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let log = logs.join(format!("{label}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let file2 = file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.args.server);
        for var in [
            "RUST_LOG",
            "DISCOVERY_PEERS",
            "ADVERTISE_HOST",
            "FLUX_APP_NAME",
            "FLUX_NODE_HOST_IP",
            "REPRAM_CLUSTER_SECRET",
            "REPRAM_LOG_FORMAT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("REPRAM_LOG", "warn")
            .env("NODE_COUNT", nodes.to_string())
            .env("BASE_PORT", base.to_string())
            .env("MAX_PORTS", max_ports.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env("DISCOVERY_DOMAIN", "127.0.0.1")
            .env("REPRAM_RATE_LIMIT", "0")
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.args.server.display()))?;
        let pid = child.id();
        self.children.add(pid);
        Ok(Server {
            child,
            pid,
            started,
            base,
            nodes,
            log,
            done: false,
            children: self.children.clone(),
        })
    }
}

pub(crate) struct Settings {
    pub(crate) wrk_seconds: u64,
    pub(crate) wrk_warmup_seconds: u64,
    /// GET: alternating rounds of nginx and repram-flux, and the length of each.
    pub(crate) get_rounds: usize,
    pub(crate) get_round_seconds: u64,
    pub(crate) mesh_reps: usize,
    pub(crate) mesh_sizes: Vec<u16>,
    pub(crate) mesh_timeout_small: u64,
    pub(crate) mesh_timeout_large: u64,
    pub(crate) visible_writes: usize,
    pub(crate) memory_keys: usize,
    pub(crate) catchup_keys: usize,
    pub(crate) catchup_timeout: u64,
    pub(crate) converge_timeout: u64,
    /// Keys paged through by the listing phase, and its wrk runs' length.
    pub(crate) listing_keys: usize,
    pub(crate) listing_wrk_seconds: u64,
    /// Length of each wrk run of the 1 MiB phase.
    pub(crate) big_wrk_seconds: u64,
}
