//! Node identities: `flux-node-<index>-<process tag>[-r<restarts>]`. The process tag is
//! the failure domain: nodes with the same tag live and die with one process.

use rand::Rng;

/// A fresh random process tag: 6 hex digits shared by all nodes of one process.
pub fn new_process_tag() -> String {
    let tag: u32 = rand::thread_rng().gen_range(0..0x100_0000);
    format!("{tag:06x}")
}

/// A unique, readable node id: `flux-node-<index>-<process tag>`, with `-r<n>` appended
/// for the n-th restart of that node, so every start has a fresh identity.
pub fn node_id(index: usize, process_tag: &str, restarts: u32) -> String {
    if restarts == 0 {
        format!("flux-node-{index}-{process_tag}")
    } else {
        format!("flux-node-{index}-{process_tag}-r{restarts}")
    }
}

/// The failure domain (process) of a node id: its process tag for ids made by
/// [`node_id`], the whole id otherwise (an unknown format is its own domain).
pub fn failure_domain(id: &str) -> &str {
    let mut parts = id.splitn(4, '-');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("flux"), Some("node"), Some(_index), Some(rest)) => {
            rest.split('-').next().unwrap_or(rest)
        }
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_carry_index_process_and_restart_count() {
        assert_eq!(node_id(2, "7f3a9c", 0), "flux-node-2-7f3a9c");
        assert_eq!(node_id(2, "7f3a9c", 3), "flux-node-2-7f3a9c-r3");
        let tag = new_process_tag();
        assert_eq!(tag.len(), 6);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_failure_domain_is_the_process_tag() {
        assert_eq!(failure_domain("flux-node-2-7f3a9c"), "7f3a9c");
        assert_eq!(failure_domain("flux-node-12-7f3a9c-r3"), "7f3a9c");
        assert_eq!(failure_domain("something-else"), "something-else");
        assert_eq!(failure_domain("flux-node-1"), "flux-node-1");
        assert_eq!(failure_domain(""), "");
    }
}
