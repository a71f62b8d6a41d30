//! Country rules per path prefix, and the token's `cc` claim.
//!
//! ```toml
//! [geo]
//! status = 451                      # answer for a blocked request (default 451)
//! [[geo.rules]]
//! prefix = "/v/uk-only/"            # ends in '/': the directory and everything under it
//! allow = ["GB"]
//! unknown = "deny"                  # no country for the client address
//! [[geo.rules]]
//! prefix = "/v/"
//! deny = ["KP"]
//! ```
//!
//! The rule with the longest matching prefix decides (one rule per request). A prefix that
//! ends in `/` matches on segment boundaries: `/v/uk-only/` matches `/v/uk-only/a.m3u8` and
//! `/v/uk-only` but not `/v/uk-only-extra/`; a prefix without a trailing `/` matches that exact
//! path only. Paths must be normalised first (`crate::path::normalize`), and compared without
//! the query string; matching is case-sensitive, country codes are not.

use std::fmt;
use std::str::FromStr;

use super::CountryCode;

/// The answer for blocked requests unless configured: 451 Unavailable For Legal Reasons.
pub const DEFAULT_STATUS: u16 = 451;

/// What to do with a client whose country is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    #[default]
    Allow,
    Deny,
}

impl FromStr for Action {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, RuleError> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            _ => Err(RuleError(format!(
                "unknown = {s:?}: expected \"allow\" or \"deny\""
            ))),
        }
    }
}

/// One `[[geo.rules]]` entry. Set `allow` or `deny` (or neither, to only decide `unknown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub prefix: String,
    /// Only these countries may fetch.
    pub allow: Option<Vec<String>>,
    /// These countries may not fetch.
    pub deny: Option<Vec<String>>,
    /// Clients whose country is unknown.
    pub unknown: Action,
}

impl Rule {
    /// Does this rule cover `path` (normalised, no query)?
    pub fn matches(&self, path: &str) -> bool {
        match self.prefix.strip_suffix('/') {
            Some(dir) => path.starts_with(self.prefix.as_str()) || path == dir,
            None => path == self.prefix,
        }
    }
}

/// A bad rule set; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `country_denied`, `country_not_allowed`, `country_unknown` or `token_country`: for
    /// the log, the metrics label and the response body.
    pub reason: &'static str,
    /// The client's country, when known (upper case).
    pub country: Option<String>,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.country {
            Some(cc) => write!(f, "{} ({cc})", self.reason),
            None => write!(f, "{} (country unknown)", self.reason),
        }
    }
}

/// Validated rules, longest prefix first, and the status for blocked requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    status: u16,
}

impl Default for Policy {
    /// No rules (only a token's `cc` claim can block), status 451.
    fn default() -> Self {
        Policy {
            rules: Vec::new(),
            status: DEFAULT_STATUS,
        }
    }
}

impl Policy {
    /// Validates and orders `rules`. `status` (`None`: 451) must be 400..=599. Country codes
    /// must be two letters (stored upper case); a rule may not set both `allow` and `deny`,
    /// nor an empty `allow`; prefixes start with `/` and are unique.
    pub fn new(rules: Vec<Rule>, status: Option<u16>) -> Result<Policy, RuleError> {
        let status = status.unwrap_or(DEFAULT_STATUS);
        if !(400..=599).contains(&status) {
            return Err(RuleError(format!(
                "geo status {status}: expected an HTTP error status (400-599)"
            )));
        }
        let mut out: Vec<Rule> = Vec::with_capacity(rules.len());
        for mut rule in rules {
            let name = format!("geo rule {:?}", rule.prefix);
            if !rule.prefix.starts_with('/') {
                return Err(RuleError(format!("{name}: prefix must start with '/'")));
            }
            if out.iter().any(|r| r.prefix == rule.prefix) {
                return Err(RuleError(format!("{name}: prefix listed twice")));
            }
            if rule.allow.is_some() && rule.deny.is_some() {
                return Err(RuleError(format!(
                    "{name}: set either `allow` or `deny`, not both"
                )));
            }
            if rule.allow.as_ref().is_some_and(Vec::is_empty) {
                return Err(RuleError(format!(
                    "{name}: `allow` is empty, which would block every country"
                )));
            }
            for (field, list) in [("allow", &mut rule.allow), ("deny", &mut rule.deny)] {
                if let Some(list) = list {
                    for code in list.iter_mut() {
                        *code = CountryCode::parse(code)
                            .ok_or_else(|| {
                                RuleError(format!(
                                    "{name}: {field}: {code:?} is not a two-letter ISO 3166-1 \
                                     country code"
                                ))
                            })?
                            .to_string();
                    }
                }
            }
            out.push(rule);
        }
        // Longest prefix first; stable, so equal lengths keep the configured order.
        out.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Policy { rules: out, status })
    }

    /// The rules, longest prefix first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The HTTP status for a blocked request.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The rule deciding `path`, if any.
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(path))
    }

    /// May a client in `country` (`None`: unknown) fetch `path` (normalised, no query)?
    ///
    /// The path's rule is applied first: `deny` listing the country -> `country_denied`;
    /// `allow` not listing it -> `country_not_allowed`; unknown country with
    /// `unknown = deny` -> `country_unknown`. Then the token's `cc` claim (countries the
    /// token may be used from), when present: a country outside it, or an unknown country,
    /// -> `token_country`. A country that is not two letters counts as unknown.
    pub fn check(
        &self,
        path: &str,
        country: Option<&str>,
        token_cc: Option<&[String]>,
    ) -> Result<(), Blocked> {
        let country = country.and_then(CountryCode::parse);
        let blocked = |reason: &'static str| Blocked {
            reason,
            country: country.map(|c| c.to_string()),
        };
        let listed = |list: &[String], cc: CountryCode| {
            list.iter().any(|c| c.eq_ignore_ascii_case(cc.as_str()))
        };
        if let Some(rule) = self.rule_for(path) {
            match country {
                Some(cc) => {
                    if rule.deny.as_deref().is_some_and(|deny| listed(deny, cc)) {
                        return Err(blocked("country_denied"));
                    }
                    if rule
                        .allow
                        .as_deref()
                        .is_some_and(|allow| !listed(allow, cc))
                    {
                        return Err(blocked("country_not_allowed"));
                    }
                }
                None if rule.unknown == Action::Deny => return Err(blocked("country_unknown")),
                None => {}
            }
        }
        if let Some(cc_claim) = token_cc {
            match country {
                Some(cc) if listed(cc_claim, cc) => {}
                _ => return Err(blocked("token_country")),
            }
        }
        Ok(())
    }
}
