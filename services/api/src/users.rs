//! Users as replicated records, and the `renda.auth.v1` service: login, token check, user
//! creation by an administrator in its subtree.
//!
//! A user is a `user` record owned by the org unit whose subtree it may see. Its kind is a
//! `subtree` kind (see `renda_replica::KindSchema::subtree`): the store's downward feeds send it
//! to every node below that unit, whatever units the tree holds, so it reaches every node of the
//! subtree and a township clerk can log in at an offline township.
//! Only the argon2id PHC string travels, never the password. Every login and failed login is
//! logged with who and when; the password never is.

use renda_domain::org::OrgCode as DOrg;
use renda_proto::auth::v1 as pb;
use renda_replica::{RecordId, Value};
use renda_store::{Cell, ColumnType, Store, StoredRecord};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::auth::{self, Claims, TokenSigner, UserRole};
use crate::core::{
    Caller, Core, Pending, Role, Shared, boolean, int, limit, new_id, record_org, rorg, text,
};
use crate::error::{Error, Result};
use crate::schema::kind;

/// How long a login token is valid.
pub const TOKEN_TTL_MS: i64 = 12 * 3_600_000;

/// Longest password accepted (argon2 takes any length; this bounds the work per request).
const MAX_PASSWORD_CHARS: usize = 128;
const MIN_PASSWORD_CHARS: usize = 8;

/// The `renda.auth.v1.Auth` service.
pub struct Service {
    pub(crate) core: Shared,
    pub(crate) signer: TokenSigner,
}

/// A user as stored.
struct UserRecord {
    number: u32,
    login: String,
    display_name: String,
    role: Option<UserRole>,
    org: DOrg,
    disabled: bool,
    password_hash: String,
}

impl UserRecord {
    fn from_stored(r: &StoredRecord) -> Result<Self> {
        Ok(UserRecord {
            number: u32::try_from(int(r, "number")).unwrap_or(0),
            login: text(r, "login"),
            display_name: text(r, "display_name"),
            role: UserRole::parse(&text(r, "role")),
            org: record_org(r)?,
            disabled: boolean(r, "disabled"),
            password_hash: text(r, "password_hash"),
        })
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn unauthenticated(reason: &str, zh: &str) -> Status {
    let mut details = tonic_types::ErrorDetails::new();
    details.set_localized_message("zh-CN", zh);
    <Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::Unauthenticated,
        reason,
        details,
    )
}

impl Core {
    /// The live user records with this login (normally one).
    async fn users_by_login(&self, login: &str) -> Result<Vec<UserRecord>> {
        let kind_id = self.kind(kind::USER)?.id;
        let value = Value::Text(login.to_owned());
        let json = match &value {
            Value::Text(s) => serde_json_string(s),
            _ => String::new(),
        };
        let rows = self
            .store
            .report_rows(
                "SELECT f.record_id FROM fields f JOIN records r ON r.id = f.record_id \
                 WHERE r.kind = $1 AND NOT r.deleted AND f.name = 'login' AND f.value = $2 \
                 ORDER BY f.record_id"
                    .to_owned(),
                vec![Cell::Int(i64::from(kind_id.0)), Cell::Text(json)],
                &[ColumnType::Text],
            )
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let Some(id) = row.first().and_then(Cell::as_text) else {
                continue;
            };
            let Ok(id) = Uuid::parse_str(id) else {
                continue;
            };
            if let Some(r) = self.store.record(RecordId(id)).await?
                && !r.deleted
            {
                out.push(UserRecord::from_stored(&r)?);
            }
        }
        Ok(out)
    }
}

