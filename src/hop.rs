//! Hop-by-hop fields (RFC 9110 §7.6.1): `Connection`, the fields it names, and the fields
//! that are hop-by-hop by definition are for one connection only, so the edge removes them
//! from what it forwards, both ways: from the request it sends to an origin and from the
//! response it stores and sends to players. Framing (`Content-Length`, `Transfer-Encoding`)
//! is left to Pingora, which frames each connection itself. The cache asks the same
//! question when a 304 updates a stored response ([`crate::cache::freshness`]).

use http::HeaderMap;

/// Fields that are hop-by-hop whether or not `Connection` names them. `Upgrade` is among
/// them: the edge tunnels only on `[server] upgrade_prefixes`, after the token gate
/// ([`forward_upgrade`], [`strip_switching`]); elsewhere a `101` would turn a connection into
/// a pipe nobody asked for.
const ALWAYS: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
];

/// Request fields that are not part of the cache key but that origins (and frameworks in
/// front of them) act on: a response that reflects one would be stored and served to every
/// viewer (cache poisoning), so the edge does not forward them — except the ones an operator
/// lists in `[server] forward_headers`. Those are not part of the cache key either: an origin
/// whose response depends on one must say so with `Vary` (the cache then keeps a variant per
/// value, as for any `Vary` field), or must not vary on it at all.
pub const UNKEYED: [&str; 12] = [
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
];

/// Remove the request fields the cache key does not cover ([`UNKEYED`]) but those in `keep`
/// (`[server] forward_headers`, lower-case).
pub fn strip_unkeyed(req: &mut pingora_http::RequestHeader, keep: &[String]) {
    for name in UNKEYED {
        if req.headers.contains_key(name) && !keep.iter().any(|k| k == name) {
            req.remove_header(name);
        }
    }
}

/// Never removed even when `Connection` names them: Pingora frames the message with them.
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// Remove the hop-by-hop fields of a request being forwarded to an origin.
pub fn strip_request(req: &mut pingora_http::RequestHeader) {
    for name in fields(&req.headers) {
        req.remove_header(&name);
    }
}

/// Remove the hop-by-hop fields of an origin's response (before it is stored or sent).
pub fn strip_response(resp: &mut pingora_http::ResponseHeader) {
    for name in fields(&resp.headers) {
        resp.remove_header(&name);
    }
}

/// A request forwarded as an upgrade: after [`strip_request`], the client's `Upgrade` again,
/// and `Connection: upgrade` (the only hop-by-hop fields an upgrade needs; RFC 9110 §7.8).
pub fn forward_upgrade(
    client: &pingora_http::RequestHeader,
    req: &mut pingora_http::RequestHeader,
) -> pingora_error::Result<()> {
    if let Some(v) = client.headers.get(http::header::UPGRADE) {
        req.insert_header(http::header::UPGRADE, v.clone())?;
        req.insert_header(http::header::CONNECTION, "upgrade")?;
    }
    Ok(())
}

/// The `101` answer to a forwarded upgrade: hop-by-hop fields out but its `Upgrade`, and
/// `Connection: upgrade` (the client needs both to switch).
pub fn strip_switching(resp: &mut pingora_http::ResponseHeader) -> pingora_error::Result<()> {
    let upgrade = resp.headers.get(http::header::UPGRADE).cloned();
    strip_response(resp);
    if let Some(v) = upgrade {
        resp.insert_header(http::header::UPGRADE, v)?;
        resp.insert_header(http::header::CONNECTION, "upgrade")?;
    }
    Ok(())
}

/// The hop-by-hop fields present in `headers`: the ones that always are, and those its
/// `Connection` names (never the framing fields).
pub fn fields(headers: &HeaderMap) -> Vec<String> {
    let named = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && !FRAMING.contains(&n.as_str()));
    let mut out: Vec<String> = ALWAYS.iter().map(|n| n.to_string()).chain(named).collect();
    out.retain(|n| headers.contains_key(n.as_str()));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_what_it_names_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, X-Secret"),
            ("connection", "x-other , content-length"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("content-length", "3"),
            ("x-kept", "yes"),
        ] {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut req = pingora_http::RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in h.iter() {
            req.append_header(k.clone(), v.clone()).unwrap();
        }
        strip_request(&mut req);
        let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["content-length", "x-kept"]);

        let mut client = pingora_http::RequestHeader::build("GET", b"/ws", None).unwrap();
        client.insert_header("upgrade", "websocket").unwrap();
        forward_upgrade(&client, &mut req).unwrap();
        assert_eq!(req.headers.get("upgrade").unwrap(), "websocket");
        assert_eq!(req.headers.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn a_switching_answer_keeps_its_upgrade() {
        let mut resp = pingora_http::ResponseHeader::build(101, None).unwrap();
        for (k, v) in [
            ("upgrade", "websocket"),
            ("connection", "Upgrade, X-S"),
            ("x-s", "1"),
            ("keep-alive", "5"),
            ("sec-websocket-accept", "a"),
        ] {
            resp.append_header(k, v).unwrap();
        }
        strip_switching(&mut resp).unwrap();
        let mut left: Vec<(&str, &str)> = resp
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                ("connection", "upgrade"),
                ("sec-websocket-accept", "a"),
                ("upgrade", "websocket")
            ]
        );
    }
}
