//! Users as replicated records, and the `renda.auth.v1` service: login, token check, user
//! creation by an administrator in its subtree.
//!
//! A user is a `user` record owned by the org unit whose subtree it may see. Its kind is a
//! `subtree` kind (see `renda_replica::KindSchema::subtree`): the store's downward feeds send it
//! to every node below that unit, whatever units the tree holds, so it reaches every node of the
//! subtree and a township clerk can log in at an offline township.
//! Only the argon2id PHC string travels, never the password. Every login and failed login is
//! logged with who and when; the password never is.

use renda_domain::org::OrgCode;
use renda_proto::auth::v1 as pb;
use renda_replica::{RecordId, Value};
use renda_store::{Store, StoredRecord};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use std::collections::HashMap;

use renda_domain::authority::{RecordKind, Step};

use crate::core::{
    Caller, Core, Pending, Shared, boolean, caller, int, limit, new_id, optional_org, record_org,
    ref_id, reference, text, text_value,
};
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{ANYONE, OFFICE, roles};
use crate::gate::{Access, ServiceAccess};
use crate::schema::kind;
use renda_accounts::{self as auth, Claims, TokenSigner, UserRole};

wire!(UserRole => pb::Role {
    CityOffice <=> CityOffice,
    CountyOffice <=> CountyOffice,
    TownshipClerk <=> TownshipClerk,
    ReadOnly <=> ReadOnly,
    Deputy <=> Deputy,
    HandlingUnit <=> HandlingUnit,
});

/// The role a wire value names (`None` for unspecified or unknown).
pub fn role_of(raw: i32) -> Option<UserRole> {
    pb::Role::try_from(raw).ok().and_then(UserRole::from_pb)
}

const ROLES_EN: &str =
    "city office, county office, township clerk, read only, deputy or handling unit";

/// How long a login token is valid unless the node's configuration says otherwise.
pub const TOKEN_TTL_MS: i64 = 12 * 3_600_000;

/// Longest password accepted (argon2 takes any length; this bounds the work per request).
const MAX_PASSWORD_CHARS: usize = 128;
const MIN_PASSWORD_CHARS: usize = 8;

/// Failed log-ins of one login within [`LOCK_WINDOW_MS`] that lock it.
pub const LOCK_AFTER_FAILURES: u32 = 5;
/// How long a login stays locked, and how long failures are remembered.
pub const LOCK_WINDOW_MS: i64 = 15 * 60_000;
/// The pause added to a failed log-in per earlier failure (at most [`MAX_FAILURE_DELAY_MS`]).
const FAILURE_DELAY_MS: u64 = 250;
const MAX_FAILURE_DELAY_MS: u64 = 2_000;
/// Logins whose failures are remembered at once; beyond it the oldest are forgotten.
const MAX_TRACKED_LOGINS: usize = 10_000;

/// The `renda.auth.v1.Auth` service.
pub struct Service {
    pub(crate) core: Shared,
    pub(crate) signer: TokenSigner,
    pub(crate) ttl_ms: i64,
    pub(crate) attempts: Attempts,
}

/// Failed log-ins per login, kept in memory at this node: a node that restarts forgets them,
/// and each node slows and locks the log-ins it is asked for.
#[derive(Default)]
pub(crate) struct Attempts(std::sync::Mutex<HashMap<String, Failures>>);

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last_ms: i64,
    locked_until_ms: Option<i64>,
}

impl Attempts {
    /// Until when `login` is locked, if it is.
    fn locked_until(&self, login: &str, now: i64) -> Option<i64> {
        let map = self.0.lock().ok()?;
        map.get(login)
            .and_then(|f| f.locked_until_ms)
            .filter(|until| *until > now)
    }