/// A string as the store's JSON columns hold it.
fn serde_json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[tonic::async_trait]
impl pb::auth_server::Auth for Service {
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> std::result::Result<Response<pb::LoginResponse>, Status> {
        let pb::LoginRequest { login, password } = req.into_inner();
        let login = login.trim().to_owned();
        if login.is_empty() || login.chars().count() > 40 || password.len() > 4 * MAX_PASSWORD_CHARS
        {
            tracing::warn!(login = %login.chars().take(40).collect::<String>(), "login failed: malformed");
            return Err(unauthenticated(
                "wrong login or password",
                "用户名或密码错误",
            ));
        }
        let users = self
            .core
            .users_by_login(&login)
            .await
            .map_err(Status::from)?;
        // One record per login is the rule; concurrent creations on two offline nodes could
        // make two, and then the first live one that matches the password wins.
        let (hashes, users): (Vec<String>, Vec<UserRecord>) = if users.is_empty() {
            (vec![auth::DECOY_HASH.to_owned()], Vec::new())
        } else {
            (
                users.iter().map(|u| u.password_hash.clone()).collect(),
                users,
            )
        };
        let matched = tokio::task::spawn_blocking(move || {
            hashes
                .iter()
                .position(|h| auth::verify_password(h, &password))
        })
        .await
        .map_err(|_| Status::internal("password check failed"))?;
        let user = matched.and_then(|i| users.into_iter().nth(i));
        let Some(user) = user.filter(|u| !u.disabled && u.role.is_some()) else {
            tracing::warn!(login = %login, "login failed");
            return Err(unauthenticated(
                "wrong login or password",
                "用户名或密码错误",
            ));
        };
        let role = user.role.unwrap_or(UserRole::ReadOnly);
        let claims = Claims {
            user: user.number,
            org: user.org.clone(),
            role,
            expires_ms: now_ms() + TOKEN_TTL_MS,
        };
        tracing::info!(login = %user.login, user = user.number, org = %user.org, role = role.as_str(), "login");
        Ok(Response::new(pb::LoginResponse {
            token: self.signer.issue(&claims),
            identity: Some(pb::Identity {
                user: user.number,
                login: user.login,
                display_name: user.display_name,
                role: role.as_str().into(),
                org_code: user.org.to_string(),
                expires_unix_ms: claims.expires_ms,
            }),
        }))
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> std::result::Result<Response<pb::Identity>, Status> {
        let claims = self
            .signer
            .verify(&req.into_inner().token, now_ms())
            .map_err(|e| unauthenticated(&e.to_string(), e.reason_zh()))?;
        Ok(Response::new(pb::Identity {
            user: claims.user,
            login: String::new(),
            display_name: String::new(),
            role: claims.role.as_str().into(),
            org_code: claims.org.to_string(),
            expires_unix_ms: claims.expires_ms,
        }))
    }

    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> std::result::Result<Response<pb::User>, Status> {
        let req = req.into_inner();
        let admin = self
            .signer
            .verify(&req.token, now_ms())
            .map_err(|e| unauthenticated(&e.to_string(), e.reason_zh()))?;
        Ok(Response::new(self.create(admin, req).await?))
    }
}

/// A login as typed, trimmed: letters, digits or `. _ - @`, at most 40 characters.
fn check_login(raw: &str) -> Result<String> {
    let login = raw.trim().to_owned();
    if login.is_empty()
        || !login
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c))
    {
        return Err(Error::invalid(
            "login",
            "must be letters, digits or . _ - @",
            "用户名只能包含字母、数字和 . _ - @",
        ));
    }
    limit("login", &login, 40)?;
    Ok(login)
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(Error::invalid(
            "password",
            format!("must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
            format!("密码须为{MIN_PASSWORD_CHARS}至{MAX_PASSWORD_CHARS}个字符"),
        ));
    }
    Ok(())
}

