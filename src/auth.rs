//! `[auth]`: JSON Web Tokens signed with HS256, checked on `connection_init` (WebSocket) and on
//! HTTP requests. A token's `sub` claim is the auth scope of the operations it runs: clients
//! with different subjects never share an execution.
//!
//! WebSocket clients send the token in their `connection_init` payload as
//! `{"authorization": "Bearer <jwt>"}` (or `{"token": "<jwt>"}`); HTTP clients send
//! `Authorization: Bearer <jwt>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

/// The `[auth]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HS256 shared secret.
    pub hs256_secret: Option<String>,
    /// The name of an environment variable holding the HS256 secret (keeps it out of files).
    pub hs256_secret_env: Option<String>,
    /// Refuse clients without a token (`false`: anonymous clients are served, tokens that are
    /// present must still be valid).
    #[serde(default = "required_default")]
    pub required: bool,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default, with = "humantime_serde")]
    pub leeway: Duration,
}

fn required_default() -> bool {
    true
}

/// Why a token was refused. The text is safe to show clients.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    #[error("the token's signature does not match")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Who a request runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim; empty for anonymous clients.
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// A verifier built from `[auth]`.
pub struct Auth {
    secret: Vec<u8>,
    required: bool,
    leeway: Duration,
}

impl Auth {
    /// Checks the config; `source` names where a bad value came from.
    pub fn from_config(config: &AuthConfig) -> Result<Self, String> {
        let secret = match (&config.hs256_secret, &config.hs256_secret_env) {
            (Some(secret), None) => secret.clone(),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| format!("auth.hs256_secret_env names `{var}`, which is not set"))?
            }
            (None, None) => return Err("[auth] needs hs256_secret or hs256_secret_env".to_owned()),
            (Some(_), Some(_)) => return Err("[auth] takes hs256_secret or hs256_secret_env, not both".to_owned()),
        };
        if secret.len() < 16 {
            return Err("auth: the HS256 secret must be at least 16 bytes".to_owned());
        }
        Ok(Auth { secret: secret.into_bytes(), required: config.required, leeway: config.leeway })
    }

    /// The identity of a client presenting `token` (which may be absent).
    pub fn identify(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        match token {
            Some(token) => self.verify(token),
            None if self.required => Err(AuthError::Missing),
            None => Ok(Identity::default()),
        }
    }

    /// The token in a `connection_init` payload.
    pub fn token_in_payload(payload: Option<&Map<String, Value>>) -> Option<&str> {
        let payload = payload?;
        let value = ["authorization", "Authorization", "token"].iter().find_map(|k| payload.get(*k)?.as_str())?;
        Some(bearer(value))
    }

    /// The token in an `Authorization` header value.
    pub fn token_in_header(value: Option<&str>) -> Option<&str> {
        value.map(bearer)
    }

    fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Value = decode_json(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(AuthError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Malformed)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|_| AuthError::Signature)?;
        mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
        mac.verify_slice(&signature).map_err(|_| AuthError::Signature)?;
        let Value::Object(claims) = decode_json(payload)? else {
            return Err(AuthError::Malformed);
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = self.leeway.as_secs();
        if claims.get("exp").and_then(Value::as_u64).is_some_and(|exp| exp + leeway <= now) {
            return Err(AuthError::Expired);
        }
        if claims.get("nbf").and_then(Value::as_u64).is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthError::NotYetValid);
        }
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
        Ok(Identity { subject, claims })
    }
}

fn bearer(value: &str) -> &str {
    let value = value.trim();
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim()
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json(part: &str) -> Result<Value, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Signs claims with HS256: for tests and tools that need a token.
pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "a-secret-of-enough-bytes";

    fn auth(required: bool) -> Auth {
        let config =
            AuthConfig { hs256_secret: Some(SECRET.into()), hs256_secret_env: None, required, leeway: Duration::ZERO };
        Auth::from_config(&config).unwrap()
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn valid_tokens_identify_their_subject() {
        let token = sign_hs256(SECRET.as_bytes(), &json!({"sub": "ada", "exp": now() + 60}));
        assert_eq!(auth(true).identify(Some(&token)).unwrap().subject, "ada");
        let payload = json!({"authorization": format!("Bearer {token}")});
        assert_eq!(Auth::token_in_payload(payload.as_object()), Some(token.as_str()));
    }

    #[test]
    fn bad_tokens_are_refused_with_the_reason() {
        let auth = auth(true);
        assert_eq!(auth.identify(None), Err(AuthError::Missing));
        assert_eq!(auth.identify(Some("x.y")), Err(AuthError::Malformed));
        let forged = sign_hs256(b"another-secret-entirely", &json!({"sub": "ada"}));
        assert_eq!(auth.identify(Some(&forged)), Err(AuthError::Signature));
        let expired = sign_hs256(SECRET.as_bytes(), &json!({"sub": "ada", "exp": now() - 10}));
        assert_eq!(auth.identify(Some(&expired)), Err(AuthError::Expired));
        let early = sign_hs256(SECRET.as_bytes(), &json!({"nbf": now() + 600}));
        assert_eq!(auth.identify(Some(&early)), Err(AuthError::NotYetValid));
        let none_alg = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(auth.identify(Some(&none_alg)), Err(AuthError::Algorithm));
    }

    #[test]
    fn optional_auth_serves_anonymous_clients() {
        assert_eq!(super::tests::auth(false).identify(None), Ok(Identity::default()));
    }
}
