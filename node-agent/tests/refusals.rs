//! What a node refuses, over real mutual TLS on loopback: a peer from another CA, a peer that
//! claims another org unit than its certificate, another protocol version, operations outside
//! the sender's authority (quarantined, visible, not relayed), and damaged or foreign bundles.
//! Each refusal leaves the receiving node's log as it was. And what a bundle that was accepted
//! spares the link afterwards, and how soon a returning link is used.

mod common;

use common::{deputies, org};
use std::sync::Arc;

use anyhow::Context as _;
use node_agent::certs::{CertificateAuthority, Hosts};
use node_agent::mesh::Mesh;
use renda_proto::sync::v1 as pb;
use renda_proto::sync::v1::child_message::Body;
use renda_replica::{ActorId, Author, OrgCode, RecordId, Replica, Value};
use renda_sync::bundle;
use renda_tls as tls;
use renda_tls::{Level, NodeIdentity};
use tokio_stream::StreamExt as _;

const CITY: u64 = 370_200;
const COUNTY: u64 = 370_202;
const TOWNSHIP: u64 = 370_202_001;

fn files(mesh: &Mesh, of: OrgCode) -> renda_tls::TlsFiles {
    let certs = mesh.dir.join("certs");
    renda_tls::TlsFiles {
        ca: certs.join("ca.pem"),
        cert: certs.join(format!("{of}.pem")),
        key: certs.join(format!("{of}.key")),
    }
}

/// A channel to `to`'s node presenting the given certificate files.
fn channel_with(
    mesh: &Mesh,
    to: OrgCode,
    files: &renda_tls::TlsFiles,
) -> anyhow::Result<tonic::transport::Channel> {
    let port = mesh.node(to)?.grpc_addr.port();
    let uri = format!("https://localhost:{port}").parse()?;
    Ok(tls::channel(
        &uri,
        tls::Material::from_files(files)?.client_config()?,
    )?)
}

/// Certificates for `who` from a CA that is not the mesh's, written next to the mesh's.
fn rogue(mesh: &Mesh, who: OrgCode) -> anyhow::Result<renda_tls::TlsFiles> {
    let dir = mesh.dir.join("rogue");
    let ca = CertificateAuthority::generate(&CITY.to_string().parse()?)?;
    ca.write(&dir)?;
    let identity = NodeIdentity::new(Level::Township, who.to_string().parse()?)?;
    let cert = ca.issue(
        &identity,
        &Hosts {
            dns: vec!["localhost".into()],
            ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        },
    )?;
    let (cert, key) = cert.write(&dir, &identity.org_code)?;
    Ok(renda_tls::TlsFiles {
        // Trust the real CA for the server, present the rogue certificate.
        ca: mesh.dir.join("certs").join("ca.pem"),
        cert,
        key,
    })
}

async fn start(orgs: &[u64]) -> anyhow::Result<(tempfile::TempDir, Mesh)> {
    renda_tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let orgs: Vec<OrgCode> = orgs.iter().map(|c| org(*c)).collect();
    let mesh = Mesh::start(dir.path(), &orgs, node_agent::domain::deputy_work()).await?;
    Ok((dir, mesh))
}

fn hello(from: OrgCode, protocol: u32, schema: u32) -> pb::ChildMessage {
    pb::ChildMessage {
        body: Some(Body::Hello(pb::Hello {
            protocol_version: protocol,
            schema_version: schema,
            org_code: from.to_string(),
            level: from.level().as_str().into(),
            actor: 77,
            pull_after: None,
            max_batch_ops: 100,
            push_done: false,
            report: None,
        })),
    }
}

fn push(ops: Vec<Vec<u8>>) -> pb::ChildMessage {
    pb::ChildMessage {
        body: Some(Body::Push(pb::PushBatch { batch_no: 1, ops })),
    }
}

