//! TLS of the mesh (design.md §4): rustls configurations built from the city CA and a node's (or
//! the gateway's) certificate, mutual-TLS channels and listeners, the identity a certificate
//! names (read by one SAN reader, [`caller_of`], for nodes, the gateway and bundles), and the
//! checks that refuse a call whose certificate is missing or does not match what the caller
//! claims.
//!
//! Both configurations are built with the ring provider explicitly, so they do not depend on a
//! process-wide default. The server requires a client certificate signed by the CA: with TLS 1.3
//! a client without one still completes its handshake and is refused on its first call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};

use x509_parser::certificate::X509Certificate;

pub mod identity;

pub use identity::{
    GATEWAY_SAN_URI_PREFIX, GATEWAY_SERVICES, GatewayIdentity, Level, NameError, NodeIdentity,
    OrgCode, SAN_URI_PREFIX,
};

/// PEM files of the city CA and of this node's (or gateway's) certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Installs ring as the process-wide rustls crypto provider. Call once at the start of `main`
/// and of every test binary that uses TLS; calling again is harmless. (The configurations
/// built here name ring explicitly and do not need it.)
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How long a peer may take to finish its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} from {path}: {message}")]
    Pem {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("the CA certificate is not usable as a trust anchor: {0}")]
    TrustAnchor(rustls::Error),
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("{uri} has no host to check the server certificate against")]
    NoHost { uri: Uri },
    #[error("invalid endpoint {uri}: {message}")]
    Endpoint { uri: Uri, message: String },
}

/// Why a certificate does not name a node (or the gateway), or is not valid now.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate is not valid X.509: {0}")]
    X509(String),
    #[error("certificate has no {SAN_URI_PREFIX} subject alternative name")]
    NoNodeUri,
    #[error("certificate names more than one node or gateway")]
    SeveralNodeUris,
    #[error("certificate names an invalid node: {0}")]
    Invalid(#[from] NameError),
    #[error("certificate is not valid at {at}: valid from {not_before} to {not_after}")]
    OutsideValidity {
        at: String,
        not_before: String,
        not_after: String,
    },
}

/// The CA to trust and this node's own certificate chain and key, parsed from PEM.
pub struct Material {
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Material {
    /// Reads the PEM files named in the `[tls]` section.
    pub fn from_files(files: &TlsFiles) -> Result<Self, Error> {
        let pem_error = |what: &'static str, path: &std::path::Path| {
            let path = path.display().to_string();
            move |e: rustls_pki_types::pem::Error| Error::Pem {
                what,
                path,
                message: e.to_string(),
            }
        };
        let roots = CertificateDer::pem_file_iter(&files.ca)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(pem_error("the CA certificate", &files.ca))?;
        let chain = CertificateDer::pem_file_iter(&files.cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(pem_error("the node certificate", &files.cert))?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(pem_error("the node key", &files.key))?;
        Material::new(
            roots,
            chain,
            key,
            &files.ca.display().to_string(),
            &files.cert.display().to_string(),
        )
    }

    /// Parses PEM text already in memory (tests, or material from a secret store).
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let pem_error = |what: &'static str| {
            move |e: rustls_pki_types::pem::Error| Error::Pem {
                what,
                path: "memory".to_owned(),
                message: e.to_string(),
            }
        };
        let roots = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("the CA certificate"))?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("the node certificate"))?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem_error("the node key"))?;
        Material::new(roots, chain, key, "memory", "memory")
    }

    fn new(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca_path: &str,
        cert_path: &str,
    ) -> Result<Self, Error> {
        if roots.is_empty() {
            return Err(Error::NoCertificate {
                path: ca_path.to_owned(),
            });
        }
        if chain.is_empty() {
            return Err(Error::NoCertificate {
                path: cert_path.to_owned(),
            });
        }
        Ok(Material { roots, chain, key })
    }

    /// This node's own identity, read from its certificate.
    pub fn identity(&self) -> Result<NodeIdentity, IdentityError> {
        match self.chain.first() {
            Some(leaf) => identity_from_cert(leaf),
            None => Err(IdentityError::NoNodeUri),
        }
    }

    fn root_store(&self) -> Result<RootCertStore, Error> {
        let mut store = RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone()).map_err(Error::TrustAnchor)?;
        }
        Ok(store)
    }

    /// A server configuration that requires every client to present a certificate from the CA.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.root_store()?),
            provider.clone(),
        )
        .build()?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The server configuration of the client port: the node's certificate, no client
    /// certificate asked for (people prove themselves with a log-in token instead).
    pub fn client_port_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client configuration that trusts only the CA and authenticates with this node's
    /// certificate.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.root_store()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

