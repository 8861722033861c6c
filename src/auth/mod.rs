//! `[auth]` (DESIGN §11): JSON Web Tokens, verified with `jsonwebtoken`, on `connection_init`
//! (WebSocket) and on HTTP requests.
//!
//! Keys come from any combination of an HMAC secret (HS256, HS384, HS512), a PEM public key
//! (RS256/384/512 or ES256/384) and a JWKS file whose keys are picked by the token's `kid` and
//! which is read again when it changes. `exp` is required unless `require_exp = false`;
//! `issuer` and `audience` are checked when set. A session ends when its token expires.
//!
//! A token's claims are what templates and rules read; who a client is also scopes the
//! executions it shares: clients of one subject share, anonymous clients share only with
//! anonymous clients, and a token without `sub` shares only with the same claims.
//!
//! WebSocket clients send the token in their `connection_init` payload as
//! `{"authorization": "Bearer <jwt>"}` (or `{"token": "<jwt>"}`); HTTP clients send
//! `Authorization: Bearer <jwt>`.
//!
//! ## Layout
//! - this file: the `[auth]` table, verification, identities.
//! - [`keys`]: the key sources, and the JWKS file watched for changes.

pub mod keys;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use keys::Keys;

/// The `[auth]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HMAC secret of HS256, HS384 and HS512 tokens.
    pub hs256_secret: Option<String>,
    /// The name of an environment variable holding the HMAC secret (keeps it out of files).
    pub hs256_secret_env: Option<String>,
    /// A PEM file with the RSA or EC public key of RS256/384/512 or ES256/384 tokens.
    pub public_key_file: Option<std::path::PathBuf>,
    /// A JWKS file (`{"keys": [...]}`): keys by `kid`, read again whenever it changes.
    pub jwks_file: Option<std::path::PathBuf>,
    /// The `iss` every token must carry, when set.
    pub issuer: Option<String>,
    /// An `aud` every token must carry, when set.
    pub audience: Option<String>,
    /// Refuse tokens without `exp`.
    #[serde(default = "yes")]
    pub require_exp: bool,
    /// Refuse clients without a token (`false`: anonymous clients are served, tokens that are
    /// present must still be valid).
    #[serde(default = "yes")]
    pub required: bool,
    /// A cookie that carries the token on SSE and multipart requests, for browser clients
    /// that cannot set `Authorization` (`EventSource`). None by default.
    pub token_cookie: Option<String>,
    /// A query parameter that carries the token on SSE and multipart requests. None by default:
    /// URLs end up in logs.
    pub token_query: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default, with = "humantime_serde")]
    pub leeway: Duration,
    /// The value of the variable `hs256_secret_env` names, read when the config is loaded.
    #[serde(skip)]
    pub secret_from_env: Option<String>,
}

fn yes() -> bool {
    true
}

/// Why a token was refused. The text is safe to show clients.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("no key verifies the token (unknown `kid`)")]
    UnknownKey,
    #[error("the token's signature does not match")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has no `{0}` claim")]
    MissingClaim(String),
    #[error("the token's issuer is not accepted")]
    Issuer,
    #[error("the token's audience is not accepted")]
    Audience,
}

/// Who a request runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim; empty for anonymous clients and tokens without one.
    pub subject: String,
    pub claims: Map<String, Value>,
    /// When the token stops being valid (its `exp`, plus the leeway).
    pub expires: Option<SystemTime>,
    /// Presented a valid token.
    pub authenticated: bool,
}

impl Identity {
    /// The auth scope of the executions this client runs: clients share an execution only
    /// within one scope. Anonymous clients are never in the scope of a token; clients with
    /// tokens share only when their tokens carry the same claims, the token's own times aside:
    /// templates and `[authz]` rules read any claim, and a client joining an execution runs
    /// none of them, so two tokens of one `sub` with another role or tenant must not meet.
    pub fn scope(&self) -> String {
        if !self.authenticated {
            return String::new();
        }
        let mut claims = self.claims.clone();
        for timing in TOKEN_TIMES {
            claims.remove(timing);
        }
        let mut scope = String::from("claims:");
        subhub_protocol::canonical::write(&Value::Object(claims), &mut scope);
        scope
    }
}