impl Service {
    async fn create(&self, admin: Claims, req: pb::CreateUserRequest) -> Result<pb::User> {
        if !admin.role.is_admin() {
            return Err(Error::forbidden(
                "token",
                "only city or county offices create users",
                "只有市、区(市)县人大常委会办公室可以创建用户",
            ));
        }
        let login = check_login(&req.login)?;
        let display_name = req.display_name.trim().to_owned();
        limit("display_name", &display_name, 50)?;
        let role = UserRole::parse(&req.role).ok_or_else(|| {
            Error::invalid(
                "role",
                format!(
                    "unknown role {:?}",
                    req.role.chars().take(20).collect::<String>()
                ),
                "未知的角色",
            )
        })?;
        if role == UserRole::CityOffice && admin.role != UserRole::CityOffice {
            return Err(Error::forbidden(
                "role",
                "only the city office creates city office users",
                "只有市人大常委会办公室可以创建市级办公室用户",
            ));
        }
        let org = DOrg::parse(&req.org_code).map_err(|e| {
            Error::invalid("org_code", e.reason().to_owned(), e.reason_zh().to_owned())
        })?;
        if !self.core.tree().await?.has(&org) {
            return Err(Error::invalid(
                "org_code",
                format!("unknown org unit {org}"),
                "未知的组织单位",
            ));
        }
        if !admin.org.is_same_or_ancestor_of(&org) {
            return Err(Error::forbidden(
                "org_code",
                format!("{org} is outside the administrator's subtree {}", admin.org),
                "只能在本级及下级单位创建用户",
            ));
        }
        check_password(&req.password)?;
        if !self.core.users_by_login(&login).await?.is_empty() {
            return Err(Error::precondition(
                "login",
                "login is taken",
                "用户名已被使用",
            ));
        }
        let password = req.password;
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(|_| Error::Internal("password hashing task failed".into()))?
            .map_err(|e| Error::Internal(e.to_string()))?;
        let id = new_id();
        // A number unique in practice without a counter two offline nodes could both advance.
        let number = ((id.as_u128() as u32) & 0x7fff_ffff).max(1);
        let caller = Caller {
            user: admin.user,
            org: admin.org.clone(),
            role: Role::Admin,
        };
        self.core
            .write(
                &caller,
                id,
                kind::USER,
                vec![
                    Pending::Put("org", Value::Org(rorg(&org)?)),
                    Pending::Put("login", Value::Text(login.clone())),
                    Pending::Put("display_name", Value::Text(display_name.clone())),
                    Pending::Put("role", Value::Text(role.as_str().into())),
                    Pending::Put("password_hash", Value::Text(hash)),
                    Pending::Put("disabled", Value::Bool(false)),
                    Pending::Put("number", Value::Int(i64::from(number))),
                ],
            )
            .await?;
        tracing::info!(admin = admin.user, admin_org = %admin.org, login = %login, org = %org, role = role.as_str(), "user created");
        Ok(pb::User {
            id: id.to_string(),
            number,
            login,
            display_name,
            role: role.as_str().into(),
            org_code: org.to_string(),
            disabled: false,
        })
    }
}

/// What [`bootstrap_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bootstrapped {
    /// The user's number at its org unit.
    pub number: u32,
    /// `false`: the login existed already and nothing changed.
    pub created: bool,
}

/// Makes the first administrator of a deployment (`node-agent user add`, or a test): no token
/// needed, so only code holding the store calls it. The org must be this node's unit or below
/// and known to its tree. A login that exists already changes nothing (`created` is false).
pub async fn bootstrap_user(
    store: &Store,
    ctx: &crate::ApiContext,
    login: &str,
    password: &str,
    role: UserRole,
    org: &DOrg,
) -> Result<Bootstrapped> {
    let login = check_login(login)?;
    let login = login.as_str();
    check_password(password)?;
    let core = Core {
        store: store.clone(),
        ctx: ctx.clone(),
    };
    if let Some(u) = core.users_by_login(login).await?.into_iter().next() {
        return Ok(Bootstrapped {
            number: u.number,
            created: false,
        });
    }
    let me = core.node_org()?;
    if !me.is_same_or_ancestor_of(org) {
        return Err(Error::forbidden(
            "org_code",
            format!("{org} is outside this node's subtree {me}"),
            "只能在本级及下级单位创建用户",
        ));
    }
    if !core.tree().await?.has(org) {
        return Err(Error::invalid(
            "org_code",
            format!("unknown org unit {org} (import the org units first)"),
            "未知的组织单位",
        ));
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|_| Error::Internal("password hashing task failed".into()))?
        .map_err(|e| Error::Internal(e.to_string()))?;
    let id = new_id();
    let number = ((id.as_u128() as u32) & 0x7fff_ffff).max(1);
    let caller = Caller {
        user: 0,
        org: org.clone(),
        role: Role::Admin,
    };
    core.write(
        &caller,
        id,
        kind::USER,
        vec![
            Pending::Put("org", Value::Org(rorg(org)?)),
            Pending::Put("login", Value::Text(login.to_owned())),
            Pending::Put("display_name", Value::Text(login.to_owned())),
            Pending::Put("role", Value::Text(role.as_str().into())),
            Pending::Put("password_hash", Value::Text(hash)),
            Pending::Put("disabled", Value::Bool(false)),
            Pending::Put("number", Value::Int(i64::from(number))),
        ],
    )
    .await?;
    tracing::info!(login, org = %org, role = role.as_str(), "bootstrap user created");
    Ok(Bootstrapped {
        number,
        created: true,
    })
}