impl Material {
    /// A client configuration for dialing one upstream: besides the usual chain and host name
    /// checks, the server's certificate must name `expected_org` — a node that dials its county
    /// refuses any other node of the mesh that answers at that address.
    pub fn client_config_for(&self, expected_org: OrgCode) -> Result<Arc<ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(self.root_store()?),
            provider.clone(),
        )
        .build()?;
        let verifier = Arc::new(ExpectedPeer {
            inner: webpki,
            expected_org,
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

impl Material {
    /// A client configuration for a node's own operator commands (`node-agent status`) dialing
    /// the node on loopback, whatever address it listens on: the server must present exactly
    /// this node's own certificate (which no host name need match, and no other holder of a
    /// CA certificate can present), and the client authenticates with it too.
    pub fn own_node_client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let own = self
            .chain
            .first()
            .cloned()
            .ok_or_else(|| Error::NoCertificate {
                path: "the node's own certificate chain".into(),
            })?;
        let verifier = Arc::new(OwnCertificate {
            own,
            schemes: provider.signature_verification_algorithms,
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Accepts only a server presenting this very certificate (and proving it holds its key, by
/// the handshake signature checked below).
#[derive(Debug)]
struct OwnCertificate {
    own: CertificateDer<'static>,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.own.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server at the node's own address presents another certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

/// The standard server checks, then: does the certificate name the node we meant to reach?
#[derive(Debug)]
struct ExpectedPeer {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected_org: OrgCode,
}

impl rustls::client::danger::ServerCertVerifier for ExpectedPeer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let identity = identity_from_cert(end_entity)
            .map_err(|e| rustls::Error::General(format!("server certificate refused: {e}")))?;
        if identity.org_code != self.expected_org {
            tracing::warn!(
                expected = %self.expected_org,
                certified = %identity.org_code,
                "upstream answered with another node's certificate"
            );
            return Err(rustls::Error::General(format!(
                "the server's certificate names {} {} but this node dialed {}",
                identity.level, identity.org_code, self.expected_org
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Reads the node a certificate names from its `renda://node/<level>/<org_code>` SAN URI.
pub fn identity_from_cert(der: &CertificateDer<'_>) -> Result<NodeIdentity, IdentityError> {
    match caller_from_cert(der)? {
        Caller::Node(node) => Ok(node),
        Caller::Gateway(_) => Err(IdentityError::NoNodeUri),
    }
}

/// Reads the gateway a certificate names from its `renda://gateway/<city>` SAN URI.
pub fn gateway_from_cert(der: &CertificateDer<'_>) -> Result<GatewayIdentity, IdentityError> {
    match caller_from_cert(der)? {
        Caller::Gateway(gateway) => Ok(gateway),
        Caller::Node(_) => Err(IdentityError::NoNodeUri),
    }
}

/// The caller a parsed certificate names: the one reader of the mesh's SAN URIs, used for TLS
/// peers and for the signers of bundles alike. Exactly one `renda://node/…` or
/// `renda://gateway/…` URI must be present.
pub fn caller_of(cert: &X509Certificate<'_>) -> Result<Caller, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::X509(e.to_string()))?
        .ok_or(IdentityError::NoNodeUri)?;
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri)
                if uri.starts_with(SAN_URI_PREFIX) || uri.starts_with(GATEWAY_SAN_URI_PREFIX) =>
            {
                Some(*uri)
            }
            _ => None,
        });
    let uri = uris.next().ok_or(IdentityError::NoNodeUri)?;
    if uris.next().is_some() {
        return Err(IdentityError::SeveralNodeUris);
    }
    if uri.starts_with(SAN_URI_PREFIX) {
        Ok(Caller::Node(NodeIdentity::from_san_uri(uri)?))
    } else {
        Ok(Caller::Gateway(GatewayIdentity::from_san_uri(uri)?))
    }
}

/// Checks that `cert` is within its validity window at `unix_seconds` (rustls checks this for
/// TLS peers; bundles, read from a file, check it here).
pub fn check_validity(cert: &X509Certificate<'_>, unix_seconds: i64) -> Result<(), IdentityError> {
    let validity = cert.validity();
    let at = x509_parser::time::ASN1Time::from_timestamp(unix_seconds)
        .map_err(|e| IdentityError::X509(e.to_string()))?;
    if validity.is_valid_at(at) {
        Ok(())
    } else {
        Err(IdentityError::OutsideValidity {
            at: at.to_string(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        })
    }
}

/// Who is calling, by their certificate: a node of the mesh, or the city's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Node(NodeIdentity),
    Gateway(GatewayIdentity),
}

/// Reads the caller a DER certificate names: a node or the gateway (see [`caller_of`]).
pub fn caller_from_cert(der: &CertificateDer<'_>) -> Result<Caller, IdentityError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| IdentityError::X509(e.to_string()))?;
    caller_of(&cert)
}

/// The identity of the node that made this call, from the extension set by
/// [`RequirePeerIdentity`] or else from its TLS certificate.
///
/// Fails with `PERMISSION_DENIED` when there is no certificate or it names no node.
pub fn peer_identity<T>(request: &Request<T>) -> Result<NodeIdentity, Status> {
    if let Some(identity) = request.extensions().get::<NodeIdentity>() {
        return Ok(identity.clone());
    }
    let certs = request.peer_certs().ok_or_else(|| {
        Status::permission_denied("no client certificate: node calls need mutual TLS")
    })?;
    let leaf = certs.first().ok_or_else(|| {
        Status::permission_denied("no client certificate: node calls need mutual TLS")
    })?;
    identity_from_cert(leaf)
        .map_err(|e| Status::permission_denied(format!("client certificate refused: {e}")))
}

/// Checks that what a call claims (e.g. the handshake's `org_code` and `level`) is what the
/// caller's certificate says, and returns that identity.
///
/// Fails with `PERMISSION_DENIED` naming both the certified and the claimed identity.
pub fn authorize_claim<T>(
    request: &Request<T>,
    claimed_org_code: &str,
    claimed_level: &str,
) -> Result<NodeIdentity, Status> {
    let identity = peer_identity(request)?;
    check_claim(&identity, claimed_org_code, claimed_level)?;
    Ok(identity)
}

/// The comparison behind [`authorize_claim`], for callers that already hold the identity.
pub fn check_claim(
    identity: &NodeIdentity,
    claimed_org_code: &str,
    claimed_level: &str,
) -> Result<(), Status> {
    if identity.org_code.to_string() == claimed_org_code && identity.level.as_str() == claimed_level
    {
        return Ok(());
    }
    tracing::warn!(
        certified_org = %identity.org_code,
        certified_level = %identity.level,
        claimed_org = claimed_org_code,
        claimed_level,
        "peer claims an identity its certificate does not name"
    );
    Err(Status::permission_denied(format!(
        "certificate names {} {} but the request claims {} {}",
        identity.level, identity.org_code, claimed_level, claimed_org_code
    )))
}

/// The TLS configuration of a person's client (a phone, an office tool, a test) dialing a
/// node's client port: trusts the CA in the PEM file `ca`, presents no certificate.
pub fn person_client_config(ca: &std::path::Path) -> Result<Arc<ClientConfig>, Error> {
    let roots = CertificateDer::pem_file_iter(ca)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| Error::Pem {
            what: "the CA certificate",
            path: ca.display().to_string(),
            message: e.to_string(),
        })?;
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root).map_err(Error::TrustAnchor)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A tower layer for the node's gRPC server that refuses any call without a certificate from
/// the CA naming a node or the city's gateway, and lets a gateway call only
/// [`GATEWAY_SERVICES`] (reports, log-in, health). It puts the caller's
/// [`NodeIdentity`] (or [`GatewayIdentity`]) into the request extensions for the handler.
///
/// A layer rather than a tonic interceptor because the check needs the request's path, which
/// an interceptor does not see.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequirePeerIdentity;

impl<S> tower::Layer<S> for RequirePeerIdentity {
    type Service = PeerIdentityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PeerIdentityService { inner }
    }
}

/// The service of [`RequirePeerIdentity`].
#[derive(Debug, Clone)]
pub struct PeerIdentityService<S> {
    inner: S,
}

type HttpRequest = tonic::codegen::http::Request<tonic::body::Body>;
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

/// What [`RequirePeerIdentity`] decides for one request.
fn admit(request: &mut HttpRequest) -> Result<(), Status> {
    let refused = || Status::permission_denied("no client certificate: node calls need mutual TLS");
    let certs = request
        .extensions()
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())
        .ok_or_else(refused)?;
    let leaf = certs.first().ok_or_else(refused)?;
    let caller = caller_from_cert(leaf)
        .map_err(|e| Status::permission_denied(format!("client certificate refused: {e}")))?;
    match caller {
        Caller::Node(identity) => {
            request.extensions_mut().insert(identity);
        }
        Caller::Gateway(gateway) => {
            let path = request.uri().path();
            if !GatewayIdentity::may_call(path) {
                tracing::warn!(%gateway, path, "gateway certificate refused outside reports and log-in");
                return Err(Status::permission_denied(format!(
                    "a gateway certificate may not call {path}"
                )));
            }
            request.extensions_mut().insert(gateway);
        }
    }
    Ok(())
}

impl<S> tower::Service<HttpRequest> for PeerIdentityService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        match admit(&mut request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// Accepts TCP connections on `listener` and completes their TLS handshakes concurrently, so a
/// slow or hostile peer cannot hold up the others. Failed handshakes are logged and dropped.
///
/// The returned stream ends when the listener fails; dropping it stops accepting.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Without TCP_NODELAY a small response (a unary reply) waits for the peer's
            // delayed ACK, some 40 ms per call.
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        // The receiver is gone only when the server is shutting down.
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%peer, %error, "TLS handshake refused");
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A lazily connecting channel to `uri` (`https://host:port`) over mutual TLS with `config`.
///
/// The server's certificate must be valid for the URI's host. The channel reconnects by itself
/// after a failure.
pub fn channel(uri: &Uri, config: Arc<ClientConfig>) -> Result<Channel, Error> {
    let host = uri
        .host()
        .ok_or_else(|| Error::NoHost { uri: uri.clone() })?;
    // An IPv6 literal comes bracketed in a URI but not in a server name.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| Error::Endpoint {
        uri: uri.clone(),
        message: e.to_string(),
    })?;
    let port = uri.port_u16().unwrap_or(443);
    // tonic refuses an https URI with a custom connector (it would want to do TLS itself), so
    // the endpoint is given as http:// while the connector below does the TLS.
    let plain = format!("http://{}:{port}", uri.host().unwrap_or(host));
    let endpoint = Endpoint::from_shared(plain).map_err(|e| Error::Endpoint {
        uri: uri.clone(),
        message: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector_lazy(MutualTlsConnector {
            connector: TlsConnector::from(config),
            server_name,
        }))
}

/// Dials TCP, then TLS with the node's client certificate.
#[derive(Clone)]
struct MutualTlsConnector {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl tower::Service<Uri> for MutualTlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.connector.clone();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