/// Deputy operations made by a replica at `origin`: the record's org and a name.
fn deputy_ops(
    schema: Arc<renda_replica::Schema>,
    origin: OrgCode,
    record_org: OrgCode,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let kind = schema.kind_named("deputy").context("deputy kind")?;
    let (kind_id, name) = (kind.id, kind.field_named("name").context("name field")?.id);
    let actor = ActorId::from_random(origin.get());
    let mut replica = Replica::new(actor, origin, schema.clone());
    let record = RecordId(uuid::Uuid::now_v7());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let author = Author {
        org: origin,
        number: 1,
    };
    let a = replica.local(record, kind_id, author, now, |r| {
        r.put(actor, renda_replica::schema::ORG, Value::Org(record_org))
    })?;
    let b = replica.local(record, kind_id, author, now, |r| {
        r.put(actor, name, Value::Text("冒名代表".into()))
    })?;
    Ok(vec![a.encode(), b.encode()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_is_refused() -> anyhow::Result<()> {
    let (_dir, mesh) = start(&[CITY, COUNTY]).await?;
    let county = org(COUNTY);
    let before = mesh.node(county)?.store.log_len().await?;
    let rogue = rogue(&mesh, org(TOWNSHIP))?;
    let mut client =
        pb::replication_client::ReplicationClient::new(channel_with(&mesh, county, &rogue)?);
    // TLS 1.3 completes the client's side of the handshake; the refusal shows on the call.
    let err = client
        .sync(tokio_stream::iter(vec![hello(org(TOWNSHIP), 1, 2)]))
        .await
        .expect_err("a certificate from another CA must be refused");
    let text = format!("{err:?}");
    assert!(
        text.contains("certificate")
            || text.contains("tls")
            || text.contains("Decrypt")
            || text.contains("transport"),
        "unexpected error: {text}"
    );
    assert_eq!(mesh.node(county)?.store.log_len().await?, before);
    mesh.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_claiming_another_org_unit_is_refused_naming_both() -> anyhow::Result<()> {
    let (_dir, mesh) = start(&[CITY, COUNTY, TOWNSHIP]).await?;
    let county = org(COUNTY);
    let schema = mesh.node(county)?.store.schema().version;
    let before = mesh.node(county)?.store.log_len().await?;
    // The township's real certificate, but the hello says 370202002.
    let mut client = pb::replication_client::ReplicationClient::new(channel_with(
        &mesh,
        county,
        &files(&mesh, org(TOWNSHIP)),
    )?);
    let ops = deputy_ops(
        mesh.node(county)?.store.schema().clone(),
        org(370_202_002),
        org(370_202_002),
    )?;
    let status = client
        .sync(tokio_stream::iter(vec![
            hello(org(370_202_002), 1, schema),
            push(ops),
        ]))
        .await
        .expect_err("a claim the certificate does not back must be refused");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("certificate names township 370202001")
            && status.message().contains("claims township 370202002"),
        "{}",
        status.message()
    );
    assert_eq!(
        mesh.node(county)?.store.log_len().await?,
        before,
        "nothing applied"
    );
    mesh.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_version_mismatch_is_refused_and_nothing_applied() -> anyhow::Result<()> {
    let (_dir, mesh) = start(&[CITY, COUNTY, TOWNSHIP]).await?;
    let county = org(COUNTY);
    let store = &mesh.node(county)?.store;
    let before = store.log_len().await?;
    let ops = deputy_ops(store.schema().clone(), org(TOWNSHIP), org(TOWNSHIP))?;
    let mut client = pb::replication_client::ReplicationClient::new(channel_with(
        &mesh,
        county,
        &files(&mesh, org(TOWNSHIP)),
    )?);
    let status = client
        .sync(tokio_stream::iter(vec![
            hello(org(TOWNSHIP), 99, store.schema().version),
            push(ops.clone()),
        ]))
        .await
        .expect_err("another protocol version must be refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("protocol version mismatch"),
        "{}",
        status.message()
    );
    let status = client
        .sync(tokio_stream::iter(vec![
            hello(org(TOWNSHIP), 1, store.schema().version + 1),
            push(ops),
        ]))
        .await
        .expect_err("another schema version must be refused");
    assert!(
        status.message().contains("schema version mismatch"),
        "{}",
        status.message()
    );
    assert_eq!(store.log_len().await?, before, "nothing applied");
    mesh.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_outside_the_senders_authority_are_quarantined_and_not_relayed()
-> anyhow::Result<()> {
    let (_dir, mesh) = start(&[CITY, COUNTY, TOWNSHIP]).await?;
    let (county, township, city) = (org(COUNTY), org(TOWNSHIP), org(CITY));
    let store = mesh.node(county)?.store.clone();
    let schema = store.schema().clone();
    // Another township's deputy, sent by 370202001: outside its subtree.
    let foreign = deputy_ops(schema.clone(), org(370_202_002), org(370_202_002))?;
    // The township's own deputy: accepted.
    let own = deputy_ops(schema.clone(), township, township)?;
    let mut client = pb::replication_client::ReplicationClient::new(channel_with(
        &mesh,
        county,
        &files(&mesh, township),
    )?);
    let mut batch = own.clone();
    batch.extend(foreign.clone());
    let mut replies = client
        .sync(tokio_stream::iter(vec![
            hello(township, 1, schema.version),
            push(batch),
            pb::ChildMessage {
                body: Some(Body::PushDone(pb::PushDone {})),
            },
        ]))
        .await?
        .into_inner();
    let mut ack = None;
    while let Some(message) = replies.next().await {
        if let Some(pb::parent_message::Body::Ack(a)) = message?.body {
            ack = Some(a);
        }
    }
    let ack = ack.context("the push was acknowledged")?;
    assert_eq!((ack.applied, ack.quarantined), (2, 2), "{ack:?}");
    let quarantined = store.quarantine(10).await?;
    assert_eq!(quarantined.len(), 2);
    assert!(
        quarantined
            .iter()
            .all(|q| q.reason.contains("outside the sender 370202001's subtree")),
        "{quarantined:?}"
    );
    // The county relays what it accepted, and only that.
    mesh.sync(county).await?;
    let city_store = &mesh.node(city)?.store;
    let own_record = renda_replica::Op::decode_unchecked(&own[0])?.record;
    let foreign_record = renda_replica::Op::decode_unchecked(&foreign[0])?.record;
    assert!(
        city_store.record(own_record).await?.is_some(),
        "accepted operations are relayed"
    );
    assert!(
        city_store.record(foreign_record).await?.is_none(),
        "quarantined operations are not"
    );
    assert_eq!(city_store.quarantine_count().await?, 0);
    mesh.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_foreign_bundles_are_refused_and_nothing_applied() -> anyhow::Result<()> {
    let (dir, mut mesh) = start(&[CITY, COUNTY, TOWNSHIP]).await?;
    let (county, township) = (org(COUNTY), org(TOWNSHIP));
    // The township works offline and exports what its county lacks.
    let t_config = mesh.stop(township).await?;
    let t_store = stopped_store(&mesh, &t_config, township).await?;
    deputies(&t_store, township, 1).await?;
    let signer = signer(&mesh, township)?;
    let path = dir.path().join("to-county.bundle");
    let exported = bundle::export(&t_store, &signer, county, false, &path).await?;
    assert!(exported.ops > 0);
    t_store.close().await;

    let c_store = mesh.node(county)?.store.clone();
    let ca = std::fs::read(mesh.dir.join("certs").join("ca.pem"))?;
    let policy = renda_sync::Policy::new(node_agent::domain::deputy_work().rule);
    let before = c_store.log_len().await?;
    let good = std::fs::read(&path)?;

    let tampered_path = dir.path().join("tampered.bundle");
    let mut tampered = good.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    std::fs::write(&tampered_path, &tampered)?;
    let err = bundle::import(&c_store, &policy, &ca, &tampered_path)
        .await
        .expect_err("tampered");
    assert!(
        err.to_string().contains("tampered") || err.to_string().contains("malformed"),
        "{err}"
    );

    let truncated_path = dir.path().join("truncated.bundle");
    std::fs::write(&truncated_path, &good[..good.len() - 10])?;
    let err = bundle::import(&c_store, &policy, &ca, &truncated_path)
        .await
        .expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");

    let rogue_files = rogue(&mesh, township)?;
    let rogue_signer = bundle::Signer::from_pem(
        &std::fs::read(&rogue_files.cert)?,
        &std::fs::read(&rogue_files.key)?,
    )
    .map_err(anyhow::Error::msg)?;
    let t_store = stopped_store(&mesh, &t_config, township).await?;
    let foreign_path = dir.path().join("foreign.bundle");
    bundle::export(&t_store, &rogue_signer, county, true, &foreign_path).await?;
    t_store.close().await;
    let err = bundle::import(&c_store, &policy, &ca, &foreign_path)
        .await
        .expect_err("foreign");
    assert!(err.to_string().contains("unknown node"), "{err}");

    // The signer's certificate must be valid when the bundle is read: checked against the
    // certificate's own window, a century on and before it was issued (the day before yesterday).
    let now_s = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    let schema_version = c_store.schema().version;
    bundle::verify(&good, &ca, county, schema_version, now_s).map_err(anyhow::Error::msg)?;
    for (when, at) in [
        ("expired", now_s + 100 * 365 * 86_400),
        ("not yet valid", now_s - 3 * 86_400),
    ] {
        let err = bundle::verify(&good, &ca, county, schema_version, at).expect_err(when);
        assert!(
            err.contains("is not valid at") && err.contains("renew the sender's certificate"),
            "{when}: {err}"
        );
    }

    assert_eq!(
        c_store.log_len().await?,
        before,
        "nothing of a refused bundle is applied"
    );
    let (from, report) = bundle::import(&c_store, &policy, &ca, &path).await?;
    assert_eq!(from, township);
    assert_eq!(report.applied, exported.ops);
    assert_eq!(report.quarantined, 0);
    mesh.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_an_upstream_whose_certificate_names_another_unit() -> anyhow::Result<()> {
    let (_dir, mesh) = start(&[CITY, COUNTY]).await?;
    // Dial the county's address expecting the city there.
    let files = files(&mesh, org(COUNTY));
    let port = mesh.node(org(COUNTY))?.grpc_addr.port();
    let uri = format!("https://localhost:{port}").parse()?;
    let config =
        tls::Material::from_files(&files)?.client_config_for(renda_org::OrgCode::new(CITY)?)?;
    let mut client = pb::replication_client::ReplicationClient::new(tls::channel(&uri, config)?);
    let err = client
        .status(pb::StatusRequest {})
        .await
        .expect_err("the wrong server must be refused");
    let text = format!("{err:?}");
    assert!(
        text.contains("names county 370202 but this node dialed 370200"),
        "the refusal does not say why: {text}"
    );
    mesh.shutdown().await
}

/// The store of stopped node `at` (its `config` as `Mesh::stop` returned it), opened by hand.
async fn stopped_store(
    mesh: &Mesh,
    config: &node_agent::config::Config,
    at: OrgCode,
) -> anyhow::Result<renda_store::Store> {
    let schema = mesh.node(org(CITY))?.store.schema().clone();
    Ok(renda_store::Store::open(&config.storage.url, schema, at, Default::default()).await?)
}

/// `at`'s bundle signer, from its node certificate and key.
fn signer(mesh: &Mesh, at: OrgCode) -> anyhow::Result<bundle::Signer> {
    let files = files(mesh, at);
    bundle::Signer::from_pem(&std::fs::read(&files.cert)?, &std::fs::read(&files.key)?)
        .map_err(anyhow::Error::msg)
}

/// A township's offline work carried to its county on a USB bundle is not pushed again when its
/// link comes back: the county's welcome says what it imported and the township's push
/// checkpoint moves past it. A bundle exported but never imported is pushed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_carried_up_is_not_pushed_again_when_the_link_returns() -> anyhow::Result<()> {
    let (dir, mut mesh) = start(&[CITY, COUNTY, TOWNSHIP]).await?;
    let (county, township) = (org(COUNTY), org(TOWNSHIP));
    let port = mesh.node(township)?.grpc_addr.port();
    let mut t_config = mesh.stop(township).await?;
    let t_store = stopped_store(&mesh, &t_config, township).await?;
    let signer = signer(&mesh, township)?;
    deputies(&t_store, township, 120).await?;
    let carried = dir.path().join("carried.bundle");
    let exported = bundle::export(&t_store, &signer, county, false, &carried).await?;
    assert!(exported.ops >= 120);
    // Written after the bundle: these still go up by the link.
    deputies(&t_store, township, 5).await?;
    t_store.close().await;

    let c_store = mesh.node(county)?.store.clone();
    let ca = std::fs::read(mesh.dir.join("certs").join("ca.pem"))?;
    let policy = renda_sync::Policy::new(node_agent::domain::deputy_work().rule);
    let (_, imported) = bundle::import(&c_store, &policy, &ca, &carried).await?;
    assert_eq!(imported.applied, exported.ops);

    // Only the explicit sync below runs a session.
    t_config.sync.interval = std::time::Duration::from_secs(3600);
    mesh.restart(township, t_config.clone(), port).await?;
    let session = mesh.sync(township).await?;
    assert!(
        session.bundled,
        "the county's welcome moved the push checkpoint"
    );
    assert_eq!(
        session.pushed, 5,
        "only what the bundle did not carry is pushed"
    );
    let t_store = mesh.node(township)?.store.clone();
    assert_eq!(t_store.pending_push(&county.to_string()).await?, 0);
    assert_eq!(
        c_store.integrity_check().await?,
        Vec::<String>::new(),
        "the county's store is sound"
    );

    // A bundle that never reached the county: its operations go up by the link.
    let lost = dir.path().join("lost.bundle");
    let t_config = mesh.stop(township).await?;
    let t_store = stopped_store(&mesh, &t_config, township).await?;
    deputies(&t_store, township, 7).await?;
    bundle::export(&t_store, &signer, county, false, &lost).await?;
    t_store.close().await;
    mesh.restart(township, t_config, port).await?;
    let session = mesh.sync(township).await?;
    assert!(!session.bundled);
    assert_eq!(
        session.pushed, 7,
        "nothing is skipped for a bundle the county never saw"
    );
    mesh.shutdown().await
}

/// A township whose upstreams were all down uses its county as soon as it answers again, not at
/// the end of its backoff (here ten minutes): a health probe every two seconds starts the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_link_is_used_within_seconds_whatever_the_backoff() -> anyhow::Result<()> {
    let (_dir, mut mesh) = start(&[CITY, COUNTY, TOWNSHIP]).await?;
    let (city, county, township) = (org(CITY), org(COUNTY), org(TOWNSHIP));
    let port = |mesh: &Mesh, at| mesh.node(at).map(|n| n.grpc_addr.port());
    let (t_port, c_port) = (port(&mesh, township)?, port(&mesh, county)?);
    let mut t_config = mesh.stop(township).await?;
    t_config.sync.interval = std::time::Duration::from_secs(3600);
    t_config.sync.backoff_min = std::time::Duration::from_secs(600);
    t_config.sync.backoff_max = std::time::Duration::from_secs(600);
    mesh.restart(township, t_config, t_port).await?;
    let c_config = mesh.stop(county).await?;
    mesh.stop(city).await?;

    let t_store = mesh.node(township)?.store.clone();
    deputies(&t_store, township, 3).await?;
    assert!(
        mesh.sync(township).await.is_err(),
        "no upstream answers: the township is in its ten-minute backoff"
    );
    let pending = t_store.pending_push(&county.to_string()).await?;
    assert!(pending >= 3, "{pending} operations wait for the county");

    mesh.restart(county, c_config, c_port).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let pending = t_store.pending_push(&county.to_string()).await?;
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "30 s after the county came back, {pending} operations still wait for it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    mesh.shutdown().await
}
