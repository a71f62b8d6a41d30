//! The OpenAPI document covers exactly the router's routes.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::support::*;
use crate::control::error::ERROR_CODES;
use crate::control::openapi::path_params;
use crate::control::routes::{Auth, NO_ROUTE_MESSAGE, ROUTES};

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_route_and_router_serves_every_route() {
    let s = TestServer::start(Backend::Sqlite).await;
    let r = s.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["servers"][0]["url"], "/api/v1");

    // Route table ⊆ document.
    let mut table = BTreeSet::new();
    let mut op_ids = BTreeSet::new();
    for spec in ROUTES {
        let m = spec.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][spec.path][&m];
        assert!(
            op.is_object(),
            "{} {} missing from the document",
            spec.method.as_str(),
            spec.path
        );
        assert_eq!(op["operationId"], spec.op.id());
        assert!(op["responses"][spec.status.to_string()].is_object());
        assert!(op["responses"]["500"].is_object());
        for p in path_params(spec.path) {
            let listed = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|x| x["name"] == p && x["in"] == "path"));
            assert!(
                listed,
                "{} {}: path parameter {p}",
                spec.method.as_str(),
                spec.path
            );
        }
        assert_eq!(
            op["security"].as_array().map(Vec::is_empty),
            Some(spec.auth == Auth::Public)
        );
        assert!(
            op_ids.insert(spec.op.id()),
            "duplicate operationId {}",
            spec.op.id()
        );
        assert!(
            table.insert((m, spec.path.to_string())),
            "duplicate route {}",
            spec.path
        );
    }
    // Document ⊆ route table.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in item.as_object().expect("path item").keys() {
            documented.insert((m.clone(), path.clone()));
        }
    }
    assert_eq!(documented, table);

    // Every $ref resolves; every error code is known.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    for spec in ROUTES {
        for code in spec.errors {
            assert!(
                ERROR_CODES.iter().any(|(c, _, _)| c == code),
                "unknown code {code}"
            );
        }
    }

    // The router answers every route of the table (a handler, not the no-route fallback, and
    // not 405), so the router and the document cannot drift apart.
    for spec in ROUTES {
        let path = spec.path.replace("{id}", "1").replace("{title_id}", "demo");
        let method = Method::from_bytes(spec.method.as_str().as_bytes()).expect("method");
        let r = s.call(method, &path, None, &[], None).await;
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            spec.method.as_str(),
            spec.path
        );
        assert_ne!(
            r.body["message"],
            NO_ROUTE_MESSAGE,
            "{} {} not routed",
            spec.method.as_str(),
            spec.path
        );
        assert!(
            r.status.is_success() || r.body["code"].is_string(),
            "{} {}: {}",
            spec.method.as_str(),
            spec.path,
            r.text
        );
    }
    // And the fallback really is what unknown paths get.
    let r = s.get("/not-a-route", None).await;
    assert_eq!(r.body["message"], NO_ROUTE_MESSAGE);
}
