//! Known-answer vectors for the `v1` token format, so other implementations (the control plane,
//! players' test tools, other languages) can be checked against this one.
//!
//! Key: the 32 bytes `0x01, 0x02, …, 0x20`, key id `k1`.
//!
//! Vector 1 (all claims):
//!
//! ```text
//! payload JSON: {"exp":1700003600,"nbf":1700000000,"acl":"/v/title/","sid":"s-1","ip":"203.0.113.0/24","cc":["GB","US"],"mh":720}
//! MAC input:    "edge-token/v1.k1." + b64url(payload)
//! token:        v1.k1.eyJleHAiOjE3MDAwMDM2MDAsIm5iZiI6MTcwMDAwMDAwMCwiYWNsIjoiL3YvdGl0bGUvIiwic2lkIjoicy0xIiwiaXAiOiIyMDMuMC4xMTMuMC8yNCIsImNjIjpbIkdCIiwiVVMiXSwibWgiOjcyMH0.c3_VoghW0JkTlTJPmY7VBWFFtqauoY6XGycIqrb8Gqo
//! ```
//!
//! Vector 2 (required claims only):
//!
//! ```text
//! payload JSON: {"exp":1700003600,"acl":"/v/title/master.m3u8"}
//! token:        v1.k1.eyJleHAiOjE3MDAwMDM2MDAsImFjbCI6Ii92L3RpdGxlL21hc3Rlci5tM3U4In0.JndI-HmATrF4tdLqD6M9qTI1vmcwKJzrb_fN_o7V9fA
//! ```
//!
//! The expected strings were computed outside this crate (Python `json`/`hmac`/`base64`).

/// The known-answer key: bytes `0x01..=0x20`.
pub const KAT_KEY: [u8; 32] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
];

/// The known-answer key id.
pub const KAT_KID: &str = "k1";

/// Vector 1 payload (compact JSON, field order as serialised).
pub const KAT1_PAYLOAD: &str = r#"{"exp":1700003600,"nbf":1700000000,"acl":"/v/title/","sid":"s-1","ip":"203.0.113.0/24","cc":["GB","US"],"mh":720}"#;

/// Vector 1 token.
pub const KAT1_TOKEN: &str = "v1.k1.eyJleHAiOjE3MDAwMDM2MDAsIm5iZiI6MTcwMDAwMDAwMCwiYWNsIjoiL3YvdGl0bGUvIiwic2lkIjoicy0xIiwiaXAiOiIyMDMuMC4xMTMuMC8yNCIsImNjIjpbIkdCIiwiVVMiXSwibWgiOjcyMH0.c3_VoghW0JkTlTJPmY7VBWFFtqauoY6XGycIqrb8Gqo";

/// Vector 2 payload.
pub const KAT2_PAYLOAD: &str = r#"{"exp":1700003600,"acl":"/v/title/master.m3u8"}"#;

/// Vector 2 token.
pub const KAT2_TOKEN: &str = "v1.k1.eyJleHAiOjE3MDAwMDM2MDAsImFjbCI6Ii92L3RpdGxlL21hc3Rlci5tM3U4In0.JndI-HmATrF4tdLqD6M9qTI1vmcwKJzrb_fN_o7V9fA";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{sign, verify, Claims, Keyring, VerifyPolicy};
    use std::net::{IpAddr, Ipv4Addr};

    fn keyring() -> Keyring {
        Keyring::single(KAT_KID, &KAT_KEY).expect("keyring")
    }

    fn kat1_claims() -> Claims {
        Claims {
            exp: 1_700_003_600,
            nbf: Some(1_700_000_000),
            acl: "/v/title/".into(),
            sid: Some("s-1".into()),
            ip: Some("203.0.113.0/24".into()),
            cc: Some(vec!["GB".into(), "US".into()]),
            mh: Some(720),
        }
    }

    #[test]
    fn kat_key_is_0x01_to_0x20() {
        assert!(KAT_KEY
            .iter()
            .enumerate()
            .all(|(i, &b)| b as usize == i + 1));
    }

    #[test]
    fn kat1_payload_serialisation() {
        assert_eq!(serde_json::to_string(&kat1_claims()).unwrap(), KAT1_PAYLOAD);
    }

    #[test]
    fn kat1_sign_matches() {
        assert_eq!(sign(&keyring(), &kat1_claims()).unwrap(), KAT1_TOKEN);
    }

    #[test]
    fn kat2_sign_matches() {
        let c = Claims::new("/v/title/master.m3u8", 1_700_003_600);
        assert_eq!(serde_json::to_string(&c).unwrap(), KAT2_PAYLOAD);
        assert_eq!(sign(&keyring(), &c).unwrap(), KAT2_TOKEN);
    }

    #[test]
    fn kat_vectors_verify() {
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        let now = 1_700_000_100;
        let c = verify(
            &keyring(),
            KAT1_TOKEN,
            "/v/title/720p/seg1.ts",
            ip,
            now,
            &VerifyPolicy::default(),
        )
        .unwrap();
        assert_eq!(c, kat1_claims());
        let c = verify(
            &keyring(),
            KAT2_TOKEN,
            "/v/title/master.m3u8",
            ip,
            now,
            &VerifyPolicy::default(),
        )
        .unwrap();
        assert_eq!(c.acl, "/v/title/master.m3u8");
    }
}
