//! People as the gate sees them: a real log-in token from `Auth.Login`, checked locally at a
//! township; refused once the account's disabling has reached the node; forged, foreign,
//! expired and declared identities refused; users created only at the administrator's node.

mod common;

use common::*;
use renda_accounts::{Claims, TokenSigner, UserRole};
use renda_api::ApiContext;
use renda_api::users::bootstrap_user;
use renda_domain::org::{OrgCode, OrgTree};
use renda_proto::auth::v1 as auth;
use renda_proto::auth::v1::auth_client::AuthClient;
use renda_proto::deputy::v1 as dep;
use renda_proto::deputy::v1::deputies_client::DeputiesClient;
use tonic::Code;

const PASSWORD: &str = "correct horse 1";

async fn login(node: &Node, login: &str) -> Result<auth::LoginResponse, tonic::Status> {
    AuthClient::new(node.raw.clone())
        .login(auth::LoginRequest {
            login: login.into(),
            password: PASSWORD.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// ListDeputies at `node` with `token`: the cheapest call a clerk makes.
async fn list(
    node: &Node,
    token: &str,
) -> Result<tonic::Response<dep::ListDeputiesResponse>, tonic::Status> {
    DeputiesClient::new(node.raw.clone())
        .list_deputies(with_token(token, dep::ListDeputiesRequest::default()))
        .await
}

fn claims(expires_ms: i64) -> Claims {
    Claims {
        user_id: uuid::Uuid::from_u128(99),
        user: 7,
        org: OrgCode::parse(TOWNSHIP).expect("a code"),
        role: UserRole::TownshipClerk,
        subject: None,
        expires_ms,
    }
}

/// A county and a township node, with the township clerk `clerk-a` made at the county (not yet
/// sent down).
async fn county_with_clerk() -> anyhow::Result<(Node, Node, renda_api::users::Bootstrapped)> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let made = bootstrap_user(
        &county.store,
        &ApiContext::new(OrgTree::demo()),
        "clerk-a",
        PASSWORD,
        UserRole::TownshipClerk,
        &OrgCode::parse(TOWNSHIP)?,
    )
    .await?;
    Ok((county, town, made))
}

#[tokio::test]
async fn a_clerk_logs_in_at_the_township_and_is_refused_once_disabled() -> anyhow::Result<()> {
    let (county, town, made) = county_with_clerk().await?;
    assert!(made.created);
    push(&county, &town).await?;

    let session = login(&town, "clerk-a").await?;
    let identity = session.identity.clone().expect("an identity");
    assert_eq!(
        (identity.role(), identity.org_code.as_str(), identity.user),
        (auth::Role::TownshipClerk, TOWNSHIP, made.number)
    );
    list(&town, &session.token).await?;
    let me = AuthClient::new(town.raw.clone())
        .me(with_token(&session.token, auth::MeRequest {}))
        .await?
        .into_inner();
    assert_eq!((me.login.as_str(), me.user), ("clerk-a", made.number));
    assert_refused(
        AuthClient::new(town.raw.clone())
            .login(auth::LoginRequest {
                login: "clerk-a".into(),
                password: "wrong password".into(),
            })
            .await,
        Code::Unauthenticated,
        "",
    );

    // Identities the gate refuses before any service runs.
    let mut declared = with_token(&session.token, dep::ListDeputiesRequest::default());
    declared
        .metadata_mut()
        .insert("x-renda-org", COUNTY.parse().expect("ascii"));
    assert_gate_refused(
        DeputiesClient::new(town.raw.clone())
            .list_deputies(declared)
            .await,
        Code::Unauthenticated,
        "DECLARED_CALLER",
    );
    let escalated = session.token.replace("township_clerk", "city_office");
    let now = chrono::Utc::now().timestamp_millis();
    let foreign = TokenSigner::new(b"another deployment's secret, not ours".to_vec())
        .issue(&claims(now + 3_600_000));
    let expired = signer().issue(&claims(now - 1));
    for bad in [&escalated, &foreign, &expired] {
        assert_gate_refused(list(&town, bad).await, Code::Unauthenticated, "BAD_TOKEN");
    }
    let mut basic = tonic::Request::new(dep::ListDeputiesRequest::default());
    basic.metadata_mut().insert(
        "authorization",
        "Basic Y2xlcms6YQ==".parse().expect("ascii"),
    );
    assert_gate_refused(
        DeputiesClient::new(town.raw.clone())
            .list_deputies(basic)
            .await,
        Code::Unauthenticated,
        "NOT_BEARER",
    );

    // The county office disables the account at its own node: refused there at once.
    let before = town.store.log_len().await?;
    AuthClient::new(county.channel.clone())
        .set_user_disabled(as_user(
            COUNTY,
            auth::SetUserDisabledRequest {
                login: "clerk-a".into(),
                disabled: true,
                reason: "调离本街道".into(),
            },
        ))
        .await?;
    assert_gate_refused(
        list(&county, &session.token).await,
        Code::Unauthenticated,
        "USER_DISABLED",
    );
    // The township has not heard yet, and still admits the clerk (it checks tokens offline).
    assert_eq!(town.store.log_len().await?, before);
    list(&town, &session.token).await?;
    // Once the disabling arrives, the township refuses the token and the log-in.
    push(&county, &town).await?;
    assert_gate_refused(
        list(&town, &session.token).await,
        Code::Unauthenticated,
        "USER_DISABLED",
    );
    assert_eq!(
        login(&town, "clerk-a").await.err().map(|s| s.code()),
        Some(Code::Unauthenticated)
    );
    Ok(())
}

/// A township that has not yet received its accounts says so, instead of "wrong login or
/// password"; once they arrive, a wrong password gets the one answer for every failed log-in.
#[tokio::test]
async fn a_new_township_says_it_has_not_yet_received_its_accounts() -> anyhow::Result<()> {
    let (county, town, _) = county_with_clerk().await?;

    let before = login(&town, "clerk-a").await.expect_err("no accounts yet");
    let (code, _, zh) = refusal(&before);
    assert_eq!(code, Code::Unauthenticated);
    assert!(
        before
            .message()
            .contains("not yet received any user accounts"),
        "{before:?}"
    );
    assert!(zh.contains("尚未从上级收到用户账号"), "{zh}");

    push(&county, &town).await?;
    login(&town, "clerk-a").await?;
    let wrong = AuthClient::new(town.raw.clone())
        .login(auth::LoginRequest {
            login: "clerk-a".into(),
            password: "not the password".into(),
        })
        .await
        .expect_err("a wrong password");
    let (code, _, zh) = refusal(&wrong);
    assert_eq!(code, Code::Unauthenticated);
    assert_eq!(wrong.message(), "wrong login or password");
    assert_eq!(zh, "用户名或密码错误");
    Ok(())
}

#[tokio::test]
async fn users_are_created_only_at_the_administrators_node() -> anyhow::Result<()> {
    let county = Node::start(COUNTY).await?;
    let town = Node::start(TOWNSHIP).await?;
    let user = |login: &str, org: &str| auth::CreateUserRequest {
        login: login.into(),
        display_name: "八大峡街道人大工委".into(),
        role: auth::Role::TownshipClerk.into(),
        org_code: org.into(),
        password: PASSWORD.into(),
        subject_id: String::new(),
    };
    // The county office is served at the township node (it sits above it) but writes only
    // at its own node, as for every other write.
    let before = town.store.log_len().await?;
    assert_refused(
        AuthClient::new(town.channel.clone())
            .create_user(as_user(COUNTY, user("clerk-b", TOWNSHIP)))
            .await,
        Code::PermissionDenied,
        "org",
    );
    assert_eq!(town.store.log_len().await?, before);
    // A clerk administers no one; an office only its own subtree.
    let mut at_county = AuthClient::new(county.channel.clone());
    assert_gate_refused(
        at_county
            .create_user(as_user(TOWNSHIP, user("clerk-b", TOWNSHIP)))
            .await,
        Code::PermissionDenied,
        "ROLE_NOT_ALLOWED",
    );
    assert_refused(
        at_county
            .create_user(as_user(COUNTY, user("clerk-b", "370212001")))
            .await,
        Code::PermissionDenied,
        "org_code",
    );
    let made = at_county
        .create_user(as_user(COUNTY, user("clerk-b", TOWNSHIP)))
        .await?
        .into_inner();
    assert_eq!(
        (made.role(), made.org_code.as_str()),
        (auth::Role::TownshipClerk, TOWNSHIP)
    );
    let listed = at_county
        .list_users(as_user(COUNTY, auth::ListUsersRequest::default()))
        .await?
        .into_inner()
        .users;
    assert_eq!(
        listed.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(),
        ["clerk-b"]
    );
    // The account reaches the township and logs in there.
    push(&county, &town).await?;
    let session = login(&town, "clerk-b").await?;
    list(&town, &session.token).await?;
    Ok(())
}
