//! Sections that need a cargo feature: a binary built without it (`--no-default-features`, the
//! proxy-only build) refuses a config that turns the section on, naming the key, instead of
//! ignoring it. The check is here once; each section's module calls [`require`].

use super::error::ConfigError;

/// `Ok` when the setting at `key` is off (`used = false`) or the binary has `feature`
/// (`built`: the caller's `cfg!(feature = "...")`); otherwise an error naming the key, the
/// feature and the ways out.
pub fn require(key: &str, feature: &str, used: bool, built: bool) -> Result<(), ConfigError> {
    if !used || built {
        return Ok(());
    }
    Err(ConfigError::new(
        key,
        format!(
            "this edge binary was built without the \"{feature}\" cargo feature; \
             remove the setting, or build with `--features {feature}`"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_in_use_without_its_feature_is_refused_naming_key_and_feature() {
        let e = require("control", "control", true, false).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("control: "), "{text}");
        assert!(
            text.contains("built without the \"control\" cargo feature"),
            "{text}"
        );
        assert!(text.contains("--features control"), "{text}");
    }

    #[test]
    fn a_section_off_or_built_in_passes() {
        assert!(require("demo", "demo", false, false).is_ok());
        assert!(require("demo", "demo", true, true).is_ok());
        assert!(require("tls.dev_names", "dev-certs", false, true).is_ok());
    }
}