/// Claims that say when a token was issued and is valid, not who holds it: a refreshed token
/// stays in its holder's scope.
const TOKEN_TIMES: [&str; 5] = ["exp", "iat", "nbf", "jti", "auth_time"];

/// A verifier built from `[auth]`.
pub struct Auth {
    keys: Arc<Keys>,
    validation: Validation,
    required: bool,
    leeway: Duration,
}

impl Auth {
    /// Checks the config and reads its key files; the message names the key at fault.
    pub fn from_config(config: &AuthConfig) -> Result<Self, String> {
        let keys = Arc::new(Keys::load(config)?);
        // The algorithms a token may name are those of its key (picked in `verify`); this list
        // only has to be non-empty.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        // A configured issuer or audience is required, not only checked when present.
        let mut required = Vec::new();
        if config.require_exp {
            required.push("exp");
        }
        match &config.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.required_spec_claims = required.into_iter().map(str::to_owned).collect::<HashSet<_>>();
        Ok(Auth { keys, validation, required: config.required, leeway: config.leeway })
    }

    /// The keys, so the hub can watch the JWKS file.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
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
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = self.keys.for_token(header.alg, header.kid.as_deref())?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(refusal)?;
        let claims = data.claims;
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned();
        let expires = claims
            .get("exp")
            .and_then(Value::as_u64)
            .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs(exp))?.checked_add(self.leeway));
        Ok(Identity { subject, claims, expires, authenticated: true })
    }
}

fn refusal(error: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            AuthError::Algorithm
        }
        _ => AuthError::Malformed,
    }
}

fn bearer(value: &str) -> &str {
    let value = value.trim();
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim()
}

/// Signs claims with HS256: for tests and tools that need a token.
pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    let Ok(key) = jsonwebtoken::EncodingKey::from_secret(secret) else { return String::new() };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), claims, &key).unwrap_or_default()
}

