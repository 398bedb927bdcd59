//! The node's gRPC server: health and reflection, plus whatever services the caller adds, over
//! mutual TLS (or plain text behind `tls.insecure_dev`), until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::config::{Config, TlsConfig};
use renda_api::Gate;

use renda_tls::{self as tls, RequirePeerIdentity};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound gRPC listener with its TLS configuration, ready to serve.
pub struct Bound {
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
}

/// Binds `listen.grpc` and loads the TLS material named in `[tls]`.
pub async fn bind(config: &Config) -> Result<Bound, Error> {
    let tls = match &config.tls {
        TlsConfig::Mutual(files) => Some(tls::Material::from_files(files)?.server_config()?),
        TlsConfig::InsecureDev => None,
    };
    let addr = config.listen.grpc;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(Bound { listener, tls })
}

impl Bound {
    /// Wraps a listener that is already bound (tests bind `127.0.0.1:0`).
    /// `tls = None` serves plain text and must only be used for development.
    pub fn new(listener: TcpListener, tls: Option<Arc<ServerConfig>>) -> Self {
        Bound { listener, tls }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `services` together with `grpc.health.v1.Health` and gRPC reflection until
    /// `shutdown` completes, then waits for open calls to finish.
    ///
    /// This is where the node's own services are plugged in: build them into a
    /// [`Routes`] (`Routes::default().add_service(...)`) and pass it here. With mutual TLS every
    /// call, health included, first goes through [`RequirePeerIdentity`], so handlers can read
    /// the caller's [`renda_tls::NodeIdentity`] from the request extensions; a city
    /// gateway's certificate is let through to reports, log-in and health only.
    pub async fn serve<F>(self, services: Routes, gate: Gate, shutdown: F) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send,
    {
        let routes = with_health_and_reflection(services).await?;
        let addr = self.local_addr().ok();

        match self.tls {
            Some(config) => {
                tracing::info!(addr = ?addr, "serving gRPC over mutual TLS");
                Server::builder()
                    .layer(
                        tower::ServiceBuilder::new()
                            .layer(RequirePeerIdentity)
                            .layer(gate),
                    )
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(tls::incoming(self.listener, config), shutdown)
                    .await?;
            }
            None => {
                tracing::warn!(
                    ?addr,
                    "serving gRPC in PLAIN TEXT without authentication: tls.insecure_dev is set; \
                     never use this outside development"
                );
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.listener);
                Server::builder()
                    .layer(gate)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await?;
            }
        }
        tracing::info!("gRPC server stopped");
        Ok(())
    }

    /// Serves people on the client port: `services` (never replication) with health and
    /// reflection, every call through the gate, over TLS that asks no client certificate
    /// (plain text only behind `tls.insecure_dev`).
    pub async fn serve_people<F>(
        self,
        services: Routes,
        gate: Gate,
        shutdown: F,
    ) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send,
    {
        let routes = with_health_and_reflection(services).await?;
        let addr = self.local_addr().ok();
        let server = Server::builder().layer(gate).add_routes(routes);
        match self.tls {
            Some(config) => {
                tracing::info!(addr = ?addr, "serving people's gRPC over TLS");
                server
                    .serve_with_incoming_shutdown(tls::incoming(self.listener, config), shutdown)
                    .await?;
            }
            None => {
                tracing::warn!(
                    ?addr,
                    "serving people's gRPC in PLAIN TEXT: tls.insecure_dev is set"
                );
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.listener);
                server
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await?;
            }
        }
        Ok(())
    }
}

/// `services` with `grpc.health.v1.Health` (the server as a whole, `""`, and every service by
/// name) and reflection in both `v1` and `v1alpha` (older grpcurl and Postman speak only the
/// latter).
async fn with_health_and_reflection(services: Routes) -> Result<Routes, Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let pool = renda_proto::FILE_DESCRIPTOR_SET;
    let names = service_names(pool);
    for name in names {
        reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pool)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pool)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(services
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha))
}

/// The full names of the services in an encoded file descriptor set.
fn service_names(encoded: &[u8]) -> Vec<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
        return Vec::new();
    };
    set.file
        .iter()
        .flat_map(|f| {
            let package = f.package().to_owned();
            f.service
                .iter()
                .map(move |s| format!("{package}.{}", s.name()))
        })
        .collect()
}
