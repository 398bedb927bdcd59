//! Log-in tokens, check-in codes and password hashes.
//!
//! A token is `v2.<key id>.<user record id>.<user number>.<org>.<role>.<subject>.<expires_ms>.<mac>`:
//! plain fields (hex, digits and names, so no encoding is needed) and an HMAC-SHA256 over
//! everything before the last dot, keyed by the signing key the key id names. Every node and
//! gateway of one city holds the same keys, so any of them checks a token locally, without a
//! round trip: a township offline for weeks still admits its clerks. The MAC is compared in
//! constant time by `hmac`'s `verify_slice`.
//!
//! Keys rotate: a [`TokenSigner`] signs with its current key and still accepts the keys it was
//! given as `accepted` (the previous ones) until they are retired from the configuration.
//!
//! An activity's check-in code (扫码签到) is signed the same way with a key derived from the same
//! secrets for that purpose alone, so a check-in code is never a log-in token and the reverse.
//!
//! Passwords are hashed with argon2id; only the PHC string is stored.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, KeyInit, Mac};
use renda_org::OrgCode;
use sha2::Sha256;
use uuid::Uuid;

/// What a person may do. Every role acts within the user's org unit; which RPC each role may
/// call is the `ACCESS` table of its service (`renda_api::gate::SERVICES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserRole {
    /// 市人大常委会代表工委: the city's deputy office; administers users in the city.
    CityOffice,
    /// 区(市)县人大常委会代表工委 / 联络工作室: a county's deputy office; administers its county.
    CountyOffice,
    /// 乡镇人大主席团 / 街道人大工委 clerk: enters and reads its township's or street's data.
    TownshipClerk,
    /// Reads its subtree, writes nothing.
    ReadOnly,
    /// 代表本人: a deputy, acting only on their own tasks, check-ins, visits and record. The
    /// user's subject is the deputy record.
    Deputy,
    /// 承办单位: a government department answering the suggestions assigned to it. The user's
    /// subject is the handling-unit record.
    HandlingUnit,
}

impl UserRole {
    pub const ALL: [UserRole; 6] = [
        UserRole::CityOffice,
        UserRole::CountyOffice,
        UserRole::TownshipClerk,
        UserRole::ReadOnly,
        UserRole::Deputy,
        UserRole::HandlingUnit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::CityOffice => "city_office",
            UserRole::CountyOffice => "county_office",
            UserRole::TownshipClerk => "township_clerk",
            UserRole::ReadOnly => "read_only",
            UserRole::Deputy => "deputy",
            UserRole::HandlingUnit => "handling_unit",
        }
    }

    /// The role's name as the console shows it.
    pub fn name_zh(self) -> &'static str {
        match self {
            UserRole::CityOffice => "市人大常委会代表工委",
            UserRole::CountyOffice => "区县人大常委会代表工委",
            UserRole::TownshipClerk => "乡镇人大主席团/街道人大工委",
            UserRole::ReadOnly => "只读查看",
            UserRole::Deputy => "人大代表",
            UserRole::HandlingUnit => "承办单位",
        }
    }

    pub fn parse(raw: &str) -> Option<UserRole> {
        UserRole::ALL.into_iter().find(|r| r.as_str() == raw.trim())
    }

    /// Whether this role administers users (in its own subtree).
    pub fn is_admin(self) -> bool {
        matches!(self, UserRole::CityOffice | UserRole::CountyOffice)
    }

    /// Whether this role's users are tied to one record (a deputy or a handling unit).
    pub fn needs_subject(self) -> bool {
        matches!(self, UserRole::Deputy | UserRole::HandlingUnit)
    }
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The user record.
    pub user_id: Uuid,
    /// The user's number at its org unit (operation authors name it).
    pub user: u32,
    pub org: OrgCode,
    pub role: UserRole,
    /// The deputy (role deputy) or handling unit (role handling_unit) the user acts as.
    pub subject: Option<Uuid>,
    pub expires_ms: i64,
}

/// Why a token or a check-in code was refused. The messages name no secret and no token
/// content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("check-in code is not valid yet")]
    NotYetValid,
}

impl TokenError {
    pub fn reason_zh(&self) -> &'static str {
        match self {
            TokenError::Malformed => "登录凭据格式错误",
            TokenError::UnknownKey | TokenError::BadSignature => "登录凭据无效",
            TokenError::Expired => "登录已过期，请重新登录",
            TokenError::NotYetValid => "签到码尚未生效",
        }
    }
}

/// One secret with the id tokens name it by.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
}

/// Why a key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key id {0:?} must be 1 to 16 letters, digits, '-' or '_'")]
    BadId(String),
    #[error("the secret of key {0:?} must have at least 16 bytes")]
    ShortSecret(String),
    #[error("key id {0:?} is given twice")]
    Duplicate(String),
}

