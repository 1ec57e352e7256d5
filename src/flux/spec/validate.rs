//! The validator: every rule FluxOS applies when a v8 app is registered, plus the
//! repram-specific agreement between a component's environment and its ports.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::config::Config;

use super::model::*;
use super::names::{check_app_name, check_repotag, has_reserved_prefix, is_domain, shown};

/// One broken rule: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON path, e.g. `compose[0].ports`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The variable that must never stand in a public spec.
pub const SECRET_VAR: &str = "REPRAM_CLUSTER_SECRET";

/// Which form of a spec is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum View {
    /// What is registered and public: a normal app (`enterprise: ""`, components in the
    /// clear, no secret in them) or an enterprise app (`compose: []`, `contacts: []`,
    /// the components encrypted in `enterprise`).
    Public,
    /// An enterprise app as ArcaneOS nodes see it once decrypted: components in the
    /// clear, secrets allowed, `enterprise` not looked at.
    Decrypted,
}

/// Checks `spec`, as it would be registered, against every rule FluxOS applies to a v8
/// app (type, restriction, key and port-uniqueness checks of its appValidator, and the
/// resource limits), and refuses a cluster secret in a public spec. An enterprise app's
/// public form (`compose: []`, `enterprise: "<blob>"`) is checked as far as it can be
/// without the key: the blob's shape. Returns every violation; empty means valid.
pub fn validate_v8(spec: &Value) -> Vec<Violation> {
    validate(spec, View::Public)
}

