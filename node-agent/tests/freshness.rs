//! Freshness and status that tell the truth (#12, items 7 to 10), on a running mesh over real
//! TLS: a township is as fresh as its own last contact (a live session, or the making of the
//! last bundle imported from it), never as its county; one that never reported is stale and
//! says so; a child that stops calling goes offline after a few of its own sync intervals; a
//! township's console shows the link it actually uses; the stale limit can be minutes.

use node_agent::mesh::{DEMO_TOKEN_SECRET, Mesh};
use renda_accounts::{Claims, SigningKey, TokenSigner, UserRole};
use renda_proto::report::v1 as rep;
use renda_proto::sync::v1 as syn;
use renda_replica::OrgCode;
use renda_store::PeerSync;
use renda_sync::authority::Direction;
use renda_sync::bundle::{self, Verified};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{deputies, org};

const CITY: u64 = 370_200;
const COUNTY: u64 = 370_202;
const SYNCED: u64 = 370_202_001;
const NEVER: u64 = 370_202_002;
const BY_USB: u64 = 370_202_003;
const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn token(role: UserRole, at: u64) -> anyhow::Result<String> {
    let signer =
        TokenSigner::with_keys(SigningKey::new("demo", DEMO_TOKEN_SECRET.to_vec())?, vec![])?;
    let org = renda_domain::org::OrgCode::parse(&at.to_string())?;
    Ok(signer.issue(&Claims {
        user_id: uuid::Uuid::new_v4(),
        user: 9,
        org,
        role,
        subject: None,
        expires_ms: now_ms() + 3_600_000,
    }))
}

fn request(
    limit_hours: u32,
    limit_minutes: u32,
    at: u64,
    token: &str,
) -> tonic::Request<rep::ReportRequest> {
    let day = |year| renda_proto::types::v1::Date {
        year,
        month: 1,
        day: 1,
    };
    let mut req = tonic::Request::new(rep::ReportRequest {
        name: "deputies".into(),
        org_code: at.to_string(),
        from: Some(day(2026)),
        to: Some(day(2027)),
        freshness_limit_hours: limit_hours,
        freshness_limit_minutes: limit_minutes,
    });
    if let Ok(value) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", value);
    }
    req
}

async fn report(mesh: &Mesh, at: u64, role: UserRole, minutes: u32) -> anyhow::Result<rep::Report> {
    let token = token(role, at)?;
    Ok(
        rep::reports_client::ReportsClient::new(mesh.person_channel(org(at))?)
            .get_report(request(0, minutes, at, &token))
            .await?
            .into_inner(),
    )
}

