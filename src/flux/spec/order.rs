//! Key order: FluxOS verifies a registration's signature over the spec as its
//! `specificationFormatter` rewrote it, so a spec is only signable as written when its
//! keys already stand in that order ([`FORMATTER_TOP_LEVEL_ORDER`], [`COMPONENT_KEYS`]).
//!
//! `serde_json::Value` keeps object keys sorted, so the order is read from the text with
//! a visitor that records keys as they come.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::model::{COMPONENT_KEYS, FORMATTER_TOP_LEVEL_ORDER};
use super::validate::Violation;

/// The keys of a JSON document in document order; scalars are dropped.
#[derive(Debug)]
enum Shape {
    Object(Vec<(String, Shape)>),
    Array(Vec<Shape>),
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Shape>()? {
            items.push(item);
        }
        Ok(Shape::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Shape>()? {
            entries.push(entry);
        }
        Ok(Shape::Object(entries))
    }
}

/// Where the keys of the spec in `json` stray from FluxOS's formatter order, at top level
/// and in each component. Keys FluxOS does not know are left to the validator. Fails
/// only when `json` is not JSON.
pub fn key_order_violations(json: &str) -> Result<Vec<Violation>, serde_json::Error> {
    let mut out = Vec::new();
    let Shape::Object(top) = serde_json::from_str::<Shape>(json)? else {
        return Ok(out);
    };
    check("$", &top, &FORMATTER_TOP_LEVEL_ORDER, &mut out);
    if let Some((_, Shape::Array(compose))) = top.iter().find(|(k, _)| k == "compose") {
        for (i, c) in compose.iter().enumerate() {
            if let Shape::Object(keys) = c {
                check(&format!("compose[{i}]"), keys, &COMPONENT_KEYS, &mut out);
            }
        }
    }
    Ok(out)
}

fn check(path: &str, entries: &[(String, Shape)], order: &[&str], out: &mut Vec<Violation>) {
    let known: Vec<&str> = entries
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| order.contains(k))
        .collect();
    let want: Vec<&str> = order
        .iter()
        .copied()
        .filter(|k| known.contains(k))
        .collect();
    if known != want {
        out.push(Violation {
            path: path.to_string(),
            message: format!(
                "keys in the order {}; FluxOS's specificationFormatter writes {}, and the \
                 registration signature covers that order",
                known.join(", "),
                want.join(", ")
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::spec::{generate, to_json, SpecOptions};

    #[test]
    fn generated_specs_are_in_formatter_order() {
        for nodes in [1, 3, 7, 50] {
            let app = generate(&SpecOptions {
                nodes,
                ..SpecOptions::fade()
            })
            .unwrap();
            let found = key_order_violations(&to_json(&app)).unwrap();
            assert!(found.is_empty(), "nodes={nodes}: {found:#?}");
        }
    }

    #[test]
    fn a_stray_key_is_reported_where_it_is() {
        let spec = r#"{"version":8,"name":"a","owner":"b","description":"c",
            "compose":[{"name":"x","description":"","repotag":"i:1","ports":[1],
                        "domains":[""],"environmentParameters":[],"commands":[],
                        "containerPorts":[1],"containerData":"/tmp","cpu":1,"ram":100,
                        "hdd":1,"repoauth":""},
                       {"name":"y","ports":[2],"containerPorts":[2],"domains":[""],
                        "healthcheck":{}}]}"#;
        let found = key_order_violations(spec).unwrap();
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["$", "compose[1]"], "{found:#?}");
        assert!(found[0].message.contains("name, owner, description"));
        assert!(found[0]
            .message
            .contains("writes version, name, description, owner"));
        assert!(found[1]
            .message
            .contains("writes name, ports, domains, containerPorts"));
        assert!(key_order_violations("[1, 2]").unwrap().is_empty());
        assert!(key_order_violations("{").is_err());
        // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
        assert!(key_order_violations(&"[".repeat(100_000)).is_err());
    }
}
