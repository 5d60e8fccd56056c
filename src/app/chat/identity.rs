//! Who a connection is: JSON Web Tokens (RFC 7519) signed by the application behind the chat,
//! checked at the upgrade (`?token=` or `Authorization: Bearer`) and again when a connection
//! refreshes its token or joins a room that asks for a room token.
//!
//! One key per server: an HS256 secret (`--jwt-secret`) or a public key (`--jwt-public-key`,
//! PEM: RSA for RS256, P-256 for ES256). A token is accepted only if
//!
//! - it is at most [`Tokens::max_bytes`] long (checked before anything is decoded);
//! - its header names exactly the key's algorithm: `none`, another family (an HS256 token
//!   against a public key, the classic algorithm confusion) or another size are refused before
//!   the signature is looked at;
//! - its signature verifies (`jsonwebtoken`, RustCrypto: no C, the same on every target);
//! - it has `sub` (the user id: 1 to 64 letters, digits, `-`, `_`, `.`, `@`) and `exp`
//!   (seconds since the Unix epoch), `exp` is in the future and `nbf`, if any, in the past
//!   (both with [`Tokens::leeway`] for clocks that differ), and `name` and `rooms`, if any,
//!   are well formed.
//!
//! Claims used: `sub`, `exp`, `nbf`, `name` (display name), `rooms` (patterns of the rooms the
//! user may join where a namespace asks for them: `"team-7"` exactly, or `"team-7:*"` for every
//! room that starts with `team-7:`). A room token (for namespaces whose rule is `signed`) has
//! `sub`, `exp` and `room`: this user may join this room. The two kinds are told apart by
//! `room`: a token with it is refused as a connection token, one without it as a room token,
//! so a token handed out for one room never opens a connection.
//!
//! With [`Tokens::require_issuer`] or [`Tokens::require_audience`] set (`--jwt-issuer`, `--jwt-audience`),
//! every token must carry that `iss` / an `aud` naming it: a key shared by several services
//! (or environments) then does not let one service's tokens into another.
//!
//! Time is passed in (seconds since the Unix epoch): the checks are deterministic and tested
//! without a clock.

use std::borrow::Cow;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Default longest token, in bytes: a token with a few dozen room patterns fits; anything
/// longer is refused before it is decoded.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;
/// Default clock difference allowed for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY: u64 = 5;
/// Longest user id (`sub`), in bytes.
pub const MAX_USER: usize = 64;
/// Most room patterns in a token's `rooms`.
pub const MAX_PATTERNS: usize = 64;
/// Shortest HS256 secret accepted, in bytes: HS256 is as strong as its key, and RFC 7518
/// §3.2 asks for a key of at least the hash's size (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a token was refused (the reason of the HTTP 401 at the upgrade, or of an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`Tokens::max_bytes`].
    TooLong,
    /// Not three base64url parts with a JSON header and claims.
    Malformed,
    /// The header names another algorithm than the key's (`none` included).
    Algorithm,
    /// The signature does not verify with the key.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
    /// A claim is missing or badly formed (`sub`, `exp`, `name`, `rooms`, `room`).
    Claims,
    /// A room token for another user or another room.
    WrongRoom,
    /// A room token where a connection token is needed (it has `room`), or the other way
    /// round.
    Kind,
    /// `iss` or `aud` missing, or not the ones this server expects.
    Issuer,
}

impl TokenError {
    /// A short reason, for the HTTP status line and error messages.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::TooLong => "token too long",
            TokenError::Malformed => "malformed token",
            TokenError::Algorithm => "token algorithm not accepted",
            TokenError::Signature => "bad token signature",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::Claims => "bad token claims",
            TokenError::WrongRoom => "token is for another user or room",
            TokenError::Kind => "a room token is not a connection token",
            TokenError::Issuer => "token issuer or audience not accepted",
        }
    }
}

/// Who a connection's token says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`).
    pub user: Box<str>,
    /// The display name (`name`), if the token gives one.
    pub name: Option<Box<str>>,
    /// The patterns of the rooms the user may join (`rooms`), if the token gives them.
    pub rooms: Option<Box<[Box<str>]>>,
    /// When the token expires (`exp`, seconds since the Unix epoch).
    pub exp: u64,
}

impl Identity {
    /// Whether the token's `rooms` let the user into `room` (no `rooms`: none).
    pub fn rooms_allow(&self, room: &str) -> bool {
        self.rooms
            .iter()
            .flat_map(|patterns| patterns.iter())
            .any(|p| pattern_matches(p, room))
    }
}