fn township(report: &rep::Report, code: u64) -> anyhow::Result<&rep::TownshipFreshness> {
    report
        .freshness
        .iter()
        .find(|f| f.org_code == code.to_string())
        .ok_or_else(|| anyhow::anyhow!("{code} missing from {:?}", report.freshness))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_is_as_fresh_as_its_own_last_contact() -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let orgs: Vec<OrgCode> = [CITY, COUNTY, SYNCED, NEVER, BY_USB]
        .into_iter()
        .map(org)
        .collect();
    let mesh = Mesh::start(dir.path(), &orgs, node_agent::domain::deputy_work()).await?;
    let units: Vec<(renda_domain::org::OrgCode, String)> = orgs
        .iter()
        .map(|o| {
            Ok((
                renda_domain::org::OrgCode::parse(&o.to_string())?,
                format!("单位{o}"),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    renda_api::org::bootstrap_units(
        &mesh.node(org(CITY))?.store,
        &renda_api::ApiContext::default(),
        &units,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The county takes the org tree from the city; one township syncs; one never does; one
    // moves only by USB, its last bundle a month old.
    mesh.sync(org(COUNTY)).await?;
    deputies(&mesh.node(org(SYNCED))?.store, org(SYNCED), 3).await?;
    mesh.sync(org(SYNCED)).await?;
    let usb = mesh.node(org(BY_USB))?.store.clone();
    deputies(&usb, org(BY_USB), 4).await?;
    let mut prepared = bundle::prepare(&usb, org(COUNTY), false).await?;
    let made = now_ms() - 30 * DAY_MS;
    prepared.bundle.created_unix_ms = made;
    let county_store = mesh.node(org(COUNTY))?.store.clone();
    let applied = bundle::apply(
        &county_store,
        &renda_sync::Policy::org_tree_only(),
        Verified {
            from: org(BY_USB),
            direction: Direction::FromChild(org(BY_USB)),
            bundle: prepared.bundle,
        },
    )
    .await?;
    assert_eq!(applied.applied, 4);
    mesh.sync(org(COUNTY)).await?;

    for (at, role) in [
        (COUNTY, UserRole::CountyOffice),
        (CITY, UserRole::CityOffice),
    ] {
        let r = report(&mesh, at, role, 0).await?;
        let synced = township(&r, SYNCED)?;
        assert!(
            !synced.stale && synced.last_sync_unix_ms > now_ms() - DAY_MS,
            "{at}: {synced:?}"
        );
        let never = township(&r, NEVER)?;
        assert_eq!(
            (never.last_sync_unix_ms, never.stale, never.source.as_str()),
            (0, true, ""),
            "{at}: a township that never reported is stale, never its county's freshness"
        );
        let by_usb = township(&r, BY_USB)?;
        assert_eq!(
            (by_usb.last_sync_unix_ms, by_usb.stale),
            (made, true),
            "{at}: a township on USB is as fresh as its last bundle: {by_usb:?}"
        );
        assert!(
            r.stale && r.stale_note_zh.contains("超过72小时未同步"),
            "{}",
            r.stale_note_zh
        );
    }
    let at_county = report(&mesh, COUNTY, UserRole::CountyOffice, 0).await?;
    assert_eq!(township(&at_county, BY_USB)?.source, "bundle");

    // The stale limit in minutes; given twice, refused naming the field.
    let r = report(&mesh, COUNTY, UserRole::CountyOffice, 90).await?;
    assert!(
        r.stale_note_zh.contains("超过1小时30分钟未同步"),
        "{}",
        r.stale_note_zh
    );
    let token = token(UserRole::CountyOffice, COUNTY)?;
    let both = rep::reports_client::ReportsClient::new(mesh.person_channel(org(COUNTY))?)
        .get_report(request(2, 30, COUNTY, &token))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("hours and minutes together were accepted"))?;
    assert_eq!(both.code(), tonic::Code::InvalidArgument);
    assert!(
        both.message().contains("freshness_limit_minutes"),
        "{both:?}"
    );

    // A child that stops calling goes offline at its parent after a few of its own sync
    // intervals (the mesh's are an hour): its last session four hours ago.
    let status = |mesh: &Mesh| {
        let channel = mesh.channel(org(COUNTY));
        async move {
            let reply = syn::replication_client::ReplicationClient::new(channel?)
                .status(syn::StatusRequest {})
                .await?
                .into_inner();
            let links = reply.self_.map(|s| s.peers).unwrap_or_default();
            anyhow::Ok(
                links
                    .into_iter()
                    .find(|p| p.peer_org_code == SYNCED.to_string()),
            )
        }
    };
    let link = status(&mesh)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no link to {SYNCED}"))?;
    assert!(link.online, "{link:?}");
    let mut state = county_store
        .peer_sync(&SYNCED.to_string())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no sync state for {SYNCED}"))?;
    state.last_success = chrono::DateTime::from_timestamp_millis(now_ms() - 4 * 3_600_000);
    county_store.set_peer_sync(&state).await?;
    let link = status(&mesh)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no link to {SYNCED}"))?;
    assert!(!link.online, "silent for four intervals: {link:?}");

    // The township's console shows the link it uses (its county, synced a moment ago), not
    // the city fallback it tried once during an outage and never reached.
    let t_store = mesh.node(org(SYNCED))?.store.clone();
    t_store
        .set_peer_sync(&PeerSync {
            peer: CITY.to_string(),
            last_error: Some("cannot reach 370200".into()),
            last_error_at: chrono::DateTime::from_timestamp_millis(now_ms() - 3_600_000),
            ..Default::default()
        })
        .await?;
    let http = mesh
        .node(org(SYNCED))?
        .http_addr
        .ok_or_else(|| anyhow::anyhow!("the township serves no console"))?;
    let header = console_status(http, &token_for_clerk()?).await?;
    let county_link = t_store
        .peer_sync(&COUNTY.to_string())
        .await?
        .and_then(|s| s.last_success)
        .map(|t| t.timestamp_millis());
    assert_eq!(header["node"]["online"], true, "{header}");
    assert_eq!(
        header["node"]["last_sync_ms"].as_i64(),
        county_link,
        "{header}"
    );
    mesh.shutdown().await
}

fn token_for_clerk() -> anyhow::Result<String> {
    token(UserRole::TownshipClerk, SYNCED)
}

/// `GET /api/status` of a console, with a session cookie, over plain HTTP/1.1.
async fn console_status(
    addr: std::net::SocketAddr,
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        // The console's session cookie (renda_console's `session::COOKIE`).
        "GET /api/status HTTP/1.1\r\nHost: localhost\r\nCookie: renda_session={token}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8(response)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP body in {text}"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(serde_json::from_str(body)?)
}