    /// Records a failure; returns how many failures there were in the window and whether
    /// this one locked the login.
    fn fail(&self, login: &str, now: i64) -> (u32, Option<i64>) {
        let Ok(mut map) = self.0.lock() else {
            return (1, None);
        };
        if map.len() >= MAX_TRACKED_LOGINS && !map.contains_key(login) {
            map.retain(|_, f| now - f.last_ms < LOCK_WINDOW_MS);
            if map.len() >= MAX_TRACKED_LOGINS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, f)| f.last_ms)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(login.to_owned()).or_insert(Failures {
            count: 0,
            last_ms: now,
            locked_until_ms: None,
        });
        if now - entry.last_ms >= LOCK_WINDOW_MS || entry.locked_until_ms.is_some_and(|u| u <= now)
        {
            *entry = Failures {
                count: 0,
                last_ms: now,
                locked_until_ms: None,
            };
        }
        entry.count += 1;
        entry.last_ms = now;
        if entry.count >= LOCK_AFTER_FAILURES {
            entry.locked_until_ms = Some(now + LOCK_WINDOW_MS);
        }
        (entry.count, entry.locked_until_ms)
    }

    fn clear(&self, login: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(login);
        }
    }
}

/// A user as stored.
struct UserRecord {
    id: Uuid,
    number: u32,
    login: String,
    display_name: String,
    role: Option<UserRole>,
    org: OrgCode,
    disabled: bool,
    password_hash: String,
    subject: Option<Uuid>,
}

impl UserRecord {
    fn from_stored(r: &StoredRecord) -> Result<Self> {
        Ok(UserRecord {
            id: r.id.0,
            number: u32::try_from(int(r, "number")).unwrap_or(0),
            login: text(r, "login"),
            display_name: text(r, "display_name"),
            role: UserRole::parse(&text(r, "role")),
            org: record_org(r)?,
            disabled: boolean(r, "disabled"),
            password_hash: text(r, "password_hash"),
            subject: ref_id(r, "subject"),
        })
    }

    fn to_pb(&self) -> pb::User {
        pb::User {
            id: self.id.to_string(),
            number: self.number,
            login: self.login.clone(),
            display_name: self.display_name.clone(),
            role: self.role.map_or(0, Wire::wire),
            org_code: self.org.to_string(),
            disabled: self.disabled,
            subject_id: self.subject.map(|s| s.to_string()).unwrap_or_default(),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
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

/// The one answer to a failed log-in, whatever failed.
fn wrong_login() -> Status {
    unauthenticated("wrong login or password", "用户名或密码错误")
}

fn locked(until_ms: i64) -> Status {
    let until = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(until_ms + 8 * 3_600_000)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    let mut details = tonic_types::ErrorDetails::new();
    details.set_localized_message(
        "zh-CN",
        format!("登录失败次数过多，该账号已锁定至 {until}（北京时间），请稍后再试"),
    );
    <Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("too many failed log-ins: locked until {until} (UTC+8)"),
        details,
    )
}

impl Core {
    /// The live user records with this login (normally one).
    async fn users_by_login(&self, login: &str) -> Result<Vec<UserRecord>> {
        let kind_id = self.kind(kind::USER)?.id;
        let ids = self
            .store
            .live_records_with_text(kind_id, "login", login)
            .await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.store.record(RecordId(id)).await?
                && !r.deleted
            {
                out.push(UserRecord::from_stored(&r)?);
            }
        }
        Ok(out)
    }

    /// The one live user with this login, for an administrator's step.
    async fn user_named(&self, login: &str) -> Result<UserRecord> {
        let login = check_login(login)?;
        self.users_by_login(&login)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound {
                kind: kind::USER,
                id: login,
            })
    }

    /// Whether this node holds any user account (a new node has received none yet).
    async fn has_users(&self) -> Result<bool> {
        let kind_id = self.kind(kind::USER)?.id;
        Ok(!self
            .store
            .records_of_kind(kind_id, None, 1, 0)
            .await?
            .is_empty())
    }
}