/// `"x"` matches `x` only; `"x*"` every room starting with `x`.
pub fn pattern_matches(pattern: &str, room: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => pattern == room,
    }
}

/// Whether `user` is a well-formed user id.
pub fn user_ok(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_USER
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

#[derive(Debug, Clone, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    room: Option<String>,
}

/// Default number of verified tokens remembered (see [`Tokens::cache_entries`]).
pub const DEFAULT_CACHE_ENTRIES: usize = 16_384;

/// Tokens whose signature verified, by the SHA-256 of the token: a client reconnecting with
/// the token it had (a reload, a network change, a server restart: a reconnect storm) costs a
/// hash instead of a signature check (ES256 and RS256 cost hundreds of microseconds). Only
/// tokens that verified are kept, so only the application's own tokens can fill it; full, it
/// is emptied and fills again.
#[derive(Debug, Default)]
struct Verified {
    tokens: std::sync::Mutex<std::collections::HashMap<[u8; 32], Claims>>,
}

/// The key tokens are checked with, and the bounds of the check.
#[derive(Clone)]
pub struct Tokens {
    key: DecodingKey,
    alg: Algorithm,
    validation: Validation,
    verified: std::sync::Arc<Verified>,
    /// Verified tokens remembered (0: none). Default [`DEFAULT_CACHE_ENTRIES`]: about 200
    /// bytes each, a few MB at most.
    pub cache_entries: usize,
    /// Longest token accepted, in bytes. Default [`DEFAULT_MAX_TOKEN_BYTES`].
    pub max_bytes: usize,
    /// Clock difference allowed for `exp` and `nbf`, in seconds. Default [`DEFAULT_LEEWAY`].
    pub leeway: u64,
    /// Longest display name accepted in `name`, in bytes (the chat's `max_name`).
    pub max_name: usize,
}

impl Verified {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], Claims>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("alg", &self.alg)
            .field("max_bytes", &self.max_bytes)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    fn with(key: DecodingKey, alg: Algorithm) -> Self {
        let mut validation = Validation::new(alg);
        // Time and the required claims are checked here, with the time passed in.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Tokens {
            key,
            alg,
            validation,
            verified: std::sync::Arc::default(),
            cache_entries: DEFAULT_CACHE_ENTRIES,
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            leeway: DEFAULT_LEEWAY,
            max_name: 32,
        }
    }

    /// Tokens signed with an HS256 `secret` (at least [`MIN_SECRET_BYTES`] long).
    ///
    /// # Errors
    /// A secret too short to be safe.
    pub fn hs256(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "an HS256 secret must be at least {MIN_SECRET_BYTES} bytes (256 bits), not {}",
                secret.len()
            ));
        }
        Ok(Self::with(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// Tokens signed with the private half of a PEM public key: RSA (RS256) or P-256 (ES256).
    ///
    /// # Errors
    /// Not a PEM RSA or EC public key.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, String> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with(key, Algorithm::RS256));
        }
        match DecodingKey::from_ec_pem(pem) {
            Ok(key) => Ok(Self::with(key, Algorithm::ES256)),
            Err(e) => Err(format!(
                "not a PEM public key for RS256 (RSA) or ES256 (P-256): {e}"
            )),
        }
    }

    /// Every token must carry `iss` = `issuer` (`--jwt-issuer`).
    pub fn require_issuer(&mut self, issuer: &str) {
        self.validation.set_issuer(&[issuer]);
        self.validation
            .required_spec_claims
            .insert("iss".to_owned());
        self.verified.lock().clear(); // remembered under the old rules
    }

    /// Every token must carry an `aud` naming `audience` (a string, or one of an array:
    /// `--jwt-audience`).
    pub fn require_audience(&mut self, audience: &str) {
        self.validation.set_audience(&[audience]);
        self.validation.validate_aud = true;
        self.validation
            .required_spec_claims
            .insert("aud".to_owned());
        self.verified.lock().clear();
    }

    /// The algorithm tokens must be signed with (`"HS256"`, `"RS256"` or `"ES256"`).
    pub fn algorithm(&self) -> &'static str {
        match self.alg {
            Algorithm::HS256 => "HS256",
            Algorithm::RS256 => "RS256",
            _ => "ES256",
        }
    }

    /// The claims of `token`, checked as of `now` (seconds since the Unix epoch).
    fn claims(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > self.max_bytes {
            return Err(TokenError::TooLong);
        }
        let header = token.split('.').next().unwrap_or_default();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: Header<'_> =
            serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        if header.alg != self.algorithm() {
            return Err(TokenError::Algorithm);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = (self.cache_entries > 0)
            .then(|| self.verified.lock().get(&digest).cloned())
            .flatten();
        let claims = match known {
            Some(claims) => claims,
            None => self.verify(token, digest)?,
        };
        if claims.exp.saturating_add(self.leeway) <= now {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Verifies `token`'s signature and reads its claims; remembers it if it verified.
    fn verify(&self, token: &str, digest: [u8; 32]) -> Result<Claims, TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::Signature,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        TokenError::Algorithm
                    }
                    ErrorKind::Json(_) => TokenError::Claims,
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::Issuer,
                    ErrorKind::MissingRequiredClaim(c) if c == "iss" || c == "aud" => {
                        TokenError::Issuer
                    }
                    ErrorKind::MissingRequiredClaim(_) => TokenError::Claims,
                    _ => TokenError::Malformed,
                }
            })?
            .claims;
        if !user_ok(&claims.sub) {
            return Err(TokenError::Claims);
        }
        if self.cache_entries > 0 {
            let mut verified = self.verified.lock();
            if verified.len() >= self.cache_entries {
                verified.clear();
            }
            verified.insert(digest, claims.clone());
        }
        Ok(claims)
    }

    /// Checks a connection token as of `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn check(&self, token: &str, now: u64) -> Result<Identity, TokenError> {
        let claims = self.claims(token, now)?;
        if claims.room.is_some() {
            return Err(TokenError::Kind);
        }
        let name = match claims.name {
            None => None,
            Some(name)
                if name.len() <= self.max_name
                    && !name.trim().is_empty()
                    && !name.chars().any(char::is_control) =>
            {
                Some(name.into_boxed_str())
            }
            Some(_) => return Err(TokenError::Claims),
        };
        let rooms = match claims.rooms {
            None => None,
            Some(rooms) if rooms.len() <= MAX_PATTERNS && rooms.iter().all(|p| p.len() <= 128) => {
                Some(rooms.into_iter().map(String::into_boxed_str).collect())
            }
            Some(_) => return Err(TokenError::Claims),
        };
        Ok(Identity {
            user: claims.sub.into_boxed_str(),
            name,
            rooms,
            exp: claims.exp,
        })
    }

    /// Checks a room token: `user` may join `room` (its `sub` and `room` claims), as of `now`.
    /// Returns its expiry.
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn check_room(
        &self,
        token: &str,
        user: &str,
        room: &str,
        now: u64,
    ) -> Result<u64, TokenError> {
        let claims = self.claims(token, now)?;
        if claims.room.is_none() {
            return Err(TokenError::Kind);
        }
        if claims.sub != user || claims.room.as_deref() != Some(room) {
            return Err(TokenError::WrongRoom);
        }
        Ok(claims.exp)
    }
}