pub(super) fn validate(spec: &Value, view: View) -> Vec<Violation> {
    let mut v = Rules::default();
    let Some(top) = spec.as_object() else {
        v.add("$", "a spec is a JSON object");
        return v.0;
    };
    for key in top.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str())
            && !OPTIONAL_TOP_LEVEL_KEYS.contains(&key.as_str())
        {
            v.add(key, "unsupported parameter for v8 app specifications");
        }
    }
    for key in TOP_LEVEL_KEYS {
        if !top.contains_key(key) {
            v.add(key, "missing");
        }
    }
    if let Some(d) = top.get("datacenter") {
        if !d.is_boolean() {
            v.add("datacenter", "must be true or false");
        }
    }
    if top.get("version").and_then(Value::as_u64) != Some(8) {
        v.add("version", "must be the number 8");
    }
    match top.get("name").and_then(Value::as_str) {
        Some(name) => {
            if let Err(why) = check_app_name(name) {
                v.add("name", why);
            }
        }
        None => v.add("name", "must be a string"),
    }
    v.string("description", top.get("description"), 1, 256);
    match top.get("owner").and_then(Value::as_str) {
        Some(o)
            if !o.is_empty() && o.len() <= 100 && o.chars().all(|c| c.is_ascii_alphanumeric()) => {}
        _ => v.add("owner", "must be a Flux ID (ZelID): letters and digits"),
    }
    match top.get("instances").and_then(Value::as_u64) {
        Some(n) if (1..=u64::from(MAX_INSTANCES)).contains(&n) => {}
        _ => v.add(
            "instances",
            format!("must be a whole number from 1 to {MAX_INSTANCES}"),
        ),
    }
    v.string_list("contacts", top.get("contacts"), 5, 0, 75);
    v.string_list("geolocation", top.get("geolocation"), 10, 0, 50);
    match top.get("expire").and_then(Value::as_u64) {
        Some(n) if (1..=MAX_EXPIRE_BLOCKS).contains(&n) => {}
        _ => v.add(
            "expire",
            format!("must be a whole number of blocks from 1 to {MAX_EXPIRE_BLOCKS}"),
        ),
    }
    if top.get("staticip") != Some(&Value::Bool(false)) {
        v.add("staticip", "must be false");
    }
    let enterprise = match (view, top.get("enterprise")) {
        (View::Decrypted, _) => true,
        (View::Public, Some(Value::String(blob))) if blob.is_empty() => false,
        (View::Public, Some(Value::String(blob))) => {
            if let Err(why) = super::enterprise::check_blob(blob) {
                v.add("enterprise", why);
            }
            true
        }
        (View::Public, _) => {
            v.add(
                "enterprise",
                "must be \"\" (a normal app) or the encrypted components (an enterprise app)",
            );
            false
        }
    };
    if enterprise {
        v.string_list("nodes", top.get("nodes"), 120, 1, 70);
    } else if top.get("nodes").and_then(Value::as_array).map(Vec::len) != Some(0) {
        v.add(
            "nodes",
            "must be [] (node selection is for enterprise apps only)",
        );
    }

    let Some(compose) = top.get("compose").and_then(Value::as_array) else {
        v.add("compose", "must be a list of components");
        return v.0;
    };
    if enterprise && view == View::Public {
        // The components travel encrypted; in the clear they would be public.
        if !compose.is_empty() {
            v.add(
                "compose",
                "must be [] in an enterprise app's public spec: its components go \
                 encrypted in enterprise, and these would be readable by anyone",
            );
        }
        if top.get("contacts").and_then(Value::as_array).map(Vec::len) != Some(0) {
            v.add(
                "contacts",
                "must be [] in an enterprise app's public spec (contacts go encrypted in \
                 enterprise)",
            );
        }
        return v.0;
    }
    if compose.is_empty() || compose.len() > MAX_COMPONENTS {
        v.add(
            "compose",
            format!(
                "must hold 1 to {MAX_COMPONENTS} components, has {}",
                compose.len()
            ),
        );
    }
    let mut names = BTreeSet::new();
    let mut all_ports: Vec<u64> = Vec::new();
    let (mut cpu_tenths, mut ram, mut hdd) = (0u64, 0u64, 0u64);
    for (i, c) in compose.iter().enumerate() {
        let at = |field: &str| format!("compose[{i}].{field}");
        let Some(c) = c.as_object() else {
            v.add(&format!("compose[{i}]"), "a component is a JSON object");
            continue;
        };
        for key in c.keys() {
            if !COMPONENT_KEYS.contains(&key.as_str()) {
                v.add(&at(key), "unsupported parameter for v8 app components");
            }
        }
        for key in COMPONENT_KEYS {
            if !c.contains_key(key) {
                v.add(&at(key), "missing");
            }
        }
        match c.get("name").and_then(Value::as_str) {
            Some(n) => {
                if n.is_empty() || n.len() > 63 || !n.chars().all(|ch| ch.is_ascii_alphanumeric()) {
                    v.add(&at("name"), "must be 1 to 63 letters and digits");
                } else if has_reserved_prefix(n) {
                    v.add(&at("name"), "must not start with flux or zel");
                } else if !names.insert(n.to_string()) {
                    v.add(&at("name"), format!("{n} is used twice"));
                }
            }
            None => v.add(&at("name"), "must be a string"),
        }
        v.string(&at("description"), c.get("description"), 0, 256);
        match c.get("repotag").and_then(Value::as_str) {
            Some(r) => {
                if let Err(why) = check_repotag(r) {
                    v.add(&at("repotag"), why);
                }
            }
            None => v.add(&at("repotag"), "must be a string"),
        }
        let ports = v.port_list(&at("ports"), c.get("ports"), 1);
        let container_ports = v.port_list(&at("containerPorts"), c.get("containerPorts"), 0);
        for p in &ports {
            if *p <= 65535 && is_banned_port(*p as u16) {
                v.add(&at("ports"), format!("port {p} is banned for Flux apps"));
            }
        }
        let domains = v.string_list(&at("domains"), c.get("domains"), usize::MAX, 0, 253);
        if let (Some(d), Some(p)) = (
            c.get("domains").and_then(Value::as_array),
            c.get("ports").and_then(Value::as_array),
        ) {
            if ports.len() > usize::from(PORTS_PER_COMPONENT) {
                v.add(
                    &at("ports"),
                    format!(
                        "{} ports, at most {PORTS_PER_COMPONENT} per component",
                        p.len()
                    ),
                );
            }
            if d.len() != p.len() {
                v.add(&at("domains"), "must have one entry per port");
            }
        }
        if let Some(cp) = c.get("containerPorts").and_then(Value::as_array) {
            if Some(cp.len()) != c.get("ports").and_then(Value::as_array).map(Vec::len) {
                v.add(&at("containerPorts"), "must have one entry per port");
            }
        }
        for d in domains.iter().filter(|d| !d.is_empty()) {
            if !is_domain(&d.to_ascii_lowercase()) {
                v.add(&at("domains"), format!("{} is not a domain name", shown(d)));
            }
        }
        let _ = container_ports;
        all_ports.extend(ports);
        let env = v.string_list(
            &at("environmentParameters"),
            c.get("environmentParameters"),
            20,
            0,
            400,
        );
        for e in &env {
            let secret = e
                .split_once('=')
                .is_some_and(|(k, val)| k == SECRET_VAR && !val.trim().is_empty());
            if secret && view == View::Public {
                v.add(
                    &at("environmentParameters"),
                    format!(
                        "{SECRET_VAR} in a public spec: anyone can read it; make it an \
                         enterprise app (flux-spec --enterprise) or leave it out and rely on \
                         the closed node routes"
                    ),
                );
            }
            let key_ok = e.split_once('=').is_some_and(|(k, _)| {
                let mut chars = k.chars();
                chars
                    .next()
                    .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                    && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            });
            if !key_ok {
                v.add(
                    &at("environmentParameters"),
                    format!("{} is not KEY=value", shown(e)),
                );
            }
        }
        v.string_list(&at("commands"), c.get("commands"), 20, 0, 400);
        v.string(&at("containerData"), c.get("containerData"), 2, 200);
        if c.get("repoauth") != Some(&Value::String(String::new())) {
            v.add(
                &at("repoauth"),
                "must be \"\" (private images are for enterprise apps only)",
            );
        }
        match c.get("cpu").and_then(Value::as_f64) {
            Some(cpu) if cpu >= 0.1 && ((cpu * 10.0).round() - cpu * 10.0).abs() < 1e-9 => {
                cpu_tenths += (cpu * 10.0).round() as u64;
            }
            _ => v.add(&at("cpu"), "must be at least 0.1 cores, in steps of 0.1"),
        }
        match c.get("ram").and_then(Value::as_u64) {
            Some(r) if r >= 100 && r % 100 == 0 => ram += r,
            _ => v.add(&at("ram"), "must be at least 100 MB, in steps of 100"),
        }
        match c.get("hdd").and_then(Value::as_u64) {
            Some(h) if h >= 1 => hdd += h,
            _ => v.add(&at("hdd"), "must be a whole number of GB, at least 1"),
        }
    }
    let mut seen = BTreeSet::new();
    for p in &all_ports {
        if !seen.insert(*p) {
            v.add(
                "compose",
                format!("port {p} is used twice; ports must be unique across the app"),
            );
        }
    }
    // Largest node (stratus) minus what FluxOS keeps for itself.
    if cpu_tenths > 150 {
        v.add(
            "compose",
            format!("{} cores in all, at most 15", cpu_tenths as f64 / 10.0),
        );
    }
    if ram > 59_000 {
        v.add("compose", format!("{ram} MB of RAM in all, at most 59000"));
    }
    if hdd > 820 {
        v.add("compose", format!("{hdd} GB of disk in all, at most 820"));
    }
    v.0
}