impl SigningKey {
    pub fn new(id: &str, secret: impl Into<Vec<u8>>) -> Result<SigningKey, KeyError> {
        let secret = secret.into();
        let id_ok = (1..=16).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(KeyError::BadId(id.chars().take(20).collect()));
        }
        if secret.len() < 16 {
            return Err(KeyError::ShortSecret(id.to_owned()));
        }
        Ok(SigningKey {
            id: id.to_owned(),
            secret,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey {{ id: {:?}, secret: <hidden> }}", self.id)
    }
}

/// Issues and checks tokens and check-in codes with a deployment's keys: one to sign with,
/// any number still accepted for checking.
#[derive(Clone)]
pub struct TokenSigner {
    current: SigningKey,
    accepted: Vec<SigningKey>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.accepted.iter().map(|k| k.id.as_str()).collect();
        write!(
            f,
            "TokenSigner {{ current: {:?}, accepted: {ids:?}, secrets: <hidden> }}",
            self.current.id
        )
    }
}

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v2";
const CODE_VERSION: &str = "c1";
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 512;
/// What separates the key of check-in codes from the log-in key derived from the same secret.
const CODE_KEY_LABEL: &[u8] = b"renda check-in code v1";

/// A signed check-in code (扫码签到): which activity, made by which node, valid when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInCode {
    pub activity: Uuid,
    /// The node that owns the activity and made the code.
    pub issuer: OrgCode,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
}

impl TokenSigner {
    /// A signer with one key, named `1`: for tests and single-key deployments.
    pub fn new(secret: impl Into<Vec<u8>>) -> TokenSigner {
        TokenSigner {
            current: SigningKey {
                id: "1".into(),
                secret: secret.into(),
            },
            accepted: Vec::new(),
        }
    }

    /// A signer that signs with `current` and also accepts tokens signed with `accepted`.
    pub fn with_keys(
        current: SigningKey,
        accepted: Vec<SigningKey>,
    ) -> Result<TokenSigner, KeyError> {
        let mut seen = vec![current.id.clone()];
        for k in &accepted {
            if seen.contains(&k.id) {
                return Err(KeyError::Duplicate(k.id.clone()));
            }
            seen.push(k.id.clone());
        }
        Ok(TokenSigner { current, accepted })
    }

