//! `GET /openapi.json`: the OpenAPI description of the public API. `openapi.yaml` at the
//! repository root is its only source; `build.rs` converts it to JSON at build time.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::Response;

/// The description, as compact JSON.
pub const SPEC_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The answer to `GET /openapi.json`.
pub fn spec() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(SPEC_JSON.as_bytes())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_openapi_json() {
        let spec: serde_json::Value = serde_json::from_str(SPEC_JSON).unwrap();
        assert_eq!(spec["openapi"], "3.0.3");
        assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(spec["paths"]["/data/{key}"]["put"].is_object());
    }
}