/// The token of an upgrade request: `?token=` in its query or `Authorization: Bearer`.
pub fn token_of<'r>(req: &crate::proto::handshake::UpgradeRequest<'r>) -> Option<&'r str> {
    let query = req.path().split_once('?').map_or("", |(_, q)| q);
    let in_query = query.split('&').find_map(|kv| kv.strip_prefix("token="));
    in_query.or_else(|| {
        req.header("authorization")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader, encode};
    use serde_json::{Value, json};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn es_private() -> EncodingKey {
        EncodingKey::from_ec_pem(include_bytes!("../../../tests/data/jwt/es256-private.pem"))
            .unwrap()
    }
    fn rs_private() -> EncodingKey {
        EncodingKey::from_rsa_pem(include_bytes!("../../../tests/data/jwt/rs256-private.pem"))
            .unwrap()
    }
    fn es_tokens() -> Tokens {
        Tokens::public_key_pem(include_bytes!("../../../tests/data/jwt/es256-public.pem")).unwrap()
    }
    fn rs_tokens() -> Tokens {
        Tokens::public_key_pem(include_bytes!("../../../tests/data/jwt/rs256-public.pem")).unwrap()
    }

    fn hs(claims: &Value) -> String {
        encode(
            &JwtHeader::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn a_good_token_gives_who_the_user_is() {
        let tokens = Tokens::hs256(SECRET).unwrap();
        let token = hs(
            &json!({"sub": "alice", "exp": NOW + 60, "name": "Alice", "rooms": ["team-7:*", "lobby"]}),
        );
        let id = tokens.check(&token, NOW).unwrap();
        assert_eq!(&*id.user, "alice");
        assert_eq!(id.name.as_deref(), Some("Alice"));
        assert_eq!(id.exp, NOW + 60);
        assert!(id.rooms_allow("team-7:general"));
        assert!(id.rooms_allow("lobby"));
        assert!(!id.rooms_allow("lobby2"));
        assert!(!id.rooms_allow("team-8:general"));
        let es = encode(
            &JwtHeader::new(Algorithm::ES256),
            &json!({"sub": "bob", "exp": NOW + 60}),
            &es_private(),
        )
        .unwrap();
        assert_eq!(&*es_tokens().check(&es, NOW).unwrap().user, "bob");
        let rs = encode(
            &JwtHeader::new(Algorithm::RS256),
            &json!({"sub": "carol", "exp": NOW + 60}),
            &rs_private(),
        )
        .unwrap();
        assert_eq!(&*rs_tokens().check(&rs, NOW).unwrap().user, "carol");
        assert_eq!(rs_tokens().algorithm(), "RS256");
        assert_eq!(es_tokens().algorithm(), "ES256");
    }

    #[test]
    fn alg_none_and_algorithm_confusion_are_refused() {
        let tokens = Tokens::hs256(SECRET).unwrap();
        let claims = json!({"sub": "mallory", "exp": NOW + 60});
        for alg in ["none", "None", "NONE", "HS384", "RS256"] {
            let token = format!(
                "{}.{}.",
                b64(&json!({"alg": alg, "typ": "JWT"})),
                b64(&claims)
            );
            assert_eq!(
                tokens.check(&token, NOW),
                Err(TokenError::Algorithm),
                "{alg}"
            );
        }
        // An HS256 token whose secret is the public key's PEM text: refused by a server that
        // checks RS256 / ES256, before any signature is computed.
        for (tokens, pem) in [
            (
                rs_tokens(),
                &include_bytes!("../../../tests/data/jwt/rs256-public.pem")[..],
            ),
            (
                es_tokens(),
                &include_bytes!("../../../tests/data/jwt/es256-public.pem")[..],
            ),
        ] {
            let forged = encode(
                &JwtHeader::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(pem),
            )
            .unwrap();
            assert_eq!(tokens.check(&forged, NOW), Err(TokenError::Algorithm));
        }
        // An ES256 token against an RS256 key, and the reverse.
        let es = encode(&JwtHeader::new(Algorithm::ES256), &claims, &es_private()).unwrap();
        assert_eq!(rs_tokens().check(&es, NOW), Err(TokenError::Algorithm));
    }

    #[test]
    fn bad_signatures_and_shapes_are_refused() {
        let tokens = Tokens::hs256(SECRET).unwrap();
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let other = encode(
            &JwtHeader::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"another secret of thirty-two bytes!!"),
        )
        .unwrap();
        assert_eq!(tokens.check(&other, NOW), Err(TokenError::Signature));
        // The claims changed after signing.
        let good = hs(&claims);
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(&json!({"sub": "admin", "exp": NOW + 60})),
            parts[2]
        );
        assert_eq!(tokens.check(&tampered, NOW), Err(TokenError::Signature));
        let es = encode(&JwtHeader::new(Algorithm::ES256), &claims, &es_private()).unwrap();
        let mut sig: Vec<u8> = es.clone().into_bytes();
        let last = sig.len() - 2;
        sig[last] = if sig[last] == b'A' { b'B' } else { b'A' };
        let es_bad = String::from_utf8(sig).unwrap();
        assert_eq!(es_tokens().check(&es_bad, NOW), Err(TokenError::Signature));
        for junk in ["", "a", "a.b", "a.b.c", "!!!.e30.", "e30.e30.e30"] {
            assert!(tokens.check(junk, NOW).is_err(), "{junk}");
        }
        assert_eq!(
            tokens.check(&"a".repeat(DEFAULT_MAX_TOKEN_BYTES + 1), NOW),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn time_and_claims_are_checked() {
        let tokens = Tokens::hs256(SECRET).unwrap();
        let check = |claims: Value| tokens.check(&hs(&claims), NOW);
        assert_eq!(
            check(json!({"sub": "a", "exp": NOW - 10})),
            Err(TokenError::Expired)
        );
        assert!(
            check(json!({"sub": "a", "exp": NOW - 1})).is_ok(),
            "within the leeway"
        );
        assert_eq!(
            check(json!({"sub": "a", "exp": NOW + 60, "nbf": NOW + 30})),
            Err(TokenError::NotYetValid)
        );
        assert!(check(json!({"sub": "a", "exp": NOW + 60, "nbf": NOW - 30})).is_ok());
        assert_eq!(
            check(json!({"sub": "a"})),
            Err(TokenError::Claims),
            "no exp"
        );
        assert_eq!(
            check(json!({"exp": NOW + 60})),
            Err(TokenError::Claims),
            "no sub"
        );
        for sub in ["", "a b", "x/y", &"u".repeat(MAX_USER + 1)] {
            assert_eq!(
                check(json!({"sub": sub, "exp": NOW + 60})),
                Err(TokenError::Claims),
                "{sub:?}"
            );
        }
        assert_eq!(
            check(json!({"sub": "a", "exp": NOW + 60, "name": "x\u{7}"})),
            Err(TokenError::Claims)
        );
        assert_eq!(
            check(json!({"sub": "a", "exp": "soon"})),
            Err(TokenError::Claims)
        );
        let many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("r{i}")).collect();
        assert_eq!(
            check(json!({"sub": "a", "exp": NOW + 60, "rooms": many})),
            Err(TokenError::Claims)
        );
    }

    #[test]
    fn room_tokens_name_the_user_and_the_room() {
        let tokens = Tokens::hs256(SECRET).unwrap();
        let token = hs(&json!({"sub": "alice", "room": "vip", "exp": NOW + 60}));
        assert_eq!(tokens.check_room(&token, "alice", "vip", NOW), Ok(NOW + 60));
        assert_eq!(
            tokens.check_room(&token, "bob", "vip", NOW),
            Err(TokenError::WrongRoom)
        );
        assert_eq!(
            tokens.check_room(&token, "alice", "vip2", NOW),
            Err(TokenError::WrongRoom)
        );
        // The kinds are not interchangeable.
        assert_eq!(
            tokens.check(&token, NOW),
            Err(TokenError::Kind),
            "a room token"
        );
        let connection = hs(&json!({"sub": "alice", "exp": NOW + 60}));
        assert_eq!(
            tokens.check_room(&connection, "alice", "vip", NOW),
            Err(TokenError::Kind),
            "a connection token"
        );
    }

    #[test]
    fn issuer_and_audience_are_required_once_set() {
        let mut tokens = Tokens::hs256(SECRET).unwrap();
        let claims = |extra: Value| {
            let mut c = json!({"sub": "alice", "exp": NOW + 60});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            hs(&c)
        };
        let plain = claims(json!({}));
        let good = claims(json!({"iss": "auth.example", "aud": ["other", "chat"]}));
        assert!(
            tokens.check(&plain, NOW).is_ok(),
            "not asked for: not needed"
        );
        tokens.require_issuer("auth.example");
        tokens.require_audience("chat");
        assert!(tokens.check(&good, NOW).is_ok());
        let single = claims(json!({"iss": "auth.example", "aud": "chat"}));
        assert!(tokens.check(&single, NOW).is_ok(), "aud as a string");
        for bad in [
            plain,
            claims(json!({"iss": "auth.example"})),
            claims(json!({"aud": "chat"})),
            claims(json!({"iss": "evil.example", "aud": "chat"})),
            claims(json!({"iss": "auth.example", "aud": "billing"})),
        ] {
            assert_eq!(tokens.check(&bad, NOW), Err(TokenError::Issuer));
        }
    }

    #[test]
    fn a_verified_token_is_remembered_and_still_checked_for_time() {
        let mut tokens = Tokens::hs256(SECRET).unwrap();
        tokens.cache_entries = 2;
        let token = hs(&json!({"sub": "alice", "exp": NOW + 60}));
        assert!(tokens.check(&token, NOW).is_ok());
        assert_eq!(tokens.verified.lock().len(), 1, "remembered");
        assert!(tokens.check(&token, NOW).is_ok(), "again, from memory");
        assert_eq!(
            tokens.check(&token, NOW + 120),
            Err(TokenError::Expired),
            "expiry is checked every time"
        );
        // A forged token is never remembered, whatever it claims.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&json!({"sub": "admin", "exp": NOW + 60})),
            parts[2]
        );
        assert_eq!(tokens.check(&forged, NOW), Err(TokenError::Signature));
        assert_eq!(tokens.verified.lock().len(), 1);
        // Full: emptied, then filled again.
        for user in ["b", "c"] {
            let t = hs(&json!({"sub": user, "exp": NOW + 60}));
            assert!(tokens.check(&t, NOW).is_ok());
        }
        assert_eq!(tokens.verified.lock().len(), 1);
    }

    #[test]
    fn short_secrets_and_bad_keys_are_refused_at_start() {
        assert!(
            Tokens::hs256(b"short")
                .unwrap_err()
                .contains("at least 32 bytes")
        );
        assert!(Tokens::public_key_pem(b"not a key").is_err());
        assert!(
            Tokens::public_key_pem(include_bytes!("../../../tests/data/jwt/es256-private.pem"))
                .is_err(),
            "a private key where the public one belongs"
        );
    }
}