    /// The id of the key new tokens are signed with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    fn key(&self, id: &str) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(&self.accepted)
            .find(|k| k.id == id)
    }

    fn mac(secret: &[u8]) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(secret)
            .expect("HMAC-SHA256 accepts a key of any length")
    }

    fn code_key(secret: &[u8]) -> Vec<u8> {
        let mut mac = Self::mac(secret);
        mac.update(CODE_KEY_LABEL);
        mac.finalize().into_bytes().to_vec()
    }

    fn sign(secret: &[u8], body: &str) -> String {
        let mut mac = Self::mac(secret);
        mac.update(body.as_bytes());
        format!("{body}.{}", hex(&mac.finalize().into_bytes()))
    }

    /// Splits `text` into its fields after checking its version, key and MAC.
    fn open<'t>(
        &self,
        text: &'t str,
        version: &str,
        derive: impl Fn(&[u8]) -> Vec<u8>,
    ) -> Result<Vec<&'t str>, TokenError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN || !text.is_ascii() {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = text.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = unhex(tag).ok_or(TokenError::Malformed)?;
        let mut parts = body.split('.');
        if parts.next() != Some(version) {
            return Err(TokenError::Malformed);
        }
        let key_id = parts.next().ok_or(TokenError::Malformed)?;
        let key = self.key(key_id).ok_or(TokenError::UnknownKey)?;
        let mut mac = Self::mac(&derive(&key.secret));
        mac.update(body.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(parts.collect())
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let subject = claims
            .subject
            .map_or_else(|| "0".to_owned(), |s| s.simple().to_string());
        let body = format!(
            "{VERSION}.{}.{}.{}.{}.{}.{subject}.{}",
            self.current.id,
            claims.user_id.simple(),
            claims.user,
            claims.org,
            claims.role.as_str(),
            claims.expires_ms
        );
        Self::sign(&self.current.secret, &body)
    }

    /// Checks the key and signature (constant time), then the fields, then the expiry against
    /// `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let parts = self.open(token, VERSION, |s| s.to_vec())?;
        let [user_id, user, org, role, subject, expires] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        let subject = match *subject {
            "0" => None,
            s => Some(Uuid::try_parse(s).map_err(|_| TokenError::Malformed)?),
        };
        let claims = Claims {
            user_id: Uuid::try_parse(user_id).map_err(|_| TokenError::Malformed)?,
            user: user.parse().map_err(|_| TokenError::Malformed)?,
            org: OrgCode::parse(org).map_err(|_| TokenError::Malformed)?,
            role: UserRole::parse(role).ok_or(TokenError::Malformed)?,
            subject,
            expires_ms: expires.parse().map_err(|_| TokenError::Malformed)?,
        };
        if claims.expires_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// A check-in code for `code.activity`, signed with the current key.
    pub fn issue_code(&self, code: &CheckInCode) -> String {
        let body = format!(
            "{CODE_VERSION}.{}.{}.{}.{}.{}",
            self.current.id,
            code.activity.simple(),
            code.issuer,
            code.valid_from_ms,
            code.valid_until_ms
        );
        Self::sign(&Self::code_key(&self.current.secret), &body)
    }

    /// Checks a check-in code's key, signature and validity window at `now_ms`.
    pub fn verify_code(&self, code: &str, now_ms: i64) -> Result<CheckInCode, TokenError> {
        let parts = self.open(code, CODE_VERSION, Self::code_key)?;
        let [activity, issuer, from, until] = parts.as_slice() else {
            return Err(TokenError::Malformed);
        };
        let code = CheckInCode {
            activity: Uuid::try_parse(activity).map_err(|_| TokenError::Malformed)?,
            issuer: OrgCode::parse(issuer).map_err(|_| TokenError::Malformed)?,
            valid_from_ms: from.parse().map_err(|_| TokenError::Malformed)?,
            valid_until_ms: until.parse().map_err(|_| TokenError::Malformed)?,
        };
        if now_ms < code.valid_from_ms {
            return Err(TokenError::NotYetValid);
        }
        if now_ms >= code.valid_until_ms {
            return Err(TokenError::Expired);
        }
        Ok(code)
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
pub const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4Yb9y2LgdtL0Uq6Rmu0gm1c7bI8YyvE0DgGUoE6h6Ao";

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
            user_id: Uuid::from_u128(42),
            user: 7,
            org: OrgCode::parse("370202").unwrap(),
            role: UserRole::CountyOffice,
            subject: None,
            expires_ms: 2_000,
        }
    }

    fn key(id: &str, secret: &str) -> SigningKey {
        SigningKey::new(id, secret.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let signer = TokenSigner::new(b"secret".to_vec());
        let token = signer.issue(&claims());
        assert_eq!(signer.verify(&token, 1_000), Ok(claims()));
        assert_eq!(signer.verify(&token, 2_000), Err(TokenError::Expired));
        let forged = token.replace("370202", "370212");
        assert_eq!(signer.verify(&forged, 1_000), Err(TokenError::BadSignature));
        let escalated = token.replace("county_office", "city_office");
        assert_eq!(
            signer.verify(&escalated, 1_000),
            Err(TokenError::BadSignature)
        );
        let other = TokenSigner::new(b"other".to_vec());
        assert_eq!(other.verify(&token, 1_000), Err(TokenError::BadSignature));
        for bad in ["", "abc", "v2.1.x.7.370202.x.0.1.zz", &"a".repeat(600)] {
            assert_eq!(
                signer.verify(bad, 1_000),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_deputy_token_names_its_deputy() {
        let signer = TokenSigner::new(b"secret".to_vec());
        let mut c = claims();
        c.role = UserRole::Deputy;
        c.subject = Some(Uuid::from_u128(9));
        assert_eq!(signer.verify(&signer.issue(&c), 1_000), Ok(c));
    }

    #[test]
    fn a_rotated_key_still_verifies_until_retired() {
        let old = TokenSigner::with_keys(key("2025b", "old secret of sixteen"), vec![]).unwrap();
        let token = old.issue(&claims());
        let rotated = TokenSigner::with_keys(
            key("2026a", "new secret of sixteen"),
            vec![key("2025b", "old secret of sixteen")],
        )
        .unwrap();
        assert_eq!(rotated.verify(&token, 1_000), Ok(claims()));
        assert!(rotated.issue(&claims()).starts_with("v2.2026a."));
        let retired =
            TokenSigner::with_keys(key("2026a", "new secret of sixteen"), vec![]).unwrap();
        assert_eq!(retired.verify(&token, 1_000), Err(TokenError::UnknownKey));
        assert!(SigningKey::new("bad id", b"0123456789abcdef".to_vec()).is_err());
        assert!(SigningKey::new("k", b"short".to_vec()).is_err());
        assert!(
            TokenSigner::with_keys(
                key("a", "0123456789abcdef"),
                vec![key("a", "0123456789abcdeg")]
            )
            .is_err()
        );
    }

    #[test]
    fn check_in_codes_are_not_tokens_and_expire() {
        let signer = TokenSigner::new(b"secret".to_vec());
        let code = CheckInCode {
            activity: Uuid::from_u128(5),
            issuer: OrgCode::parse("370202001").unwrap(),
            valid_from_ms: 1_000,
            valid_until_ms: 3_000,
        };
        let text = signer.issue_code(&code);
        assert_eq!(signer.verify_code(&text, 2_000), Ok(code.clone()));
        assert_eq!(signer.verify_code(&text, 999), Err(TokenError::NotYetValid));
        assert_eq!(signer.verify_code(&text, 3_000), Err(TokenError::Expired));
        assert_eq!(
            signer.verify_code(&text.replace("370202001", "370202002"), 2_000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(signer.verify(&text, 2_000), Err(TokenError::Malformed));
        let token = signer.issue(&claims());
        assert_eq!(
            signer.verify_code(&token, 1_000),
            Err(TokenError::Malformed)
        );
        let other = TokenSigner::new(b"other".to_vec());
        assert_eq!(
            other.verify_code(&text, 2_000),
            Err(TokenError::BadSignature)
        );
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
