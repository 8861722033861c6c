//! The keys tokens are verified with: an HMAC secret, a PEM public key, and a JWKS file that is
//! read again whenever it changes (a key rotated in by whoever issues the tokens is accepted
//! within a second, without a restart). A key verifies only the algorithms of its own kind, so
//! a public key can never be used as an HMAC secret.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio_util::sync::CancellationToken;

use super::{AuthConfig, AuthError};

/// How often the JWKS file is looked at for a change.
const JWKS_POLL: Duration = Duration::from_secs(1);
/// An HMAC secret shorter than this is refused at start.
const MIN_SECRET_BYTES: usize = 16;

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];

/// A key and the algorithms it verifies.
#[derive(Clone)]
struct Key {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

pub struct Keys {
    secret: Option<Key>,
    public: Option<Key>,
    jwks: Option<Jwks>,
}

struct Jwks {
    path: PathBuf,
    keys: RwLock<Arc<JwksKeys>>,
    /// Modification time and length of the file last read.
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

#[derive(Default)]
struct JwksKeys {
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid`: tried for tokens that name none.
    unnamed: Vec<Key>,
}

impl Keys {
    /// Reads every configured key; the message names the key at fault.
    pub fn load(config: &AuthConfig) -> Result<Self, String> {
        let secret = match (&config.hs256_secret, &config.hs256_secret_env, &config.secret_from_env) {
            (Some(_), Some(_), _) => {
                return Err("[auth] takes hs256_secret or hs256_secret_env, not both".to_owned());
            }
            (Some(secret), None, _) | (None, Some(_), Some(secret)) => Some(secret.clone()),
            (None, Some(var), None) => {
                return Err(format!("auth.hs256_secret_env names `{var}`, which is not set"));
            }
            (None, None, _) => None,
        };
        if secret.as_ref().is_some_and(|secret| secret.len() < MIN_SECRET_BYTES) {
            return Err(format!("auth: the HMAC secret must be at least {MIN_SECRET_BYTES} bytes"));
        }
        let secret = match secret {
            Some(secret) => {
                let key = DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|error| format!("auth: the HMAC secret cannot be used: {error}"))?;
                Some(Key { key, algorithms: HMAC.to_vec() })
            }
            None => None,
        };
        let public = config.public_key_file.as_deref().map(public_key).transpose()?;
        let jwks = match &config.jwks_file {
            Some(path) => {
                let (keys, stamp) = read_jwks(path).map_err(|error| format!("auth.jwks_file: {error}"))?;
                Some(Jwks { path: path.clone(), keys: RwLock::new(Arc::new(keys)), stamp: Mutex::new(stamp) })
            }
            None => None,
        };
        if secret.is_none() && public.is_none() && jwks.is_none() {
            return Err("[auth] needs a key: hs256_secret, hs256_secret_env, public_key_file or jwks_file".to_owned());
        }
        Ok(Keys { secret, public, jwks })
    }

    /// The key for a token of algorithm `alg` naming `kid`.
    pub fn for_token(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let fits = |key: &Key| key.algorithms.contains(&alg);
        if HMAC.contains(&alg) {
            return self
                .secret
                .as_ref()
                .filter(|key| fits(key))
                .map(|key| key.key.clone())
                .ok_or(AuthError::UnknownKey);
        }
        if let Some(jwks) = &self.jwks {
            let keys = jwks.keys.read().unwrap_or_else(PoisonError::into_inner).clone();
            let found = match kid {
                Some(kid) => keys.by_kid.get(kid).filter(|key| fits(key)),
                None => keys.unnamed.iter().find(|key| fits(key)),
            };
            if let Some(key) = found {
                return Ok(key.key.clone());
            }
        }
        self.public.as_ref().filter(|key| fits(key)).map(|key| key.key.clone()).ok_or(AuthError::UnknownKey)
    }

    /// Reads the JWKS file again whenever it changes, until `shutdown`. A file that does not
    /// parse is logged and the keys read before stay in use.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(jwks) = &self.jwks else { return };
        let mut tick = tokio::time::interval(JWKS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let path = jwks.path.clone();
            let stamp = tokio::task::spawn_blocking(move || std::fs::metadata(path).ok().map(|meta| stamp_of(&meta)))
                .await
                .ok()
                .flatten();
            if stamp.is_none() || stamp == *jwks.stamp.lock().unwrap_or_else(PoisonError::into_inner) {
                continue;
            }
            let path = jwks.path.clone();
            match tokio::task::spawn_blocking(move || read_jwks(&path)).await {
                Ok(Ok((keys, stamp))) => {
                    tracing::info!(path = %jwks.path.display(), keys = keys.by_kid.len() + keys.unnamed.len(), "JWKS file read again");
                    *jwks.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                    *jwks.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
                }
                Ok(Err(error)) => {
                    tracing::warn!(path = %jwks.path.display(), %error, "JWKS file changed but cannot be used; keeping the keys read before");
                    *jwks.stamp.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
                }
                Err(_) => {}
            }
        }
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> (SystemTime, u64) {
    (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len())
}

/// An RSA, EC or Ed25519 public key in PEM.
fn public_key(path: &Path) -> Result<Key, String> {
    let bad = |reason: String| format!("auth.public_key_file: {}: {reason}", path.display());
    let pem = std::fs::read(path).map_err(|error| bad(error.to_string()))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok(Key { key, algorithms: RSA.to_vec() });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok(Key { key, algorithms: vec![Algorithm::ES256, Algorithm::ES384] });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok(Key { key, algorithms: vec![Algorithm::EdDSA] });
    }
    Err(bad("not an RSA, EC or Ed25519 public key in PEM".to_owned()))
}

/// Reads a JWKS file: every key it holds that can verify signatures.
fn read_jwks(path: &Path) -> Result<(JwksKeys, Option<(SystemTime, u64)>), String> {
    let file = std::fs::File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let stamp = file.metadata().ok().map(|meta| stamp_of(&meta));
    let set: JwkSet = serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let mut keys = JwksKeys::default();
    for jwk in &set.keys {
        let algorithms = match &jwk.common.key_algorithm {
            Some(alg) => Algorithm::from_str(&alg.to_string()).ok().into_iter().collect(),
            None => match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => RSA.to_vec(),
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => vec![Algorithm::ES256],
                    EllipticCurve::P384 => vec![Algorithm::ES384],
                    _ => Vec::new(),
                },
                AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                // Secrets do not belong in a key set the hub reads.
                _ => Vec::new(),
            },
        };
        // A secret in the set is never a verifying key here, whatever its `alg` says.
        let algorithms: Vec<Algorithm> = algorithms.into_iter().filter(|alg| !HMAC.contains(alg)).collect();
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        if algorithms.is_empty() {
            continue;
        }
        let key = Key { key, algorithms };
        match &jwk.common.key_id {
            Some(kid) => {
                keys.by_kid.insert(kid.clone(), key);
            }
            None => keys.unnamed.push(key),
        }
    }
    if keys.by_kid.is_empty() && keys.unnamed.is_empty() {
        return Err(format!("{}: holds no public key that can verify tokens", path.display()));
    }
    Ok((keys, stamp))
}
