//! Login tokens and password hashes.
//!
//! A token is `v1.<user>.<org>.<role>.<expires_ms>.<mac>`: plain fields (digits and a role
//! name, so no encoding is needed) and an HMAC-SHA256 over everything before the last dot,
//! keyed by the deployment's secret (the same in every gateway and node of one city, so any of
//! them can check a token without a round trip). The MAC is compared in constant time by
//! `hmac`'s `verify_slice`. Passwords are hashed with argon2id; only the PHC string is stored.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, KeyInit, Mac};
use renda_domain::org::OrgCode;
use sha2::Sha256;

/// What a user may do, per level; every role sees only the user's org subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserRole {
    /// 市人大常委会办公室: reads everything in the city, creates users in it.
    CityOffice,
    /// 区(市)县人大常委会办公室: reads its county, creates users in it.
    CountyOffice,
    /// 乡镇(街道) clerk: enters and reads its township's data.
    TownshipClerk,
    /// Reads its subtree, writes nothing.
    ReadOnly,
}

impl UserRole {
    pub const ALL: [UserRole; 4] = [
        UserRole::CityOffice,
        UserRole::CountyOffice,
        UserRole::TownshipClerk,
        UserRole::ReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::CityOffice => "city_office",
            UserRole::CountyOffice => "county_office",
            UserRole::TownshipClerk => "township_clerk",
            UserRole::ReadOnly => "read_only",
        }
    }

    pub fn parse(raw: &str) -> Option<UserRole> {
        UserRole::ALL.into_iter().find(|r| r.as_str() == raw.trim())
    }

    /// Whether this role may create users (in its own subtree).
    pub fn is_admin(self) -> bool {
        matches!(self, UserRole::CityOffice | UserRole::CountyOffice)
    }

    /// The role the services' write rules see (`x-renda-role`).
    pub fn api_role(self) -> &'static str {
        match self {
            UserRole::CityOffice | UserRole::CountyOffice => "deputy_office",
            UserRole::TownshipClerk => "clerk",
            UserRole::ReadOnly => "viewer",
        }
    }
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub user: u32,
    pub org: OrgCode,
    pub role: UserRole,
    pub expires_ms: i64,
}

/// Why a token was refused. The messages name no secret and no token content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token has expired")]
    Expired,
}

impl TokenError {
    pub fn reason_zh(&self) -> &'static str {
        match self {
            TokenError::Malformed => "登录凭据格式错误",
            TokenError::BadSignature => "登录凭据无效",
            TokenError::Expired => "登录已过期，请重新登录",
        }
    }
}

/// Issues and checks tokens with one deployment secret.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { secret: <hidden> }")
    }
}

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LEN: usize = 256;

impl TokenSigner {
    pub fn new(secret: impl Into<Vec<u8>>) -> TokenSigner {
        TokenSigner {
            secret: secret.into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC-SHA256 accepts a key of any length")
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let body = format!(
            "{VERSION}.{}.{}.{}.{}",
            claims.user,
            claims.org,
            claims.role.as_str(),
            claims.expires_ms
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{body}.{}", hex(&tag))
    }

    /// Checks the signature (constant time), then the fields, then the expiry against `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let token = token.trim();
        if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = unhex(tag).ok_or(TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let parts: Vec<&str> = body.split('.').collect();
        let [version, user, org, role, expires] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        if *version != VERSION {
            return Err(TokenError::Malformed);
        }
        let claims = Claims {
            user: user.parse().map_err(|_| TokenError::Malformed)?,
            org: OrgCode::parse(org).map_err(|_| TokenError::Malformed)?,
            role: UserRole::parse(role).ok_or(TokenError::Malformed)?,
            expires_ms: expires.parse().map_err(|_| TokenError::Malformed)?,
        };
        if claims.expires_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// The argon2id PHC string of `password`, with a fresh random salt. Slow by design: call it
/// off the async runtime (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&rand_u64().to_le_bytes());
    salt[8..].copy_from_slice(&rand_u64().to_le_bytes());
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the stored PHC string (argon2's comparison is constant time).
/// An unreadable hash never matches.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing in particular, checked when a login names no user, so that a missing user
/// and a wrong password take the same time.
pub(crate) const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4Yb9y2LgdtL0Uq6Rmu0gm1c7bI8YyvE0DgGUoE6h6Ao";

fn rand_u64() -> u64 {
    // A v4 UUID is 122 bits from the OS generator; two of them salt a hash.
    let bits = uuid::Uuid::new_v4().as_u128();
    (bits >> 64) as u64 ^ bits as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            user: 7,
            org: OrgCode::parse("370202").unwrap(),
            role: UserRole::CountyOffice,
            expires_ms: 2_000,
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let signer = TokenSigner::new(b"secret".to_vec());
        let token = signer.issue(&claims());
        assert_eq!(signer.verify(&token, 1_000), Ok(claims()));
        assert_eq!(signer.verify(&token, 2_000), Err(TokenError::Expired));
        let forged = token.replace("370202", "370212");
        assert_eq!(signer.verify(&forged, 1_000), Err(TokenError::BadSignature));
        let other = TokenSigner::new(b"other".to_vec());
        assert_eq!(other.verify(&token, 1_000), Err(TokenError::BadSignature));
        for bad in ["", "abc", "v1.7.370202.x.1.zz", &"a".repeat(300)] {
            assert_eq!(
                signer.verify(bad, 1_000),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "wrong"));
        assert!(!verify_password("not a hash", "wrong"));
        assert!(!verify_password(DECOY_HASH, ""));
    }
}
