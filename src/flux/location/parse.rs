//! Parsing a location answer into instance IPs.

use std::net::IpAddr;

use serde_json::Value;

use super::FluxError;
use crate::text::one_line;

/// A parsed instance list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationList {
    /// Instance IPs, sorted, without duplicates, `:port` suffixes stripped.
    pub ips: Vec<IpAddr>,
    /// Entries without a usable `ip` (missing, not a string, not an address).
    pub skipped: usize,
}

/// Parses a location answer:
/// `{"status":"success","data":[{"name":…,"ip":"1.2.3.4:16137",…},…]}`.
///
/// A wrong overall shape is an error; single entries without a usable `ip` are skipped
/// and counted, so one bad entry does not hide the others.
pub fn parse_location_body(body: &[u8]) -> Result<LocationList, FluxError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| FluxError::Malformed(format!("not JSON ({e}): {}", snippet(body))))?;
    let Some(obj) = json.as_object() else {
        return Err(FluxError::Malformed(format!(
            "expected a JSON object: {}",
            snippet(body)
        )));
    };
    match obj.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let message = obj
                .get("data")
                .and_then(|d| d.get("message").or(Some(d)))
                .map(|m| match m {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "no message".to_string());
            return Err(FluxError::Api(one_line(&message, 200)));
        }
        Some(other) => {
            return Err(FluxError::Malformed(format!(
                "status is {:?}, expected \"success\"",
                one_line(other, 40)
            )))
        }
        None => {
            return Err(FluxError::Malformed(
                "no \"status\" string in the answer".to_string(),
            ))
        }
    }
    let Some(entries) = obj.get("data").and_then(Value::as_array) else {
        return Err(FluxError::Malformed(
            "\"data\" is not a list of instances".to_string(),
        ));
    };
    let mut list = LocationList::default();
    for entry in entries {
        match entry
            .get("ip")
            .and_then(Value::as_str)
            .and_then(parse_instance_ip)
        {
            Some(ip) => list.ips.push(ip),
            None => list.skipped += 1,
        }
    }
    list.ips.sort();
    list.ips.dedup();
    Ok(list)
}

pub use crate::addr::parse_instance_ip;

/// `ips` minus this instance's own address (`FLUX_NODE_HOST_IP`, which may carry a
/// `:port` suffix too): connecting to one's own public IP may fail on Flux.
pub fn without_own_ip(ips: &[IpAddr], own: Option<&str>) -> Vec<IpAddr> {
    let own = own.and_then(parse_instance_ip);
    ips.iter().copied().filter(|ip| Some(*ip) != own).collect()
}

/// The start of a body for an error message.
pub(super) fn snippet(body: &[u8]) -> String {
    one_line(&String::from_utf8_lossy(&body[..body.len().min(120)]), 120)
}