/// repram-specific checks of a spec: in every component the environment is a valid
/// repram-flux configuration, the ports are exactly `BASE_PORT..BASE_PORT+MAX_PORTS-1`
/// (container port = public port, since nodes advertise the port they listen on), and
/// `NODE_COUNT` fits.
pub fn check_repram_env(spec: &Value) -> Vec<Violation> {
    let mut v = Rules::default();
    let Some(compose) = spec.get("compose").and_then(Value::as_array) else {
        return v.0;
    };
    for (i, c) in compose.iter().enumerate() {
        let at = |field: &str| format!("compose[{i}].{field}");
        let pairs: Vec<(String, String)> = c
            .get("environmentParameters")
            .and_then(Value::as_array)
            .map(|env| {
                env.iter()
                    .filter_map(Value::as_str)
                    .filter_map(|e| e.split_once('='))
                    .map(|(k, val)| (k.to_string(), val.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let config = match Config::from_iter(pairs) {
            Ok(c) => c,
            Err(e) => {
                v.add(
                    &at("environmentParameters"),
                    format!("not a valid configuration: {e}"),
                );
                continue;
            }
        };
        let want: Vec<u64> = config.port_range().map(u64::from).collect();
        let list = |key: &str| -> Vec<u64> {
            c.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        if list("ports") != want {
            v.add(
                &at("ports"),
                format!(
                    "must be BASE_PORT..=BASE_PORT+MAX_PORTS-1 ({}-{})",
                    config.port_range().start(),
                    config.port_range().end()
                ),
            );
        }
        if list("containerPorts") != want {
            v.add(&at("containerPorts"), "must equal ports");
        }
    }
    v.0
}

#[derive(Default)]
struct Rules(Vec<Violation>);

impl Rules {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Violation {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn string(&mut self, path: &str, value: Option<&Value>, min: usize, max: usize) {
        match value.and_then(Value::as_str) {
            Some(s) if (min..=max).contains(&s.chars().count()) => {}
            _ => self.add(
                path,
                format!("must be a string of {min} to {max} characters"),
            ),
        }
    }

    /// A list of strings: at most `max_items`, each `min..=max` characters.
    fn string_list(
        &mut self,
        path: &str,
        value: Option<&Value>,
        max_items: usize,
        min: usize,
        max: usize,
    ) -> Vec<String> {
        let Some(items) = value.and_then(Value::as_array) else {
            self.add(path, "must be a list of strings");
            return Vec::new();
        };
        if items.len() > max_items {
            self.add(
                path,
                format!("{} entries, at most {max_items}", items.len()),
            );
        }
        let mut out = Vec::new();
        for item in items {
            match item.as_str() {
                Some(s) if (min..=max).contains(&s.chars().count()) => out.push(s.to_string()),
                Some(s) => self.add(
                    path,
                    format!("{} must have {min} to {max} characters", shown(s)),
                ),
                None => self.add(path, "must hold strings only"),
            }
        }
        out
    }

    /// A list of whole numbers in `min..=65535`.
    fn port_list(&mut self, path: &str, value: Option<&Value>, min: u64) -> Vec<u64> {
        let Some(items) = value.and_then(Value::as_array) else {
            self.add(path, "must be a list of port numbers");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_u64() {
                Some(p) if (min..=65535).contains(&p) => out.push(p),
                _ => self.add(
                    path,
                    format!("{item} is not a port number from {min} to 65535"),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::spec::generate::{generate, SpecOptions};
    use serde_json::json;

    fn fade_value() -> Value {
        serde_json::to_value(generate(&SpecOptions::fade()).unwrap()).unwrap()
    }

    fn paths(spec: &Value) -> Vec<String> {
        validate_v8(spec).into_iter().map(|v| v.path).collect()
    }

    #[test]
    fn validator_catches_each_rule() {
        let good = fade_value();
        assert!(validate_v8(&good).is_empty());
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            paths(&v)
        };
        fn c0(v: &mut Value) -> &mut serde_json::Map<String, Value> {
            v["compose"][0].as_object_mut().unwrap()
        }
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                broken(&|v| {
                    v["healthcheck"] = json!({});
                }),
                "healthcheck",
            ),
            (
                broken(&|v| {
                    v.as_object_mut().unwrap().remove("expire");
                }),
                "expire",
            ),
            (
                broken(&|v| {
                    v["version"] = json!(7);
                }),
                "version",
            ),
            (
                broken(&|v| {
                    v["version"] = json!("8");
                }),
                "version",
            ),
            (
                broken(&|v| {
                    v["name"] = json!("has_underscore");
                }),
                "name",
            ),
            (
                broken(&|v| {
                    v["name"] = json!("zelapp");
                }),
                "name",
            ),
            (
                broken(&|v| {
                    v["name"] = json!("a".repeat(64));
                }),
                "name",
            ),
            (
                broken(&|v| {
                    v["description"] = json!("x".repeat(257));
                }),
                "description",
            ),
            (
                broken(&|v| {
                    v["owner"] = json!("");
                }),
                "owner",
            ),
            (
                broken(&|v| {
                    v["instances"] = json!(0);
                }),
                "instances",
            ),
            (
                broken(&|v| {
                    v["instances"] = json!(101);
                }),
                "instances",
            ),
            (
                broken(&|v| {
                    v["instances"] = json!(2.5);
                }),
                "instances",
            ),
            (
                broken(&|v| {
                    v["contacts"] = json!(["a", "b", "c", "d", "e", "f"]);
                }),
                "contacts",
            ),
            (
                broken(&|v| {
                    v["geolocation"] = json!("EU");
                }),
                "geolocation",
            ),
            (
                broken(&|v| {
                    v["expire"] = json!(0);
                }),
                "expire",
            ),
            (
                broken(&|v| {
                    v["expire"] = json!(2_000_000);
                }),
                "expire",
            ),
            (
                broken(&|v| {
                    v["nodes"] = json!(["abc:0"]);
                }),
                "nodes",
            ),
            (
                broken(&|v| {
                    v["staticip"] = json!("false");
                }),
                "staticip",
            ),
            (
                broken(&|v| {
                    v["enterprise"] = json!(false);
                }),
                "enterprise",
            ),
            (
                broken(&|v| {
                    v["datacenter"] = json!("yes");
                }),
                "datacenter",
            ),
            (
                broken(&|v| {
                    v["compose"] = json!([]);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v).insert("healthcheck".into(), json!({"test": "x"}));
                }),
                "compose[0].healthcheck",
            ),
            (
                broken(&|v| {
                    c0(v).insert("tiered".into(), json!(false));
                }),
                "compose[0].tiered",
            ),
            (
                broken(&|v| {
                    c0(v).remove("repoauth");
                }),
                "compose[0].repoauth",
            ),
            (
                broken(&|v| {
                    c0(v)["name"] = json!("re-pram");
                }),
                "compose[0].name",
            ),
            (
                broken(&|v| {
                    c0(v)["name"] = json!("fluxnode");
                }),
                "compose[0].name",
            ),
            (
                broken(&|v| {
                    c0(v)["repotag"] = json!("repram/repram-flux");
                }),
                "compose[0].repotag",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([8081, 8082, 8083, 8084, 8085, 8086]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!(["8081", 8082, 8083, 8084, 8085]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([22, 8082, 8083, 8084, 8085]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([8081, 8082, 8083, 8084, 70000]);
                }),
                "compose[0].ports",
            ),
            (
                broken(&|v| {
                    c0(v)["ports"] = json!([8081, 8081, 8083, 8084, 8085]);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v)["containerPorts"] = json!([8081]);
                }),
                "compose[0].containerPorts",
            ),
            (
                broken(&|v| {
                    c0(v)["domains"] = json!(["fade.repram.io"]);
                }),
                "compose[0].domains",
            ),
            (
                broken(&|v| {
                    c0(v)["domains"] = json!(["http://x.io", "", "", "", ""]);
                }),
                "compose[0].domains",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] = json!({"A": "1"});
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] = json!(["NO_EQUALS_SIGN"]);
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] = json!([format!("A={}", "x".repeat(400))]);
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["environmentParameters"] =
                        json!((0..21).map(|i| format!("V{i}=1")).collect::<Vec<_>>());
                }),
                "compose[0].environmentParameters",
            ),
            (
                broken(&|v| {
                    c0(v)["commands"] = json!([1]);
                }),
                "compose[0].commands",
            ),
            (
                broken(&|v| {
                    c0(v)["containerData"] = json!("/");
                }),
                "compose[0].containerData",
            ),
            (
                broken(&|v| {
                    c0(v)["repoauth"] = json!("user:pass");
                }),
                "compose[0].repoauth",
            ),
            (
                broken(&|v| {
                    c0(v)["cpu"] = json!(0.05);
                }),
                "compose[0].cpu",
            ),
            (
                broken(&|v| {
                    c0(v)["cpu"] = json!(0.55);
                }),
                "compose[0].cpu",
            ),
            (
                broken(&|v| {
                    c0(v)["cpu"] = json!(16);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v)["ram"] = json!(150);
                }),
                "compose[0].ram",
            ),
            (
                broken(&|v| {
                    c0(v)["ram"] = json!(60000);
                }),
                "compose",
            ),
            (
                broken(&|v| {
                    c0(v)["hdd"] = json!(0);
                }),
                "compose[0].hdd",
            ),
            (
                broken(&|v| {
                    c0(v)["hdd"] = json!(1.5);
                }),
                "compose[0].hdd",
            ),
        ];
        for (found, want) in cases {
            assert!(
                found.iter().any(|p| p == want),
                "expected a violation at {want}, got {found:?}"
            );
        }
        assert_eq!(paths(&json!([])), ["$"]);
        assert_eq!(paths(&json!(null)), ["$"]);
        assert!(!paths(&json!({})).is_empty());
    }

    #[test]
    fn repram_env_consistency() {
        let good = fade_value();
        assert!(check_repram_env(&good).is_empty());
        let mut v = good.clone();
        v["compose"][0]["environmentParameters"] = json!(["NODE_COUNT=abc"]);
        let found = check_repram_env(&v);
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .message
                .contains("NODE_COUNT=abc: expected a whole number"),
            "{found:?}"
        );
        let mut v = good.clone();
        v["compose"][0]["containerPorts"] = json!([81, 82, 83, 84, 85]);
        assert_eq!(check_repram_env(&v)[0].path, "compose[0].containerPorts");
        let mut v = good;
        v["compose"][0]["environmentParameters"] = json!(["BASE_PORT=9000", "MAX_PORTS=5"]);
        assert_eq!(check_repram_env(&v)[0].path, "compose[0].ports");
    }
}
