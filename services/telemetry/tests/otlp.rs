//! One trace across two nodes: a township's client span and a county's server span, joined only
//! through the W3C trace context in gRPC metadata, arrive at an OTLP collector as one trace.
//!
//! Each "node" has its own tracer provider (with its own `service.name`) and its own tracing
//! dispatcher, as two processes would; nothing but the metadata links the two spans. The
//! collector is a stub of the OTLP `TraceService`. The county's application service is that
//! same generated `TraceService` trait too, only because its code is already at hand: any unary
//! gRPC service would do.

use std::time::Duration;

use anyhow::{Context as _, bail};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use renda_telemetry::collector::Collector;
use renda_telemetry::{TraceContextInterceptor, set_parent_from_metadata};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tracing::instrument::WithSubscriber;
use tracing::{Dispatch, Instrument};
use tracing_subscriber::layer::SubscriberExt;

/// The county node's application service: handles a call in a span whose parent is the
/// caller's span, taken from the request metadata.
struct County {
    dispatch: Dispatch,
}

#[tonic::async_trait]
impl TraceService for County {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let span = tracing::dispatcher::with_default(&self.dispatch, || {
            tracing::info_span!("county.handle_sync")
        });
        if !set_parent_from_metadata(&span, request.metadata()) {
            return Err(Status::invalid_argument("no trace context in metadata"));
        }
        async {
            tracing::info!("handling the call");
        }
        .instrument(span)
        .await;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn listen() -> anyhow::Result<(TcpListenerStream, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((TcpListenerStream::new(listener), url))
}

/// A node's tracer provider and a dispatcher that records into it.
fn node(collector_url: &str, service: &str) -> anyhow::Result<(SdkTracerProvider, Dispatch)> {
    let provider = renda_telemetry::tracer_provider(collector_url, service, &[])?;
    let subscriber = tracing_subscriber::registry().with(renda_telemetry::layer(&provider));
    Ok((provider, Dispatch::new(subscriber)))
}

async fn flush(provider: &SdkTracerProvider) -> anyhow::Result<()> {
    let provider = provider.clone();
    // Flushing blocks until the exporter's gRPC call, which runs on this runtime, is done.
    tokio::task::spawn_blocking(move || provider.force_flush()).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_between_two_nodes_is_one_trace_at_the_collector() -> anyhow::Result<()> {
    let collector = Collector::default();
    let (collector_incoming, collector_url) = listen().await?;
    let collector_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(collector_incoming),
    );

    let (township, township_dispatch) = node(&collector_url, "township-370202001")?;
    let (county, county_dispatch) = node(&collector_url, "county-370202")?;

    let (county_incoming, county_url) = listen().await?;
    let county_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(County {
                dispatch: county_dispatch,
            }))
            .serve_with_incoming(county_incoming),
    );

    let channel = tonic::transport::Endpoint::from_shared(county_url)?
        .connect()
        .await?;
    let mut client = TraceServiceClient::with_interceptor(channel, TraceContextInterceptor);
    let span = tracing::dispatcher::with_default(&township_dispatch, || {
        tracing::info_span!("township.sync")
    });
    client
        .export(ExportTraceServiceRequest {
            resource_spans: Vec::new(),
        })
        .instrument(span)
        .with_subscriber(township_dispatch)
        .await
        .context("the call to the county failed")?;

    flush(&township).await?;
    flush(&county).await?;

    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = collector.spans();
        if spans.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let [client_span, server_span] = match spans.as_slice() {
        [a, b] if a.name == "township.sync" => [a.clone(), b.clone()],
        [a, b] => [b.clone(), a.clone()],
        other => bail!("expected two spans at the collector, got {other:?}"),
    };
    assert_eq!(client_span.name, "township.sync");
    assert_eq!(client_span.service, "township-370202001");
    assert_eq!(server_span.name, "county.handle_sync");
    assert_eq!(server_span.service, "county-370202");
    assert_eq!(
        client_span.trace_id, server_span.trace_id,
        "the two nodes' spans are in different traces: {client_span:?} {server_span:?}"
    );
    assert_eq!(server_span.parent_span_id, client_span.span_id);
    assert!(client_span.parent_span_id.is_empty());

    township.shutdown()?;
    county.shutdown()?;
    collector_task.abort();
    county_task.abort();
    Ok(())
}
