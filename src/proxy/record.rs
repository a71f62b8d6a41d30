//! One record per answered request, for the metrics and the access log, written the same way
//! by the pipeline's `logging` phase and by the front.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::gate::{Headers, Kind};
use super::request_id::Ids;
use super::tokens::Granted;
use crate::access_log::line::{self, Entry};
use crate::config::LogFormat;
use crate::state::{EdgeState, Live};

/// What one request was and how it was answered: what the metrics count.
pub struct RequestRecord<'a> {
    pub kind: Kind,
    pub status: u16,
    /// `HIT`, `MISS`, ... for content; `NONE` otherwise.
    pub cache: &'static str,
    /// Body bytes sent.
    pub bytes: usize,
    pub elapsed: Duration,
    /// The player's CMCD, counted in the CMCD metrics and written in the log line.
    pub cmcd: Option<&'a crate::cmcd::Report>,
}

/// The rest of an access-log line, gathered only for a line that is written
/// ([`crate::access_log::wanted`]).
pub struct Details<'a> {
    pub method: &'a str,
    pub proto: &'static str,
    pub host: &'a str,
    /// The target's path and query as sent (tokens are redacted when written).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The `[[cache.keys]]` rule that made the key.
    pub query_rule: Option<&'a str>,
    pub client: IpAddr,
    pub ttfb: Option<Duration>,
    pub ids: Option<&'a Ids>,
    pub token: Option<&'a Granted>,
    pub reason: Option<&'a str>,
    pub range: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub referer: Option<Cow<'a, str>>,
    pub upstream: Option<String>,
    pub upstream_status: Option<u16>,
    pub error: Option<String>,
}

/// The first value of a header field as text (invalid UTF-8 replaced), for the log.
pub fn field<'a>(headers: Headers<'a>, name: &str) -> Option<Cow<'a, str>> {
    headers.all(name).next().map(String::from_utf8_lossy)
}

/// The key id of a native token (`v1.<kid>.…`).
fn kid(token: &str) -> Option<&str> {
    let mut parts = token.split('.');
    (parts.next() == Some("v1")).then(|| parts.next()).flatten()
}

impl RequestRecord<'_> {
    /// Count the request; with `details`, write its access-log line.
    pub fn emit(&self, state: &EdgeState, live: &Live, details: Option<Details<'_>>) {
        state.metrics.observe_request(
            self.kind.as_str(),
            self.status,
            self.cache,
            self.elapsed,
            self.bytes,
        );
        if let Some(c) = self.cmcd {
            state.metrics.cmcd.observe(&c.prefix, self.cache, &c.data);
        }
        if let Some(d) = details {
            let line = self.line(state, live, d);
            state.access_log.submit(line);
        }
    }

    fn line(&self, state: &EdgeState, live: &Live, d: Details<'_>) -> Vec<u8> {
        let country = state.geo.as_ref().and_then(|g| g.lookup(d.client));
        let token_params: Vec<&str> = live.config.tokens.as_ref().map_or(Vec::new(), |tc| {
            let mut names = vec![tc.param.as_str()];
            names.extend(tc.edgeauth.as_ref().map(|ea| ea.param.as_str()));
            // A CloudFront signature (and its policy) is a bearer credential too.
            if tc.cloudfront.is_some() {
                names.extend(["Signature", "Policy"]);
            }
            names
        });
        let claims = d.token.and_then(|g| g.claims.as_ref());
        let entry = Entry {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            client: d.client,
            kind: self.kind.as_str(),
            method: d.method,
            proto: d.proto,
            host: Cow::Borrowed(d.host),
            path: line::redact_path(d.path),
            query: d.query.map(|q| line::redact_query(q, &token_params)),
            query_rule: d.query_rule,
            status: self.status,
            bytes: self.bytes,
            range: d.range,
            cache: self.cache,
            ttfb_ms: d.ttfb.map(line::millis),
            ms: line::millis(self.elapsed),
            upstream: d.upstream,
            upstream_status: d.upstream_status,
            request_id: d.ids.map_or("-", |i| i.request_id.as_str()),
            trace_id: d
                .ids
                .and_then(|i| i.trace.as_ref())
                .map(|t| t.trace_id.as_str()),
            kid: d.token.and_then(|g| kid(&g.token)),
            sid: claims.and_then(|c| c.sid.as_deref()),
            country: country.as_ref().map(|c| c.as_str()),
            user_agent: d.user_agent,
            referer: d.referer,
            reason: d.reason,
            error: d.error,
            cmcd: self.cmcd.map(|c| &c.data),
        };
        match live.config.log.format {
            LogFormat::Json => line::json(&entry),
            LogFormat::Text => line::text(&entry),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn kid_of_a_native_token() {
        assert_eq!(super::kid("v1.k-2.payload.mac"), Some("k-2"));
        assert_eq!(super::kid("st=1~exp=2~hmac=3"), None);
    }
}
