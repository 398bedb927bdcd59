//! The one place that installs tracing for a renda-mesh process: a `tracing-subscriber` with an
//! env filter and human-readable output, plus, when an OTLP endpoint is configured, a
//! `tracing-opentelemetry` layer that exports spans over OTLP/gRPC. It also carries the W3C trace
//! context across gRPC calls, so that one sync shows as one trace across township, county and
//! city (design.md §6): [`TraceContextInterceptor`] on the client, [`set_parent_from_metadata`]
//! on the server.
//!
//! It is not a metrics library and decides nothing about what to log; it only wires the
//! pipeline.

pub mod collector;

use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How long flushing spans at shutdown may take before it is abandoned.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The name under which spans are recorded by the OpenTelemetry tracer.
const TRACER_NAME: &str = "renda-mesh";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid log filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("cannot build the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// What to install.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `service.name` resource attribute of exported spans, e.g. `node-agent`.
    pub service_name: String,
    /// Extra resource attributes, e.g. `("renda.org_code", "370202001")`, so that spans from
    /// different nodes can be told apart in one trace.
    pub attributes: Vec<(String, String)>,
    /// An OTLP/gRPC endpoint such as `http://127.0.0.1:4317`; spans are exported only when set.
    pub otlp_endpoint: Option<String>,
    /// An `EnvFilter` directive such as `info,renda=debug`. When `None`, `RUST_LOG` is used, and
    /// `info` when that is unset.
    pub filter: Option<String>,
}

impl Settings {
    pub fn new(service_name: impl Into<String>) -> Self {
        Settings {
            service_name: service_name.into(),
            attributes: Vec::new(),
            otlp_endpoint: None,
            filter: None,
        }
    }
}

/// Keeps the span exporter alive; dropping it flushes the spans not yet sent and shuts the
/// exporter down. Hold it until the end of `main`.
#[must_use = "dropping the guard stops exporting spans"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Sends the spans recorded so far without shutting down.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            run_blocking(|| {
                if let Err(error) = provider.force_flush() {
                    eprintln!("flushing spans failed: {error}");
                }
            });
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            run_blocking(|| {
                // Tracing may already be torn down here, so report on stderr.
                if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                    eprintln!("shutting down the span exporter failed: {error}");
                }
            });
        }
    }
}

/// Flushing waits for the exporter, whose gRPC channel is driven by the tokio runtime; on a
/// multi-threaded runtime the waiting thread is handed back so the runtime can make progress.
fn run_blocking(f: impl FnOnce()) {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Installs the global tracing subscriber, and the OTLP exporter when configured.
///
/// Must be called inside a tokio runtime when `otlp_endpoint` is set, since the exporter's gRPC
/// channel runs on it.
pub fn init(settings: &Settings) -> Result<Guard, Error> {
    let filter = match &settings.filter {
        Some(directives) => EnvFilter::try_new(directives).map_err(|e| Error::Filter {
            filter: directives.clone(),
            message: e.to_string(),
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colour codes only on a terminal: journald and log files get plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));

    let provider = match &settings.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(
            endpoint,
            &settings.service_name,
            &settings.attributes,
        )?),
        None => None,
    };
    let otel = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(TRACER_NAME)));

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| Error::AlreadyInstalled(e.to_string()))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    tracing::info!(
        service = %settings.service_name,
        otlp_endpoint = settings.otlp_endpoint.as_deref().unwrap_or("none"),
        "tracing installed"
    );
    Ok(Guard { provider })
}

/// A tracer provider that batches spans and exports them to `endpoint` over OTLP/gRPC.
///
/// [`init`] uses this; it is public so that tests can build a subscriber of their own.
pub fn tracer_provider(
    endpoint: &str,
    service_name: &str,
    attributes: &[(String, String)],
) -> Result<SdkTracerProvider, Error> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Exporter {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .with_attributes(
            attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The OpenTelemetry layer for a subscriber built by hand (tests, or a binary with other needs).
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(TRACER_NAME))
}

/// Writes `span`'s trace context into gRPC metadata as W3C `traceparent`/`tracestate`.
pub fn inject(span: &Span, metadata: &mut MetadataMap) {
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// Reads the W3C trace context a caller put into gRPC metadata; an empty context when there is
/// none or it is malformed.
pub fn extract(metadata: &MetadataMap) -> Context {
    TraceContextPropagator::new().extract(&MetadataExtractor(metadata))
}

/// Makes the caller's span, carried in `metadata`, the parent of `span`, so that the server's
/// work joins the client's trace.
///
/// Call it right after creating the span and before entering it or instrumenting a future with
/// it. Returns whether the parent was set: false when the metadata carried no trace context or
/// the span had already started.
pub fn set_parent_from_metadata(span: &Span, metadata: &MetadataMap) -> bool {
    let context = extract(metadata);
    if !opentelemetry::trace::TraceContextExt::has_active_span(&context) {
        return false;
    }
    match span.set_parent(context) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(?error, "cannot set the remote parent of a span");
            false
        }
    }
}

/// A tonic client interceptor that sends the current span's trace context with every call.
///
/// Use with `Client::with_interceptor(channel, TraceContextInterceptor)`, and make the call
/// inside the span (`.instrument(span)`), since the interceptor runs when the call starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject(&Span::current(), request.metadata_mut());
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator only writes the fixed ASCII keys traceparent and tracestate, so a key or
        // value that is not valid metadata can only come from a broken propagator; skip it.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                KeyRef::Ascii(key) => Some(key.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn trace_id(span: &Span) -> opentelemetry::trace::TraceId {
        span.context().span().span_context().trace_id()
    }

    #[test]
    fn trace_context_survives_a_round_trip_through_metadata() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            let client = tracing::info_span!("client");
            let mut metadata = MetadataMap::new();
            inject(&client, &mut metadata);
            assert!(metadata.get("traceparent").is_some());

            let extracted = extract(&metadata);
            assert_eq!(
                extracted.span().span_context().trace_id(),
                trace_id(&client)
            );

            let server = tracing::info_span!("server");
            assert!(set_parent_from_metadata(&server, &metadata));
            assert_eq!(trace_id(&server), trace_id(&client));

            let unrelated = tracing::info_span!("unrelated");
            assert!(!set_parent_from_metadata(&unrelated, &MetadataMap::new()));
            assert_ne!(trace_id(&unrelated), trace_id(&client));
        });
    }

    #[test]
    fn the_interceptor_injects_the_current_span() -> Result<(), tonic::Status> {
        use tonic::service::Interceptor as _;

        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("call");
            let request =
                span.in_scope(|| TraceContextInterceptor.call(tonic::Request::new(())))?;
            assert_eq!(
                extract(request.metadata()).span().span_context().trace_id(),
                trace_id(&span)
            );
            Ok(())
        })
    }
}
