//! Mutual TLS between nodes, end to end: real certificates from `certs`, a real tonic server on
//! `127.0.0.1:0` built by `server::Bound`, and real tonic clients.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use node_agent::certs::{CertificateAuthority, Hosts, NodeCertificate};
use node_agent::server::Bound;
use renda_tls::{self as tls, Material};
use renda_tls::{Level, NodeIdentity};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{NamedService, UnaryService};
use tonic::transport::{Channel, Uri};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_prost::ProstCodec;

/// What a caller says it is, as a sync handshake does. Defined here rather than taken from
/// `renda.sync.v1` so that this test does not depend on the shape of the sync protocol.
#[derive(Clone, PartialEq, prost::Message)]
struct Claim {
    #[prost(string, tag = "1")]
    org_code: String,
    #[prost(string, tag = "2")]
    level: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Accepted {
    #[prost(string, tag = "1")]
    org_code: String,
    #[prost(string, tag = "2")]
    level: String,
}

const CLAIM_PATH: &str = "/renda.test.ClaimChecker/Check";

/// A one-method gRPC service whose handler checks the caller's claim against its certificate,
/// the way the sync engine's handshake does.
#[derive(Clone)]
struct ClaimChecker;

impl NamedService for ClaimChecker {
    const NAME: &'static str = "renda.test.ClaimChecker";
}

struct Check;

impl UnaryService<Claim> for Check {
    type Response = Accepted;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Accepted>, Status>> + Send>>;

    fn call(&mut self, request: Request<Claim>) -> Self::Future {
        Box::pin(async move {
            let claim = request.get_ref();
            let identity = tls::authorize_claim(&request, &claim.org_code, &claim.level)?;
            Ok(Response::new(Accepted {
                org_code: identity.org_code.to_string(),
                level: identity.level.to_string(),
            }))
        })
    }
}

impl tower::Service<http::Request<Body>> for ClaimChecker {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != CLAIM_PATH {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Accepted, Claim>::default());
            Ok(grpc.unary(Check, request).await)
        })
    }
}

async fn claim(channel: Channel, org_code: &str, level: &str) -> Result<Accepted, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = Request::new(Claim {
        org_code: org_code.to_owned(),
        level: level.to_owned(),
    });
    let response = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static(CLAIM_PATH),
            ProstCodec::<Claim, Accepted>::default(),
        )
        .await?;
    Ok(response.into_inner())
}

struct Pki {
    ca: CertificateAuthority,
    county: NodeCertificate,
    township: NodeCertificate,
}

fn node(level: Level, code: &str) -> anyhow::Result<NodeIdentity> {
    Ok(NodeIdentity::new(level, code.parse()?)?)
}

fn pki(city: &str, county: &str, township: &str) -> anyhow::Result<Pki> {
    let ca = CertificateAuthority::generate(&city.parse()?)?;
    let hosts = Hosts {
        dns: vec!["localhost".to_owned()],
        ips: vec!["127.0.0.1".parse()?],
    };
    let county = ca.issue(&node(Level::County, county)?, &hosts)?;
    let township = ca.issue(&node(Level::Township, township)?, &Hosts::default())?;
    Ok(Pki {
        ca,
        county,
        township,
    })
}

fn material(ca: &CertificateAuthority, cert: &NodeCertificate) -> anyhow::Result<Material> {
    Ok(Material::from_pem(
        ca.cert_pem(),
        &cert.cert_pem,
        &cert.key_pem,
    )?)
}

struct RunningServer {
    uri: Uri,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), node_agent::server::Error>>,
}

impl RunningServer {
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await??;
        Ok(())
    }
}

/// Starts the county node's server with mutual TLS on a free port.
async fn start_county(pki: &Pki) -> anyhow::Result<RunningServer> {
    renda_tls::install_crypto_provider();
    let config = material(&pki.ca, &pki.county)?.server_config()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let bound = Bound::new(listener, Some(config));
    let uri: Uri = format!("https://127.0.0.1:{}", bound.local_addr()?.port()).parse()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let services = tonic::service::Routes::default().add_service(ClaimChecker);
    // This server holds no person's service: a closed gate refuses any such call.
    let task = tokio::spawn(bound.serve(services, renda_api::Gate::closed(), async {
        let _ = stopped.await;
    }));
    Ok(RunningServer {
        uri,
        stop: Some(stop),
        task,
    })
}

async fn health(channel: Channel) -> Result<i32, Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status)
}