/// A string as the store's JSON columns hold it.
fn identity(user: &UserRecord, role: UserRole, expires_ms: i64) -> pb::Identity {
    pb::Identity {
        user: user.number,
        login: user.login.clone(),
        display_name: user.display_name.clone(),
        role: role.wire(),
        org_code: user.org.to_string(),
        expires_unix_ms: expires_ms,
        user_id: user.id.to_string(),
        subject_id: user.subject.map(|s| s.to_string()).unwrap_or_default(),
    }
}

async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|_| Error::Internal("password hashing task failed".into()))?
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Which role may call each RPC of `renda.auth.v1.Auth` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::auth_server::SERVICE_NAME,
    rpcs: &[
        ("Login", Access::Public),
        ("Verify", Access::Public),
        ("Me", roles(ANYONE)),
        ("ChangePassword", roles(ANYONE)),
        ("CreateUser", roles(OFFICE)),
        ("ListUsers", roles(OFFICE)),
        ("ResetPassword", roles(OFFICE)),
        ("SetUserDisabled", roles(OFFICE)),
    ],
};

#[tonic::async_trait]
impl pb::auth_server::Auth for Service {
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> std::result::Result<Response<pb::LoginResponse>, Status> {
        let pb::LoginRequest { login, password } = req.into_inner();
        let login = login.trim().to_owned();
        let shown: String = login.chars().take(40).collect();
        let now = now_ms();
        if let Some(until) = self.attempts.locked_until(&shown, now) {
            tracing::warn!(login = %shown, "login refused: locked");
            return Err(locked(until));
        }
        let malformed = login.is_empty()
            || login.chars().count() > 40
            || password.len() > 4 * MAX_PASSWORD_CHARS;
        let users = if malformed {
            Vec::new()
        } else {
            self.core
                .users_by_login(&login)
                .await
                .map_err(Status::from)?
        };
        // One record per login is the rule; concurrent creations on two offline nodes could
        // make two, and then the first live one that matches the password wins. A missing user
        // is checked against a decoy hash, so both answers take the same time.
        let hashes: Vec<String> = if users.is_empty() {
            vec![auth::DECOY_HASH.to_owned()]
        } else {
            users.iter().map(|u| u.password_hash.clone()).collect()
        };
        let matched = tokio::task::spawn_blocking(move || {
            hashes
                .iter()
                .position(|h| auth::verify_password(h, &password))
        })
        .await
        .map_err(|_| Status::internal("password check failed"))?;
        let user = matched.and_then(|i| users.into_iter().nth(i));
        let Some((user, role)) = user
            .filter(|u| !u.disabled)
            .and_then(|u| u.role.map(|r| (u, r)))
        else {
            let (failures, locked_until) = self.attempts.fail(&shown, now);
            let no_accounts = !self.core.has_users().await.map_err(Status::from)?;
            tracing::warn!(login = %shown, failures, locked = locked_until.is_some(), "login failed");
            if no_accounts {
                return Err(unauthenticated(
                    "this node has not yet received any user accounts from upstream",
                    "本节点尚未从上级收到用户账号，请待同步后再登录",
                ));
            }
            let pause = (FAILURE_DELAY_MS * u64::from(failures - 1)).min(MAX_FAILURE_DELAY_MS);
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            return Err(match locked_until {
                Some(until) => locked(until),
                None => wrong_login(),
            });
        };
        self.attempts.clear(&shown);
        let claims = Claims {
            user_id: user.id,
            user: user.number,
            org: user.org,
            role,
            subject: user.subject,
            expires_ms: now + self.ttl_ms,
        };
        tracing::info!(login = %user.login, user = user.number, org = %user.org, role = role.as_str(), "login");
        Ok(Response::new(pb::LoginResponse {
            token: self.signer.issue(&claims),
            identity: Some(identity(&user, role, claims.expires_ms)),
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
            role: claims.role.wire(),
            org_code: claims.org.to_string(),
            expires_unix_ms: claims.expires_ms,
            user_id: claims.user_id.to_string(),
            subject_id: claims.subject.map(|s| s.to_string()).unwrap_or_default(),
        }))
    }

