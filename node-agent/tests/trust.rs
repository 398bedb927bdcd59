//! Trust at a running mesh: every call acts for a verified person. Real nodes on loopback,
//! real TLS on both ports (mutual TLS between nodes, server-authenticated TLS for people).
//!
//! Each refusal is checked for its gRPC code, the gate's reason where the gate refused, and
//! that the node stored nothing (its op log did not grow) and still serves.

use std::time::Duration;

use node_agent::demo::Person;
use node_agent::mesh::{DEMO_TOKEN_SECRET, Mesh};
use renda_accounts::{Claims, SigningKey, TokenSigner, UserRole};
use renda_api::gate::{Access, gate_reason, rpcs};
use renda_proto::activity::v1 as act;
use renda_proto::auth::v1 as auth;
use renda_proto::deputy::v1 as dep;
use renda_proto::opinion::v1 as opi;
use renda_proto::report::v1 as rep;
use renda_proto::station::v1 as sta;
use renda_proto::suggestion::v1 as sug;
use renda_replica::OrgCode;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

const CITY: u64 = 370_200;
const COUNTY: u64 = 370_202;
const TOWN_A: u64 = 370_202_001;
const TOWN_B: u64 = 370_202_002;
const OTHER_COUNTY: u64 = 370_212;
const OTHER_TOWN: u64 = 370_212_001;
const PASSWORD: &str = "trust-test-password";
const OPINION_SOURCE: opi::OpinionSource = opi::OpinionSource::Visit;

fn org(code: u64) -> OrgCode {
    OrgCode::new(code).expect("test org code")
}

fn dorg(code: u64) -> renda_domain::org::OrgCode {
    renda_domain::org::OrgCode::parse(&code.to_string()).expect("test org code")
}