#[tokio::test]
async fn client_with_cert_from_the_ca_passes_the_health_check() -> anyhow::Result<()> {
    let pki = pki("370200", "370202", "370202001")?;
    let server = start_county(&pki).await?;
    let client = material(&pki.ca, &pki.township)?.client_config()?;

    let status = health(tls::channel(&server.uri, client.clone())?).await?;
    assert_eq!(status, ServingStatus::Serving as i32);

    // The certificate also names the county by DNS, so dialling it by name works too.
    let by_name: Uri = server
        .uri
        .to_string()
        .replace("127.0.0.1", "localhost")
        .parse()?;
    let status = health(tls::channel(&by_name, client)?).await?;
    assert_eq!(status, ServingStatus::Serving as i32);

    server.stop().await
}

#[tokio::test]
async fn client_without_a_certificate_is_refused_on_its_first_call() -> anyhow::Result<()> {
    let pki = pki("370200", "370202", "370202001")?;
    let server = start_county(&pki).await?;

    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(pki.ca.cert_pem().as_bytes()) {
        roots.add(root?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];

    // TLS 1.3 lets the client finish its side of the handshake; the server's refusal arrives
    // as the first call fails.
    match health(tls::channel(&server.uri, Arc::new(config))?).await {
        Ok(status) => bail!("a client without a certificate got a health answer: {status}"),
        Err(status) => assert!(
            format!("{status:?}").contains("CertificateRequired"),
            "expected the server's certificate_required alert, got {status:?}"
        ),
    }
    server.stop().await
}

#[tokio::test]
async fn client_with_cert_from_another_ca_is_refused() -> anyhow::Result<()> {
    let pki = pki("370200", "370202", "370202001")?;
    let server = start_county(&pki).await?;

    // Same city code, but a different CA: trust the right CA so the client accepts the server,
    // and present a certificate the server's CA never signed.
    let rogue = self::pki("370200", "370203", "370202001")?;
    let client = Material::from_pem(
        pki.ca.cert_pem(),
        &rogue.township.cert_pem,
        &rogue.township.key_pem,
    )?
    .client_config()?;

    match health(tls::channel(&server.uri, client)?).await {
        Ok(status) => bail!("a client from another CA got a health answer: {status}"),
        // The rogue CA has the same name as the real one, so only its signature gives it away.
        Err(status) => assert!(
            format!("{status:?}").contains("DecryptError"),
            "expected the server's decrypt_error alert, got {status:?}"
        ),
    }
    server.stop().await
}

#[tokio::test]
async fn peer_claiming_another_org_is_refused_naming_both() -> anyhow::Result<()> {
    let pki = pki("370200", "370202", "370202001")?;
    let server = start_county(&pki).await?;
    let client = material(&pki.ca, &pki.township)?.client_config()?;
    let channel = tls::channel(&server.uri, client)?;

    let accepted = claim(channel.clone(), "370202001", "township").await?;
    assert_eq!(accepted.org_code, "370202001");
    assert_eq!(accepted.level, "township");

    let refused = match claim(channel.clone(), "370202002", "township").await {
        Ok(accepted) => bail!("a false claim was accepted: {accepted:?}"),
        Err(status) => status,
    };
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("370202001") && refused.message().contains("370202002"),
        "message should name the certified and the claimed org: {}",
        refused.message()
    );

    let wrong_level = claim(channel, "370202001", "county")
        .await
        .err()
        .context("a false level was accepted")?;
    assert_eq!(wrong_level.code(), Code::PermissionDenied);

    server.stop().await
}

#[test]
fn certificate_san_round_trips_through_identity_extraction() -> anyhow::Result<()> {
    let pki = pki("370200", "370202", "370202001")?;
    for (cert, expected) in [
        (&pki.county, node(Level::County, "370202")?),
        (&pki.township, node(Level::Township, "370202001")?),
    ] {
        let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?;
        assert_eq!(tls::identity_from_cert(&der)?, expected);
        assert_eq!(material(&pki.ca, cert)?.identity()?, expected);
    }
    // The CA certificate names no node.
    let ca_der = CertificateDer::from_pem_slice(pki.ca.cert_pem().as_bytes())?;
    assert!(tls::identity_from_cert(&ca_der).is_err());
    Ok(())
}

#[tokio::test]
async fn server_stops_when_shutdown_completes() -> anyhow::Result<()> {
    let pki = pki("370200", "370202", "370202001")?;
    let server = start_county(&pki).await?;
    let uri = server.uri.clone();
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .context("server did not stop within 10 s")??;

    let client = material(&pki.ca, &pki.township)?.client_config()?;
    assert!(health(tls::channel(&uri, client)?).await.is_err());
    Ok(())
}