/// Seconds since the Unix epoch, for tokens made by tests and tools.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a-secret-of-enough-bytes";

    fn config() -> AuthConfig {
        AuthConfig {
            hs256_secret: Some(SECRET.into()),
            hs256_secret_env: None,
            public_key_file: None,
            jwks_file: None,
            issuer: None,
            audience: None,
            require_exp: true,
            required: true,
            token_cookie: None,
            token_query: None,
            leeway: Duration::ZERO,
            secret_from_env: None,
        }
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys").join(name)
    }

    fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    #[test]
    fn hmac_tokens_of_every_size_identify_their_subject() {
        let auth = Auth::from_config(&config()).unwrap();
        let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = sign(alg, &key, None, &json!({"sub": "ada", "exp": now() + 60}));
            let identity = auth.identify(Some(&token)).unwrap();
            assert_eq!(identity.subject, "ada", "{alg:?}");
            assert!(identity.expires.is_some());
        }
        let payload = json!({"authorization": "Bearer abc"});
        assert_eq!(Auth::token_in_payload(payload.as_object()), Some("abc"));
    }

    #[test]
    fn bad_tokens_are_refused_with_the_reason() {
        let auth = Auth::from_config(&config()).unwrap();
        let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
        assert_eq!(auth.identify(None), Err(AuthError::Missing));
        assert_eq!(auth.identify(Some("x.y")), Err(AuthError::Malformed));
        let forged = sign_hs256(b"another-secret-entirely", &json!({"sub": "ada", "exp": now() + 60}));
        assert_eq!(auth.identify(Some(&forged)), Err(AuthError::Signature));
        let expired = sign(Algorithm::HS256, &key, None, &json!({"sub": "ada", "exp": now() - 10}));
        assert_eq!(auth.identify(Some(&expired)), Err(AuthError::Expired));
        let early = sign(Algorithm::HS256, &key, None, &json!({"exp": now() + 600, "nbf": now() + 600}));
        assert_eq!(auth.identify(Some(&early)), Err(AuthError::NotYetValid));
        let forever = sign(Algorithm::HS256, &key, None, &json!({"sub": "ada"}));
        assert_eq!(auth.identify(Some(&forever)), Err(AuthError::MissingClaim("exp".into())));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none_alg = format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), b64.encode("{}"));
        assert_eq!(auth.identify(Some(&none_alg)), Err(AuthError::Malformed));
        // An RS256 token has no key here.
        let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.key.pem")).unwrap()).unwrap();
        let token = sign(Algorithm::RS256, &rsa, None, &json!({"exp": now() + 60}));
        assert_eq!(auth.identify(Some(&token)), Err(AuthError::UnknownKey));
    }

    #[test]
    fn issuer_audience_and_exp_are_checked_as_configured() {
        let config = AuthConfig {
            issuer: Some("https://auth.example/".into()),
            audience: Some("subhub".into()),
            require_exp: false,
            ..config()
        };
        let auth = Auth::from_config(&config).unwrap();
        let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
        let token = |claims: Value| sign(Algorithm::HS256, &key, None, &claims);
        let good = json!({"iss": "https://auth.example/", "aud": "subhub"});
        assert!(auth.identify(Some(&token(good))).is_ok(), "no exp is fine with require_exp = false");
        let wrong_issuer = json!({"iss": "https://evil.example/", "aud": "subhub"});
        assert_eq!(auth.identify(Some(&token(wrong_issuer))), Err(AuthError::Issuer));
        let wrong_audience = json!({"iss": "https://auth.example/", "aud": ["other"]});
        assert_eq!(auth.identify(Some(&token(wrong_audience))), Err(AuthError::Audience));
        let no_issuer = json!({"aud": "subhub"});
        assert_eq!(auth.identify(Some(&token(no_issuer))), Err(AuthError::MissingClaim("iss".into())));
    }

    #[test]
    fn public_keys_from_pem_verify_rsa_and_ec_tokens() {
        for (public, private, alg) in
            [("rsa.pub.pem", "rsa.key.pem", Algorithm::RS256), ("ec.pub.pem", "ec.key.pem", Algorithm::ES256)]
        {
            let config = AuthConfig { hs256_secret: None, public_key_file: Some(fixture(public)), ..config() };
            let auth = Auth::from_config(&config).unwrap();
            let pem = std::fs::read(fixture(private)).unwrap();
            let key = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
                _ => EncodingKey::from_ec_pem(&pem).unwrap(),
            };
            let token = sign(alg, &key, None, &json!({"sub": "ada", "exp": now() + 60}));
            assert_eq!(auth.identify(Some(&token)).unwrap().subject, "ada", "{alg:?}");
            // The public key is no HMAC secret: the algorithm confusion attack fails.
            let confused = sign_hs256(&std::fs::read(fixture(public)).unwrap(), &json!({"exp": now() + 60}));
            assert!(auth.identify(Some(&confused)).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn scopes_keep_anonymous_clients_apart_from_tokens_and_tokens_by_their_claims() {
        let token = |claims: Value| Identity {
            subject: claims["sub"].as_str().unwrap_or_default().to_owned(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            authenticated: true,
            ..Identity::default()
        };
        let anonymous = Identity::default();
        let no_subject = token(json!({}));
        let ada = token(json!({"sub": "ada", "role": "user", "exp": 10, "iat": 1}));
        assert_ne!(anonymous.scope(), no_subject.scope());
        assert_ne!(anonymous.scope(), ada.scope());
        assert_ne!(no_subject.scope(), ada.scope());
        // The same holder, refreshed, in any claim order: one scope.
        assert_eq!(ada.scope(), token(json!({"iat": 5, "role": "user", "exp": 99, "sub": "ada"})).scope());
        // The same `sub` with another role: another scope.
        assert_ne!(ada.scope(), token(json!({"sub": "ada", "role": "admin"})).scope());
    }

    #[test]
    fn bad_key_config_names_the_key() {
        let none = AuthConfig { hs256_secret: None, ..config() };
        assert!(Auth::from_config(&none).err().unwrap().contains("hs256_secret"));
        let missing = AuthConfig { jwks_file: Some("/nonexistent/jwks.json".into()), ..config() };
        assert!(Auth::from_config(&missing).err().unwrap().contains("auth.jwks_file"));
        let not_a_key = AuthConfig { public_key_file: Some(fixture("jwks-ec.json")), ..config() };
        assert!(Auth::from_config(&not_a_key).err().unwrap().contains("auth.public_key_file"));
    }
}