fn signer() -> TokenSigner {
    TokenSigner::with_keys(
        SigningKey::new("demo", DEMO_TOKEN_SECRET.to_vec()).expect("demo key"),
        vec![],
    )
    .expect("one key")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A token for a user this mesh does not hold (the gate accepts a verified token; only a
/// stored, disabled account refuses it), for the role matrix.
fn minted(role: UserRole, at: u64, subject: Option<Uuid>) -> String {
    signer().issue(&Claims {
        user_id: Uuid::new_v4(),
        user: 9,
        org: dorg(at),
        role,
        subject,
        expires_ms: now_ms() + 3_600_000,
    })
}

fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    req
}

struct World {
    mesh: Mesh,
    _dir: tempfile::TempDir,
}

impl World {
    /// City, a county with two townships, another county with one; the org tree imported at
    /// the city; a log-in per unit, created at the city and synced to every node.
    async fn start() -> anyhow::Result<World> {
        renda_tls::install_crypto_provider();
        let dir = tempfile::tempdir()?;
        let orgs: Vec<OrgCode> = [CITY, COUNTY, OTHER_COUNTY, TOWN_A, TOWN_B, OTHER_TOWN]
            .into_iter()
            .map(org)
            .collect();
        let mesh = Mesh::start(dir.path(), &orgs, node_agent::domain::deputy_work()).await?;
        let city = mesh.node(org(CITY))?;
        let ctx = renda_api::ApiContext::default();
        let units: Vec<(renda_domain::org::OrgCode, String)> = orgs
            .iter()
            .map(|o| {
                let code = renda_domain::org::OrgCode::parse(&o.to_string())
                    .expect("a mesh org is a valid code");
                (code, format!("单位{o}"))
            })
            .collect();
        renda_api::org::bootstrap_units(&city.store, &ctx, &units)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (login, role, at) in [
            ("office", UserRole::CountyOffice, COUNTY),
            ("clerk-a", UserRole::TownshipClerk, TOWN_A),
            ("clerk-b", UserRole::TownshipClerk, TOWN_B),
            ("viewer-a", UserRole::ReadOnly, TOWN_A),
            ("other-clerk", UserRole::TownshipClerk, OTHER_TOWN),
        ] {
            renda_api::users::bootstrap_user(&city.store, &ctx, login, PASSWORD, role, &dorg(at))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        mesh.sync_all().await?;
        Ok(World { mesh, _dir: dir })
    }

    fn people(&self, at: u64) -> anyhow::Result<Channel> {
        self.mesh.person_channel(org(at))
    }

    async fn login(&self, at: u64, login: &str) -> anyhow::Result<String> {
        Ok(auth::auth_client::AuthClient::new(self.people(at)?)
            .login(auth::LoginRequest {
                login: login.into(),
                password: PASSWORD.into(),
            })
            .await?
            .into_inner()
            .token)
    }

    async fn log_len(&self, at: u64) -> anyhow::Result<u64> {
        Ok(self.mesh.node(org(at))?.store.log_len().await?)
    }

    /// The node still answers a logged-in person.
    async fn still_serves(&self, at: u64, token: &str) -> anyhow::Result<()> {
        dep::deputies_client::DeputiesClient::new(self.people(at)?)
            .list_deputies(with_token(token, dep::ListDeputiesRequest::default()))
            .await?;
        Ok(())
    }

    async fn create_deputy(&self, at: u64, token: &str, name: &str) -> anyhow::Result<String> {
        Ok(dep::deputies_client::DeputiesClient::new(self.people(at)?)
            .create_deputy(with_token(token, deputy(at, name)))
            .await?
            .into_inner()
            .id)
    }
}

fn deputy(at: u64, name: &str) -> dep::CreateDeputyRequest {
    dep::CreateDeputyRequest {
        org: at.to_string(),
        fields: Some(dep::DeputyFields {
            name: name.into(),
            levels: vec![dep::DeputyLevel::Township.into()],
            constituency: "第一选区".into(),
            term: 5,
            gender: dep::Gender::Female.into(),
            ethnicity: "汉族".into(),
            sector: "农业".into(),
            phone: String::new(),
            id_card: String::new(),
            status: dep::DeputyStatus::Serving.into(),
        }),
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    reason: Option<&str>,
) -> tonic::Status {
    let status = result.expect_err("the call must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    if let Some(reason) = reason {
        assert_eq!(gate_reason(&status).as_deref(), Some(reason), "{status:?}");
    }
    status
}

#[tokio::test]
async fn declared_callers_node_certificates_and_foreign_tokens_are_refused() -> anyhow::Result<()> {
    let w = World::start().await?;
    let office = w.login(COUNTY, "office").await?;
    let before = w.log_len(COUNTY).await?;

    // The attack of the issue: a township's node certificate, metadata naming "user 1,
    // county office", a deputy created at the county.
    let mut forged = tonic::Request::new(deputy(COUNTY, "冒名代表"));
    for (k, v) in [
        ("x-renda-user", "1"),
        ("x-renda-org", "370202"),
        ("x-renda-role", "deputy_office"),
    ] {
        forged.metadata_mut().insert(k, v.parse()?);
    }
    let mut as_node = dep::deputies_client::DeputiesClient::new(w.mesh.channel(org(TOWN_A))?);
    refused(
        as_node.create_deputy(forged).await,
        Code::Unauthenticated,
        Some("DECLARED_CALLER"),
    );
    // Declared metadata is refused even next to a valid token.
    let mut both = with_token(&office, deputy(COUNTY, "冒名代表"));
    both.metadata_mut().insert("x-renda-role", "admin".parse()?);
    refused(
        dep::deputies_client::DeputiesClient::new(w.people(COUNTY)?)
            .create_deputy(both)
            .await,
        Code::Unauthenticated,
        Some("DECLARED_CALLER"),
    );
    // A node certificate alone reaches no domain service and no report.
    refused(
        as_node.create_deputy(deputy(COUNTY, "节点代表")).await,
        Code::Unauthenticated,
        Some("NO_TOKEN"),
    );
    refused(
        rep::reports_client::ReportsClient::new(w.mesh.channel(org(TOWN_A))?)
            .get_report(rep::ReportRequest {
                name: "deputies".into(),
                org_code: CITY.to_string(),
                from: Some(jan1(2026)),
                to: Some(jan1(2027)),
                freshness_limit_hours: 72,
                freshness_limit_minutes: 0,
            })
            .await,
        Code::Unauthenticated,
        Some("NO_TOKEN"),
    );
    // It still reaches status and health.
    renda_proto::sync::v1::replication_client::ReplicationClient::new(w.mesh.channel(org(TOWN_A))?)
        .status(renda_proto::sync::v1::StatusRequest {})
        .await?;
    // The client port never serves replication.
    let on_client_port =
        renda_proto::sync::v1::replication_client::ReplicationClient::new(w.people(COUNTY)?)
            .status(renda_proto::sync::v1::StatusRequest {})
            .await;
    refused(on_client_port, Code::Unimplemented, None);

    // A token signed with another mesh's secret, an unknown key, a tampered and an expired
    // token, and malformed or oversized authorization values.
    let claims = Claims {
        user_id: Uuid::new_v4(),
        user: 1,
        org: dorg(COUNTY),
        role: UserRole::CountyOffice,
        subject: None,
        expires_ms: now_ms() + 60_000,
    };
    let foreign = TokenSigner::with_keys(
        SigningKey::new("demo", b"another mesh's secret, 32 bytes long".to_vec())?,
        vec![],
    )?
    .issue(&claims);
    let unknown_key =
        TokenSigner::with_keys(SigningKey::new("k9", DEMO_TOKEN_SECRET.to_vec())?, vec![])?
            .issue(&claims);
    let tampered = office.replace("county_office", "city_office");
    let expired = signer().issue(&Claims {
        expires_ms: now_ms() - 1,
        ..claims.clone()
    });
    for (token, why) in [
        (foreign.as_str(), "signature"),
        (unknown_key.as_str(), "unknown key"),
        (tampered.as_str(), "signature"),
        (expired.as_str(), "expired"),
    ] {
        let status = refused(
            dep::deputies_client::DeputiesClient::new(w.people(COUNTY)?)
                .create_deputy(with_token(token, deputy(COUNTY, "假代表")))
                .await,
            Code::Unauthenticated,
            Some("BAD_TOKEN"),
        );
        assert!(status.message().contains(why), "{why}: {status:?}");
    }
    for (value, says) in [
        ("Basic abc".to_owned(), "not a Bearer token"),
        ("Bearer".to_owned(), "not a Bearer token"),
        (format!("Bearer {}", "a".repeat(2_000)), "too long"),
    ] {
        let mut req = tonic::Request::new(deputy(COUNTY, "假代表"));
        req.metadata_mut().insert("authorization", value.parse()?);
        let status = refused(
            dep::deputies_client::DeputiesClient::new(w.people(COUNTY)?)
                .create_deputy(req)
                .await,
            Code::Unauthenticated,
            None,
        );
        assert!(status.message().contains(says), "{says}: {status:?}");
    }
    assert_eq!(
        w.log_len(COUNTY).await?,
        before,
        "a refused call stored something"
    );
    w.still_serves(COUNTY, &office).await?;
    w.mesh.shutdown().await
}

#[tokio::test]
async fn a_township_clerk_neither_reads_nor_writes_another_township() -> anyhow::Result<()> {
    let w = World::start().await?;
    let clerk_a = w.login(TOWN_A, "clerk-a").await?;
    let clerk_b = w.login(TOWN_B, "clerk-b").await?;
    let b_deputy = w.create_deputy(TOWN_B, &clerk_b, "乙镇代表").await?;
    let b_station = sta::stations_client::StationsClient::new(w.people(TOWN_B)?)
        .create_station(with_token(
            &clerk_b,
            sta::CreateStationRequest {
                name: "乙镇代表联络站".into(),
                kind: sta::StationKind::Station.into(),
                address: "乙镇人民路1号".into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .id;
    let b_opinion = opi::opinions_client::OpinionsClient::new(w.people(TOWN_B)?)
        .raise_opinion(with_token(
            &clerk_b,
            opi::RaiseOpinionRequest {
                content: "村道路灯不亮，夜间出行不便".into(),
                source: OPINION_SOURCE.into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .id;
    w.mesh.sync_all().await?;
    // Township A's clerk is admitted at the county (A is below it), and sees A there...
    let county = w.people(COUNTY)?;
    let mine = dep::deputies_client::DeputiesClient::new(county.clone())
        .list_deputies(with_token(&clerk_a, dep::ListDeputiesRequest::default()))
        .await?
        .into_inner();
    assert!(
        mine.deputies.iter().all(|d| d.org == TOWN_A.to_string()),
        "a clerk's default listing at the county is their own township: {:?}",
        mine.deputies.iter().map(|d| &d.org).collect::<Vec<_>>()
    );
    let before = w.log_len(COUNTY).await?;
    let b = TOWN_B.to_string();
    let denied = |r: Result<(), tonic::Status>, what: &str| {
        let status = r.expect_err(what);
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
    };
    let mut deputies = dep::deputies_client::DeputiesClient::new(county.clone());
    denied(
        deputies
            .list_deputies(with_token(
                &clerk_a,
                dep::ListDeputiesRequest {
                    org: b.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "ListDeputies of B",
    );
    denied(
        deputies
            .get_deputy(with_token(
                &clerk_a,
                dep::GetDeputyRequest {
                    id: b_deputy.clone(),
                },
            ))
            .await
            .map(drop),
        "GetDeputy of B",
    );
    denied(
        deputies
            .create_deputy(with_token(&clerk_a, deputy(TOWN_B, "越权代表")))
            .await
            .map(drop),
        "CreateDeputy for B",
    );
    denied(
        deputies
            .record_visit(with_token(
                &clerk_a,
                dep::RecordVisitRequest {
                    deputy_id: b_deputy.clone(),
                    households: 3,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "RecordVisit for B's deputy",
    );
    let mut stations = sta::stations_client::StationsClient::new(county.clone());
    denied(
        stations
            .list_stations(with_token(
                &clerk_a,
                sta::ListStationsRequest {
                    org: b.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "ListStations of B",
    );
    denied(
        stations
            .get_station(with_token(
                &clerk_a,
                sta::GetStationRequest {
                    id: b_station.clone(),
                },
            ))
            .await
            .map(drop),
        "GetStation of B",
    );
    let mut opinions = opi::opinions_client::OpinionsClient::new(county.clone());
    denied(
        opinions
            .list_opinions(with_token(
                &clerk_a,
                opi::ListOpinionsRequest {
                    org: b.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "ListOpinions of B",
    );
    denied(
        opinions
            .get_opinion(with_token(
                &clerk_a,
                opi::GetOpinionRequest {
                    id: b_opinion.clone(),
                },
            ))
            .await
            .map(drop),
        "GetOpinion of B",
    );
    denied(
        sug::suggestions_client::SuggestionsClient::new(county.clone())
            .list_suggestions(with_token(
                &clerk_a,
                sug::ListSuggestionsRequest {
                    org: b.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "ListSuggestions of B",
    );
    denied(
        act::activities_client::ActivitiesClient::new(county.clone())
            .list_activities(with_token(
                &clerk_a,
                act::ListActivitiesRequest {
                    org: b.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "ListActivities of B",
    );
    denied(
        renda_proto::project::v1::projects_client::ProjectsClient::new(county.clone())
            .list_projects(with_token(
                &clerk_a,
                renda_proto::project::v1::ListProjectsRequest {
                    org: b.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        "ListProjects of B",
    );
    denied(
        renda_proto::evaluation::v1::evaluations_client::EvaluationsClient::new(county.clone())
            .report_back_coverage(with_token(
                &clerk_a,
                renda_proto::evaluation::v1::ReportBackCoverageRequest {
                    org: b.clone(),
                    term: 0,
                },
            ))
            .await
            .map(drop),
        "ReportBackCoverage of B",
    );
    denied(
        act::activities_client::ActivitiesClient::new(county.clone())
            .points(with_token(
                &clerk_a,
                act::PointsRequest {
                    org: b.clone(),
                    deputy_id: String::new(),
                },
            ))
            .await
            .map(drop),
        "Points of B",
    );
    denied(
        sug::suggestions_client::SuggestionsClient::new(county.clone())
            .suggestion_rates(with_token(
                &clerk_a,
                sug::SuggestionRatesRequest { org: b.clone() },
            ))
            .await
            .map(drop),
        "SuggestionRates of B",
    );
    denied(
        rep::reports_client::ReportsClient::new(county.clone())
            .get_report(with_token(
                &clerk_a,
                rep::ReportRequest {
                    name: "deputies".into(),
                    org_code: b.clone(),
                    from: Some(jan1(2026)),
                    to: Some(jan1(2027)),
                    freshness_limit_hours: 72,
                    freshness_limit_minutes: 0,
                },
            ))
            .await
            .map(drop),
        "GetReport of B",
    );
    // Another county's clerk is not served here at all, reads or writes.
    let other = w.login(OTHER_TOWN, "other-clerk").await?;
    for at in [COUNTY, TOWN_A] {
        refused(
            dep::deputies_client::DeputiesClient::new(w.people(at)?)
                .list_deputies(with_token(&other, dep::ListDeputiesRequest::default()))
                .await,
            Code::PermissionDenied,
            Some("OUTSIDE_SCOPE"),
        );
        refused(
            dep::deputies_client::DeputiesClient::new(w.people(at)?)
                .create_deputy(with_token(&other, deputy(at, "外县代表")))
                .await,
            Code::PermissionDenied,
            Some("OUTSIDE_SCOPE"),
        );
    }
    // Role escalation: a clerk calling an office-only RPC.
    refused(
        auth::auth_client::AuthClient::new(w.people(TOWN_A)?)
            .create_user(with_token(
                &clerk_a,
                auth::CreateUserRequest {
                    login: "sneaky".into(),
                    display_name: "越权".into(),
                    role: auth::Role::CountyOffice.into(),
                    org_code: COUNTY.to_string(),
                    password: PASSWORD.into(),
                    ..Default::default()
                },
            ))
            .await,
        Code::PermissionDenied,
        Some("ROLE_NOT_ALLOWED"),
    );
    assert_eq!(
        w.log_len(COUNTY).await?,
        before,
        "a refused call stored something"
    );
    w.still_serves(COUNTY, &clerk_a).await?;
    w.mesh.shutdown().await
}

/// Every RPC of the table × every role, from inside the node's subtree and from another
/// county, with an empty request: refused by the gate exactly where the table says, with
/// nothing stored.
#[tokio::test]
async fn the_role_table_holds_for_every_rpc_and_role() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut grpc = tonic::client::Grpc::new(w.people(TOWN_A)?);
    let mut checked = 0;
    let table: Vec<_> = rpcs().collect();
    for (path, access) in &table {
        for role in UserRole::ALL {
            let home = match role {
                UserRole::CityOffice => CITY,
                UserRole::CountyOffice => COUNTY,
                _ => TOWN_A,
            };
            let away = match role {
                UserRole::CityOffice => None,
                UserRole::CountyOffice => Some(OTHER_COUNTY),
                _ => Some(OTHER_TOWN),
            };
            let subject = role.needs_subject().then(Uuid::new_v4);
            for (at, inside) in std::iter::once((home, true)).chain(away.map(|a| (a, false))) {
                let before = w.log_len(TOWN_A).await?;
                let req = with_token(&minted(role, at, subject), auth::MeRequest {});
                grpc.ready().await?;
                let codec = tonic_prost::ProstCodec::<auth::MeRequest, auth::MeRequest>::default();
                let route: tonic::codegen::http::uri::PathAndQuery = path.parse()?;
                let result = if path.ends_with("/ExportRows") {
                    grpc.server_streaming(req, route, codec).await.map(drop)
                } else {
                    grpc.unary(req, route, codec).await.map(drop)
                };
                let gate = result.as_ref().err().and_then(gate_reason);
                let expected = match (access, inside) {
                    (Access::Public, _) => None,
                    (Access::Roles(_), false) => Some("OUTSIDE_SCOPE"),
                    (Access::Roles(roles), true) if roles.allows(role) => None,
                    (Access::Roles(_), true) => Some("ROLE_NOT_ALLOWED"),
                };
                assert_eq!(
                    gate.as_deref(),
                    expected,
                    "{path} as {} of {at}: {result:?}",
                    role.as_str()
                );
                if expected.is_some() {
                    let status = result.expect_err("refused");
                    assert_eq!(status.code(), Code::PermissionDenied, "{path}");
                    assert_eq!(
                        w.log_len(TOWN_A).await?,
                        before,
                        "{path} as {} stored something",
                        role.as_str()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > table.len() * 6, "{checked} calls checked");
    w.mesh.shutdown().await
}

#[tokio::test]
async fn disabling_a_user_takes_effect_at_once_there_and_everywhere_after_sync()
-> anyhow::Result<()> {
    let w = World::start().await?;
    let office = w.login(COUNTY, "office").await?;
    let clerk_at_county = w.login(COUNTY, "clerk-a").await?;
    let clerk_at_town = w.login(TOWN_A, "clerk-a").await?;
    w.still_serves(COUNTY, &clerk_at_county).await?;
    auth::auth_client::AuthClient::new(w.people(COUNTY)?)
        .set_user_disabled(with_token(
            &office,
            auth::SetUserDisabledRequest {
                login: "clerk-a".into(),
                disabled: true,
                reason: "调离岗位".into(),
            },
        ))
        .await?;
    refused(
        dep::deputies_client::DeputiesClient::new(w.people(COUNTY)?)
            .list_deputies(with_token(
                &clerk_at_county,
                dep::ListDeputiesRequest::default(),
            ))
            .await,
        Code::Unauthenticated,
        Some("USER_DISABLED"),
    );
    // The township has not heard yet; once the record arrives the token is refused there too.
    w.still_serves(TOWN_A, &clerk_at_town).await?;
    w.mesh.sync_all().await?;
    let before = w.log_len(TOWN_A).await?;
    refused(
        dep::deputies_client::DeputiesClient::new(w.people(TOWN_A)?)
            .create_deputy(with_token(&clerk_at_town, deputy(TOWN_A, "停用后")))
            .await,
        Code::Unauthenticated,
        Some("USER_DISABLED"),
    );
    assert_eq!(w.log_len(TOWN_A).await?, before);
    // And the account can no longer log in, with the answer a wrong password gets.
    let status = refused(
        auth::auth_client::AuthClient::new(w.people(TOWN_A)?)
            .login(auth::LoginRequest {
                login: "clerk-a".into(),
                password: PASSWORD.into(),
            })
            .await,
        Code::Unauthenticated,
        None,
    );
    assert_eq!(status.message(), "wrong login or password");
    w.mesh.shutdown().await
}

#[tokio::test]
async fn passwords_change_reset_and_lock_after_repeated_failures() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut auth_a = auth::auth_client::AuthClient::new(w.people(TOWN_A)?);
    let wrong = |login: &str| auth::LoginRequest {
        login: login.into(),
        password: "not the password".into(),
    };
    // An unknown login and a wrong password get the same answer.
    let unknown = auth_a.login(wrong("nobody")).await.expect_err("unknown");
    let bad = auth_a.login(wrong("viewer-a")).await.expect_err("wrong");
    assert_eq!(
        (unknown.code(), unknown.message()),
        (bad.code(), bad.message())
    );
    for _ in 2..renda_api::users::LOCK_AFTER_FAILURES {
        auth_a.login(wrong("viewer-a")).await.expect_err("wrong");
    }
    let locked = auth_a.login(wrong("viewer-a")).await.expect_err("locked");
    assert_eq!(locked.code(), Code::ResourceExhausted, "{locked:?}");
    let zh = tonic_types::StatusExt::get_details_localized_message(&locked)
        .map(|m| m.message)
        .unwrap_or_default();
    assert!(zh.contains("锁定至"), "{zh}");
    // Locked means the right password too, until the lock ends or an office resets it.
    let right = auth_a
        .login(auth::LoginRequest {
            login: "viewer-a".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect_err("locked");
    assert_eq!(right.code(), Code::ResourceExhausted);
    let office = w.login(COUNTY, "office").await?;
    // The reset is made at the county and reaches the township by sync.
    auth::auth_client::AuthClient::new(w.people(COUNTY)?)
        .reset_password(with_token(
            &office,
            auth::ResetPasswordRequest {
                login: "clerk-b".into(),
                new_password: "a brand new password".into(),
            },
        ))
        .await?;
    w.mesh.sync_all().await?;
    let clerk_b = auth::auth_client::AuthClient::new(w.people(TOWN_B)?)
        .login(auth::LoginRequest {
            login: "clerk-b".into(),
            password: "a brand new password".into(),
        })
        .await?
        .into_inner()
        .token;
    // The person changes their own password (the current one asked again).
    let mut auth_b = auth::auth_client::AuthClient::new(w.people(TOWN_B)?);
    refused(
        auth_b
            .change_password(with_token(
                &clerk_b,
                auth::ChangePasswordRequest {
                    current_password: "wrong".into(),
                    new_password: "my own password 2".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
        None,
    );
    auth_b
        .change_password(with_token(
            &clerk_b,
            auth::ChangePasswordRequest {
                current_password: "a brand new password".into(),
                new_password: "my own password 2".into(),
            },
        ))
        .await?;
    auth_b
        .login(auth::LoginRequest {
            login: "clerk-b".into(),
            password: "my own password 2".into(),
        })
        .await?;
    w.mesh.shutdown().await
}

#[tokio::test]
async fn a_deputy_checks_in_with_the_signed_code_offline_and_a_clerk_enters_proxy()
-> anyhow::Result<()> {
    let w = World::start().await?;
    let clerk = w.login(TOWN_A, "clerk-a").await?;
    let deputy_id = w.create_deputy(TOWN_A, &clerk, "王代表").await?;
    let other_deputy = w.create_deputy(TOWN_A, &clerk, "李代表").await?;
    w.mesh.sync_all().await?;
    let office = w.login(COUNTY, "office").await?;
    auth::auth_client::AuthClient::new(w.people(COUNTY)?)
        .create_user(with_token(
            &office,
            auth::CreateUserRequest {
                login: "deputy-wang".into(),
                display_name: "王代表".into(),
                role: auth::Role::Deputy.into(),
                org_code: TOWN_A.to_string(),
                password: PASSWORD.into(),
                subject_id: deputy_id.clone(),
            },
        ))
        .await?;
    w.mesh.sync_all().await?;
    let me = w.login(TOWN_A, "deputy-wang").await?;
    // The township goes offline: everything below happens there alone.
    w.mesh
        .node(org(TOWN_A))?
        .sync
        .as_ref()
        .expect("a township has an upstream")
        .set_offline(true);
    let mut acts = act::activities_client::ActivitiesClient::new(w.people(TOWN_A)?);
    let starts = now_ms();
    let activity = |title: &str| act::CreateActivityRequest {
        kind: act::ActivityKind::Research.into(),
        title: title.into(),
        starts_at_ms: starts,
        venue: "镇政府会议室".into(),
    };
    let a = acts
        .create_activity(with_token(&clerk, activity("乡村道路调研")))
        .await?
        .into_inner();
    let other = acts
        .create_activity(with_token(&clerk, activity("另一项活动")))
        .await?
        .into_inner();
    let code_of = |id: &str, from: i64, until: i64| act::IssueCheckInCodeRequest {
        activity_id: id.into(),
        valid_from_ms: from,
        valid_until_ms: until,
    };
    let code = acts
        .issue_check_in_code(with_token(&clerk, code_of(&a.id, 0, 0)))
        .await?
        .into_inner();
    assert_eq!(code.issuer, TOWN_A.to_string());
    let expired = acts
        .issue_check_in_code(with_token(
            &clerk,
            code_of(&a.id, starts - 7_200_000, starts - 3_600_000),
        ))
        .await?
        .into_inner()
        .code;
    let foreign = acts
        .issue_check_in_code(with_token(&clerk, code_of(&other.id, 0, 0)))
        .await?
        .into_inner()
        .code;
    let forged = code
        .code
        .replace(&a.id.replace('-', ""), &Uuid::new_v4().simple().to_string());
    let check_in = |code: &str, deputy: &str| act::CheckInRequest {
        activity_id: a.id.clone(),
        deputy_id: deputy.into(),
        qr_token: code.into(),
        at_ms: 0,
    };
    let before = w.log_len(TOWN_A).await?;
    for (bad, what) in [
        (forged.as_str(), "forged"),
        (expired.as_str(), "expired"),
        (foreign.as_str(), "for another activity"),
        ("", "missing"),
    ] {
        refused(
            acts.check_in(with_token(&me, check_in(bad, &deputy_id)))
                .await,
            Code::InvalidArgument,
            None,
        );
        let _ = what;
    }
    // A deputy checks in only themselves.
    refused(
        acts.check_in(with_token(&me, check_in(&code.code, &other_deputy)))
            .await,
        Code::PermissionDenied,
        None,
    );
    assert_eq!(
        w.log_len(TOWN_A).await?,
        before,
        "a refused check-in stored something"
    );
    let done = acts
        .check_in(with_token(&me, check_in(&code.code, &deputy_id)))
        .await?
        .into_inner();
    let clerk_entered = acts
        .check_in(with_token(&clerk, check_in("", &other_deputy)))
        .await?
        .into_inner();
    let mode = |a: &act::Activity, d: &str| {
        a.participants
            .iter()
            .find(|p| p.deputy_id == d)
            .map(|p| (p.participation, p.check_in_mode))
    };
    assert_eq!(
        mode(&done, &deputy_id),
        Some((
            act::Participation::CheckedIn.into(),
            act::CheckInMode::Scan.into()
        ))
    );
    assert_eq!(
        mode(&clerk_entered, &other_deputy),
        Some((
            act::Participation::CheckedIn.into(),
            act::CheckInMode::Proxy.into()
        ))
    );
    // The deputies report tells a deputy's own check-in from one entered on their behalf.
    let year = chrono::Datelike::year(&(chrono::Utc::now() + chrono::Duration::hours(8)));
    let report = rep::reports_client::ReportsClient::new(w.people(TOWN_A)?)
        .get_report(with_token(
            &clerk,
            rep::ReportRequest {
                name: "deputies".into(),
                org_code: TOWN_A.to_string(),
                from: Some(jan1(year)),
                to: Some(jan1(year + 1)),
                freshness_limit_hours: 72,
                freshness_limit_minutes: 0,
            },
        ))
        .await?
        .into_inner();
    let by_org = report
        .tables
        .iter()
        .find(|t| t.key == "by_org")
        .expect("a by-unit table");
    let column = |key: &str| {
        by_org
            .columns
            .iter()
            .position(|c| c.key == key)
            .expect("the column")
    };
    let row = by_org
        .rows
        .iter()
        .find(|r| {
            matches!(r.cells.first().and_then(|c| c.kind.as_ref()),
                Some(rep::cell::Kind::Text(t)) if *t == TOWN_A.to_string())
        })
        .expect("township A's row");
    let int = |i: usize| match row.cells[i].kind {
        Some(rep::cell::Kind::Int(n)) => n,
        _ => -1,
    };
    assert_eq!(int(column("check_ins")), 2);
    assert_eq!(int(column("proxy_check_ins")), 1);
    // The deputy's own record holds it; another deputy's record is not theirs to read.
    let mine = acts
        .duty_records(with_token(
            &me,
            act::DutyRecordsRequest {
                deputy_id: deputy_id.clone(),
                period: None,
            },
        ))
        .await?
        .into_inner();
    assert_eq!(mine.records.len(), 1, "{mine:?}");
    assert_eq!(mine.records[0].kind(), act::DutyRecordKind::CheckIn);
    refused(
        acts.duty_records(with_token(
            &me,
            act::DutyRecordsRequest {
                deputy_id: other_deputy.clone(),
                period: None,
            },
        ))
        .await,
        Code::PermissionDenied,
        None,
    );
    // A deputy cannot enter the register.
    refused(
        dep::deputies_client::DeputiesClient::new(w.people(TOWN_A)?)
            .create_deputy(with_token(&me, deputy(TOWN_A, "自封代表")))
            .await,
        Code::PermissionDenied,
        Some("ROLE_NOT_ALLOWED"),
    );
    w.mesh.shutdown().await
}

#[tokio::test]
async fn a_rotated_key_keeps_old_tokens_until_it_is_retired() -> anyhow::Result<()> {
    let mut w = World::start().await?;
    let old = w.login(TOWN_A, "clerk-a").await?;
    assert!(old.starts_with("v2.demo."));
    let port = w.mesh.node(org(TOWN_A))?.grpc_addr.port();
    let mut config = w.mesh.stop(org(TOWN_A)).await?;
    config.auth.token_secret = Some(b"the next secret of this mesh, 32+ bytes".to_vec());
    config.auth.token_key_id = "2027a".into();
    config.auth.previous_token_keys = vec![("demo".into(), DEMO_TOKEN_SECRET.to_vec())];
    w.mesh.restart(org(TOWN_A), config.clone(), port).await?;
    w.still_serves(TOWN_A, &old).await?;
    let new = w.login(TOWN_A, "clerk-a").await?;
    assert!(new.starts_with("v2.2027a."), "{new}");
    w.still_serves(TOWN_A, &new).await?;
    // The old key retired: its tokens are refused, the new ones still work.
    let mut config = w.mesh.stop(org(TOWN_A)).await?;
    config.auth.previous_token_keys.clear();
    w.mesh.restart(org(TOWN_A), config, port).await?;
    refused(
        dep::deputies_client::DeputiesClient::new(w.people(TOWN_A)?)
            .list_deputies(with_token(&old, dep::ListDeputiesRequest::default()))
            .await,
        Code::Unauthenticated,
        Some("BAD_TOKEN"),
    );
    w.still_serves(TOWN_A, &new).await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    w.mesh.shutdown().await
}

#[tokio::test]
async fn health_answers_per_service_and_reflection_speaks_v1_and_v1alpha() -> anyhow::Result<()> {
    let w = World::start().await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(w.people(TOWN_A)?);
    for service in ["", "renda.deputy.v1.Deputies", "renda.auth.v1.Auth"] {
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        assert_eq!(
            reply.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let missing = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "renda.nothing.v1.Nope".into(),
        })
        .await;
    refused(missing, Code::NotFound, None);
    use tonic_reflection::pb::{v1, v1alpha};
    let mut r1 = v1::server_reflection_client::ServerReflectionClient::new(w.people(TOWN_A)?);
    let reply = r1
        .server_reflection_info(tokio_stream::iter(vec![v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        }]))
        .await?
        .into_inner()
        .message()
        .await?
        .expect("a reply");
    assert!(format!("{reply:?}").contains("renda.deputy.v1.Deputies"));
    let mut ra = v1alpha::server_reflection_client::ServerReflectionClient::new(w.people(TOWN_A)?);
    let reply = ra
        .server_reflection_info(tokio_stream::iter(vec![v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        }]))
        .await?
        .into_inner()
        .message()
        .await?
        .expect("a reply");
    assert!(format!("{reply:?}").contains("renda.auth.v1.Auth"));
    w.mesh.shutdown().await
}

/// A person logs in, lists their township's deputies, and a record's history names them.
#[tokio::test]
async fn a_person_logs_in_and_history_names_who_did_what() -> anyhow::Result<()> {
    let w = World::start().await?;
    let person = Person::login(w.people(TOWN_A)?, "clerk-a", PASSWORD).await?;
    let mut client =
        dep::deputies_client::DeputiesClient::with_interceptor(w.people(TOWN_A)?, person.clone());
    let id = client
        .create_deputy(deputy(TOWN_A, "赵代表"))
        .await?
        .into_inner()
        .id;
    let listed = client
        .list_deputies(dep::ListDeputiesRequest::default())
        .await?
        .into_inner();
    assert!(listed.deputies.iter().any(|d| d.id == id));
    let history = renda_proto::org::v1::records_client::RecordsClient::with_interceptor(
        w.people(TOWN_A)?,
        person,
    )
    .history(renda_proto::org::v1::HistoryRequest {
        record_id: id.clone(),
    })
    .await?
    .into_inner();
    assert!(!history.entries.is_empty());
    for e in &history.entries {
        assert_eq!(e.author_name, "clerk-a", "{e:?}");
        assert_eq!(e.author_unit, format!("单位{TOWN_A}"), "{e:?}");
    }
    // Township B's clerk, at the county, cannot read A's record history.
    w.mesh.sync_all().await?;
    let clerk_b = w.login(COUNTY, "clerk-b").await?;
    refused(
        renda_proto::org::v1::records_client::RecordsClient::new(w.people(COUNTY)?)
            .history(with_token(
                &clerk_b,
                renda_proto::org::v1::HistoryRequest { record_id: id },
            ))
            .await,
        Code::PermissionDenied,
        None,
    );
    w.mesh.shutdown().await
}

/// 1 January of `year`, as a report period's bound.
fn jan1(year: i32) -> renda_proto::types::v1::Date {
    renda_proto::types::v1::Date {
        year,
        month: 1,
        day: 1,
    }
}
