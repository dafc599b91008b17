//! API keys (server-side callers) and HS256 tokens (clients), both checked with `ring`.
//!
//! API keys are kept only as SHA-256 digests and compared in constant time, so neither a memory
//! dump nor response timing reveals them. Tokens are compact JWTs signed with the first signing
//! secret and verified against all of them, so secrets rotate without cutting off live clients.
//! Only `alg: HS256` is accepted: `none` and every other algorithm are refused before any
//! signature work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

use crate::names;

/// Why a token was refused; all map to 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing token (pass ?token=… or Authorization: Bearer <token>)")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token is longer than the server accepts")]
    TooLong,
    #[error("token algorithm must be HS256")]
    UnsupportedAlgorithm,
    #[error("token signature is not valid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token claims are not valid")]
    InvalidClaims,
}

/// The claims this server writes and reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

/// Digests of the configured API keys.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Self {
        ApiKeys {
            digests: keys.iter().map(|k| sha256(k.as_ref().as_bytes())).collect(),
        }
    }

    /// True if `presented` is one of the keys. Every stored digest is compared, in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let d = sha256(presented.as_bytes());
        let mut ok = 0u8;
        for stored in &self.digests {
            let mut diff = 0u8;
            for (a, b) in stored.iter().zip(d.iter()) {
                diff |= a ^ b;
            }
            ok |= (diff == 0) as u8;
        }
        std::hint::black_box(ok) == 1
    }

    /// Accepts `Authorization: Bearer <key>` header values.
    pub fn verify_header(&self, authorization: Option<&str>) -> bool {
        match authorization.and_then(bearer) {
            Some(k) => self.verify(k),
            None => false,
        }
    }
}

/// The value after `Bearer ` (scheme case-insensitive), if any.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
    out
}

/// Signs with the first secret, verifies with any.
pub struct TokenSigner {
    keys: Vec<hmac::Key>,
    max_token_bytes: usize,
    max_channels: usize,
}

const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"HS256","typ":"JWT"}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
}

impl TokenSigner {
    pub fn new<S: AsRef<[u8]>>(secrets: &[S], max_token_bytes: usize, max_channels: usize) -> Self {
        assert!(!secrets.is_empty(), "at least one signing secret");
        TokenSigner {
            keys: secrets
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_ref()))
                .collect(),
            max_token_bytes,
            max_channels,
        }
    }

    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// A compact JWT for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 48);
        token.push_str(HEADER_B64);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let sig = hmac::sign(&self.keys[0], token.as_bytes());
        token.push('.');
        B64.encode_string(sig.as_ref(), &mut token);
        token
    }

    /// Checks shape, algorithm, signature, expiry (`exp > now_secs`) and the claims' names.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<Claims, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = B64.decode(h).map_err(|_| TokenError::Malformed)?;
        let header: Header = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        if !self
            .keys
            .iter()
            .any(|k| hmac::verify(k, signed, &sig).is_ok())
        {
            return Err(TokenError::BadSignature);
        }
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::InvalidClaims)?;
        if claims.exp <= now_secs {
            return Err(TokenError::Expired);
        }
        if claims.channels.is_empty()
            || claims.channels.len() > self.max_channels
            || claims
                .channels
                .iter()
                .any(|c| names::check_channel(c).is_err())
        {
            return Err(TokenError::InvalidClaims);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> TokenSigner {
        TokenSigner::new(&[secret], 4096, 64)
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            channels: vec!["orders".into()],
            sub: Some("u1".into()),
            iat: 100,
            exp,
        }
    }

    #[test]
    fn round_trip_and_rotation() {
        let old = signer("old-secret-old-secret-old-secret-1");
        let t = old.sign(&claims(200));
        assert_eq!(old.verify(&t, 150), Ok(claims(200)));
        let rotated = TokenSigner::new(
            &[
                "new-secret-new-secret-new-secret-2",
                "old-secret-old-secret-old-secret-1",
            ],
            4096,
            64,
        );
        assert_eq!(rotated.verify(&t, 150), Ok(claims(200)));
        let t2 = rotated.sign(&claims(200));
        assert_eq!(old.verify(&t2, 150), Err(TokenError::BadSignature));
    }

    #[test]
    fn refuses_expired_malformed_and_other_algorithms() {
        let s = signer("secret-secret-secret-secret-secret");
        let t = s.sign(&claims(200));
        assert_eq!(s.verify(&t, 200), Err(TokenError::Expired));
        assert_eq!(s.verify("not.a.jwt", 1), Err(TokenError::Malformed));
        assert_eq!(s.verify("abc", 1), Err(TokenError::Malformed));
        let payload = t.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            payload
        );
        assert_eq!(s.verify(&none, 1), Err(TokenError::UnsupportedAlgorithm));
        let mut tampered = t.clone();
        tampered.replace_range(40..41, if &t[40..41] == "A" { "B" } else { "A" });
        assert!(s.verify(&tampered, 1).is_err());
    }

    #[test]
    fn api_keys_match_exactly() {
        let k = ApiKeys::new(&["cb_live_one", "cb_live_two"]);
        assert!(k.verify("cb_live_two"));
        assert!(!k.verify("cb_live_tw"));
        assert!(k.verify_header(Some("Bearer cb_live_one")));
        assert!(k.verify_header(Some("bearer cb_live_one")));
        assert!(!k.verify_header(Some("Basic cb_live_one")));
        assert!(!k.verify_header(None));
    }
}