    async fn me(
        &self,
        req: Request<pb::MeRequest>,
    ) -> std::result::Result<Response<pb::Identity>, Status> {
        let me = caller(&req)?;
        let stored = self
            .core
            .store
            .record(RecordId(me.user_id))
            .await
            .map_err(Error::from)?;
        let user = match stored {
            Some(r) => UserRecord::from_stored(&r)?,
            None => UserRecord {
                id: me.user_id,
                number: me.user,
                login: String::new(),
                display_name: String::new(),
                role: Some(me.role),
                org: me.org,
                disabled: false,
                password_hash: String::new(),
                subject: me.subject,
            },
        };
        Ok(Response::new(identity(&user, me.role, 0)))
    }

    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> std::result::Result<Response<pb::ChangePasswordResponse>, Status> {
        let me = caller(&req)?;
        let req = req.into_inner();
        let Some(stored) = self
            .core
            .store
            .record(RecordId(me.user_id))
            .await
            .map_err(Error::from)?
        else {
            return Err(Error::precondition(
                "user",
                "this node does not hold the caller's account: change the password at the node of your unit",
                "请在本单位所在节点修改密码",
            )
            .into());
        };
        let user = UserRecord::from_stored(&stored)?;
        check_password(&req.new_password)?;
        let phc = user.password_hash.clone();
        let current = req.current_password;
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&phc, &current))
            .await
            .map_err(|_| Status::internal("password check failed"))?;
        if !ok {
            tracing::warn!(user = me.user, org = %me.org, "password change refused: wrong current password");
            return Err(Error::invalid(
                "current_password",
                "the current password is wrong",
                "当前密码不正确",
            )
            .into());
        }
        self.core
            .authorize(&me, RecordKind::User, Step::Edit, &user.org)
            .await?;
        let phc = hash(req.new_password).await?;
        self.core
            .write(
                &me,
                user.id,
                kind::USER,
                vec![Pending::Put("password_hash", Value::Text(phc))],
            )
            .await?;
        tracing::info!(user = me.user, org = %me.org, "password changed");
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> std::result::Result<Response<pb::User>, Status> {
        let (admin, cmd) = edge::accept(req)?;
        Ok(Response::new(self.create(admin, cmd).await?))
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> std::result::Result<Response<pb::ListUsersResponse>, Status> {
        let (admin, UsersUnder(org)) = edge::accept(req)?;
        let org = org.unwrap_or(admin.org);
        require_admin_of(&admin, &org)?;
        let users = self
            .core
            .list(kind::USER, Some(&org))
            .await?
            .iter()
            .map(|r| UserRecord::from_stored(r).map(|u| u.to_pb()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Response::new(pb::ListUsersResponse { users }))
    }

    async fn reset_password(
        &self,
        req: Request<pb::ResetPasswordRequest>,
    ) -> std::result::Result<Response<pb::User>, Status> {
        let admin = caller(&req)?;
        let req = req.into_inner();
        let user = self.core.user_named(&req.login).await?;
        require_admin_of(&admin, &user.org)?;
        check_password(&req.new_password)?;
        self.core
            .authorize(&admin, RecordKind::User, Step::Edit, &user.org)
            .await?;
        let phc = hash(req.new_password).await?;
        self.core
            .write(
                &admin,
                user.id,
                kind::USER,
                vec![Pending::Put("password_hash", Value::Text(phc))],
            )
            .await?;
        self.attempts.clear(&user.login);
        tracing::info!(admin = admin.user, admin_org = %admin.org, login = %user.login, "password reset");
        Ok(Response::new(user.to_pb()))
    }

    async fn set_user_disabled(
        &self,
        req: Request<pb::SetUserDisabledRequest>,
    ) -> std::result::Result<Response<pb::User>, Status> {
        let admin = caller(&req)?;
        let req = req.into_inner();
        let mut user = self.core.user_named(&req.login).await?;
        require_admin_of(&admin, &user.org)?;
        if user.id == admin.user_id {
            return Err(Error::precondition(
                "login",
                "an administrator cannot disable their own account",
                "不能停用自己的账号",
            )
            .into());
        }
        let reason = if req.disabled {
            renda_domain::text::bounded("reason", &req.reason, 2, 200).map_err(Error::from)?
        } else {
            renda_domain::text::optional("reason", Some(&req.reason), 200)
                .map_err(Error::from)?
                .unwrap_or_default()
        };
        self.core
            .authorize(&admin, RecordKind::User, Step::Edit, &user.org)
            .await?;
        self.core
            .write(
                &admin,
                user.id,
                kind::USER,
                vec![
                    Pending::Put("disabled", Value::Bool(req.disabled)),
                    Pending::Put("disabled_reason", text_value(reason)),
                ],
            )
            .await?;
        user.disabled = req.disabled;
        tracing::info!(admin = admin.user, admin_org = %admin.org, login = %user.login, disabled = req.disabled, "user disabled flag set");
        Ok(Response::new(user.to_pb()))
    }
}

/// `CreateUser` as domain values; the password and the subject are checked in the handler's
/// order (after the administrator's authority).
pub(crate) struct NewUser {
    user: Account,
    password: String,
    subject_id: String,
}

struct Account {
    login: String,
    display_name: String,
    role: UserRole,
    org: OrgCode,
}

impl TryFrom<pb::CreateUserRequest> for NewUser {
    type Error = Error;

    fn try_from(req: pb::CreateUserRequest) -> Result<Self> {
        let login = check_login(&req.login)?;
        let display_name = req.display_name.trim().to_owned();
        limit("display_name", &display_name, 50)?;
        let role = edge::one_of("role", req.role, ROLES_EN, "未知的角色")?;
        let org = OrgCode::parse(&req.org_code)
            .map_err(|e| Error::invalid("org_code", e.to_string(), e.reason_zh()))?;
        Ok(Self {
            user: Account {
                login,
                display_name,
                role,
                org,
            },
            password: req.password,
            subject_id: req.subject_id,
        })
    }
}

/// `ListUsers`: the subtree, or the administrator's own when the request names none.
struct UsersUnder(Option<OrgCode>);

impl TryFrom<pb::ListUsersRequest> for UsersUnder {
    type Error = Error;

    fn try_from(req: pb::ListUsersRequest) -> Result<Self> {
        Ok(Self(optional_org("org_code", &req.org_code)?))
    }
}

/// Refuses an administrator acting on a unit outside their subtree.
fn require_admin_of(admin: &Caller, org: &OrgCode) -> Result<()> {
    if !admin.role.is_admin() || !admin.org.contains(*org) {
        return Err(Error::forbidden(
            "org_code",
            format!("{org} is outside the administrator's subtree {}", admin.org),
            "只能管理本级及下级单位的用户",
        ));
    }
    Ok(())
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
    async fn create(&self, admin: Caller, req: NewUser) -> Result<pb::User> {
        let Account {
            login,
            display_name,
            role,
            org,
        } = req.user;
        if role == UserRole::CityOffice && admin.role != UserRole::CityOffice {
            return Err(Error::forbidden(
                "role",
                "only the city office creates city office users",
                "只有市人大常委会代表工委可以创建市级办公室用户",
            ));
        }
        if !self.core.tree().await?.has(&org) {
            return Err(Error::invalid(
                "org_code",
                format!("unknown org unit {org}"),
                "未知的组织单位",
            ));
        }
        require_admin_of(&admin, &org)?;
        // As for every other write of a user record: only at the administrator's own node,
        // under the register's rule.
        self.core
            .authorize(&admin, RecordKind::User, Step::Edit, &org)
            .await?;
        let subject = self.subject(role, &org, &req.subject_id).await?;
        check_password(&req.password)?;
        if !self.core.users_by_login(&login).await?.is_empty() {
            return Err(Error::precondition(
                "login",
                "login is taken",
                "用户名已被使用",
            ));
        }
        let phc = hash(req.password).await?;
        let id = new_id();
        let number = user_number(id);
        let mut changes = user_changes(&org, &login, &display_name, role, phc, number);
        if let Some(subject) = subject {
            changes.push(Pending::Put("subject", reference(subject)));
        }
        self.core.write(&admin, id, kind::USER, changes).await?;
        tracing::info!(admin = admin.user, admin_org = %admin.org, login = %login, org = %org, role = role.as_str(), "user created");
        Ok(pb::User {
            id: id.to_string(),
            number,
            login,
            display_name,
            role: role.wire(),
            org_code: org.to_string(),
            disabled: false,
            subject_id: subject.map(|s| s.to_string()).unwrap_or_default(),
        })
    }

    /// The record a deputy's or a handling unit's account acts as: required for those roles,
    /// a live record of the right kind at the account's unit; refused for the others.
    async fn subject(&self, role: UserRole, org: &OrgCode, raw: &str) -> Result<Option<Uuid>> {
        let kind = match role {
            UserRole::Deputy => kind::DEPUTY,
            UserRole::HandlingUnit => kind::HANDLING_UNIT,
            _ if raw.trim().is_empty() => return Ok(None),
            _ => {
                return Err(Error::invalid(
                    "subject_id",
                    "only deputy and handling_unit accounts act as a record",
                    "只有代表和承办单位账号需要关联记录",
                ));
            }
        };
        if raw.trim().is_empty() {
            return Err(Error::invalid(
                "subject_id",
                format!("a {} account needs the {kind} it acts as", role.as_str()),
                "代表或承办单位账号须关联对应记录",
            ));
        }
        let record = self.core.get("subject_id", raw, kind).await?;
        if record_org(&record)? != *org {
            return Err(Error::invalid(
                "subject_id",
                format!("the {kind} belongs to another org unit than {org}"),
                "关联记录不属于该单位",
            ));
        }
        Ok(Some(record.id.0))
    }
}

/// A number unique in practice without a counter two offline nodes could both advance.
fn user_number(id: Uuid) -> u32 {
    ((id.as_u128() as u32) & 0x7fff_ffff).max(1)
}

/// The fields of a new user record.
fn user_changes(
    org: &OrgCode,
    login: &str,
    display_name: &str,
    role: UserRole,
    password_hash: String,
    number: u32,
) -> Vec<Pending> {
    let org = Value::Org(*org);
    vec![
        Pending::Put("org", org),
        Pending::Put("login", Value::Text(login.to_owned())),
        Pending::Put("display_name", Value::Text(display_name.to_owned())),
        Pending::Put("role", Value::Text(role.as_str().into())),
        Pending::Put("password_hash", Value::Text(password_hash)),
        Pending::Put("disabled", Value::Bool(false)),
        Pending::Put("number", Value::Int(i64::from(number))),
    ]
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
    org: &OrgCode,
) -> Result<Bootstrapped> {
    let login = check_login(login)?;
    let login = login.as_str();
    if role.needs_subject() {
        return Err(Error::invalid(
            "role",
            format!(
                "a {} account acts as a record: create it with Auth.CreateUser and its subject_id",
                role.as_str()
            ),
            "代表和承办单位账号须在控制台或通过 Auth.CreateUser 创建并关联对应记录",
        ));
    }
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
    if !me.contains(*org) {
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
    let phc = hash(password.to_owned()).await?;
    let id = new_id();
    let number = user_number(id);
    core.write(
        &Caller::system(org),
        id,
        kind::USER,
        user_changes(org, login, login, role, phc, number),
    )
    .await?;
    tracing::info!(login, org = %org, role = role.as_str(), "bootstrap user created");
    Ok(Bootstrapped {
        number,
        created: true,
    })
}
