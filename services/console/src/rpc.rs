//! Calls into the node's own gRPC services, in process: the request goes through the same
//! tonic service implementations (and so the same validation and authority checks) as a call
//! over the network, without a socket. JSON from the browser is turned into protobuf with the
//! file descriptor set, so one endpoint reaches every allowed method.

use std::str::FromStr;

use bytes::{Buf, BufMut};
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::service::Routes;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::session::Session;

/// Why a call was refused, as the browser sees it: the field it concerns (empty when none)
/// and a Chinese message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?} on {field:?}: {message_zh}")]
pub struct Refusal {
    pub code: Code,
    pub field: String,
    pub message_zh: String,
}

impl Refusal {
    pub fn new(code: Code, field: &str, message_zh: impl Into<String>) -> Refusal {
        Refusal {
            code,
            field: field.to_owned(),
            message_zh: message_zh.into(),
        }
    }

    /// The refusal a gRPC status carries: the first `BadRequest` field violation and the zh-CN
    /// `LocalizedMessage` the API attaches, with a generic Chinese message when it has none.
    pub fn from_status(status: &Status) -> Refusal {
        let details = status.get_error_details();
        let field = details
            .bad_request()
            .and_then(|b| b.field_violations.first())
            .map(|v| v.field.clone())
            .unwrap_or_default();
        let message_zh = details
            .localized_message()
            .map(|m| m.message.clone())
            .unwrap_or_else(|| generic_zh(status.code()).to_owned());
        Refusal {
            code: status.code(),
            field,
            message_zh,
        }
    }
}

fn generic_zh(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "请先登录",
        Code::PermissionDenied => "无权进行此操作",
        Code::NotFound => "记录不存在",
        Code::InvalidArgument => "填写的内容不符合要求",
        Code::FailedPrecondition => "当前状态下不能进行此操作",
        _ => "服务内部错误，请稍后再试",
    }
}

/// The services the console may call on a user's behalf. Replication, auth and anything else
/// the node serves stay out of reach.
const ALLOWED_SERVICES: &[&str] = &[
    "renda.org.v1.OrgUnits",
    "renda.org.v1.Records",
    "renda.deputy.v1.Deputies",
    "renda.station.v1.Stations",
    "renda.activity.v1.Activities",
    "renda.opinion.v1.Opinions",
    "renda.suggestion.v1.Suggestions",
    "renda.project.v1.Projects",
    "renda.evaluation.v1.Evaluations",
    "renda.report.v1.Reports",
];

/// The in-process channel to the node's services: through the same gate as a call from the
/// network, so the person's token is checked there exactly as on the node's ports.
pub type Channel = renda_api::gate::GateService<Routes>;

/// The node's services and the descriptors to speak to them in JSON.
#[derive(Clone)]
pub struct Rpc {
    channel: Channel,
    pool: DescriptorPool,
}

impl Rpc {
    pub fn new(
        routes: Routes,
        gate: renda_api::Gate,
    ) -> Result<Rpc, prost_reflect::DescriptorError> {
        let pool = DescriptorPool::decode(renda_proto::FILE_DESCRIPTOR_SET)?;
        Ok(Rpc {
            channel: tower::Layer::layer(&gate, routes),
            pool,
        })
    }

    /// A clone of the in-process channel, for the generated typed clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Calls `service`/`method` with a JSON request and returns the JSON response, with proto
    /// field names and every field present.
    pub async fn call_json(
        &self,
        session: Option<&Session>,
        service: &str,
        method: &str,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, Refusal> {
        if !ALLOWED_SERVICES.contains(&service) {
            return Err(Refusal::new(
                Code::PermissionDenied,
                "",
                "控制台不提供此服务",
            ));
        }
        let descriptor = self
            .pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .filter(|m| !m.is_server_streaming() && !m.is_client_streaming())
            .ok_or_else(|| Refusal::new(Code::NotFound, "", "没有这个操作"))?;
        let message = DynamicMessage::deserialize_with_options(
            descriptor.input(),
            request,
            &DeserializeOptions::new().deny_unknown_fields(false),
        )
        .map_err(|e| bad_json(&e.to_string()))?;
        let path = format!("/{service}/{method}");
        let bytes = self.unary(session, &path, message.encode_to_vec()).await?;
        let reply = DynamicMessage::decode(descriptor.output(), bytes.as_slice())
            .map_err(|_| Refusal::new(Code::Internal, "", "服务返回了无法识别的数据"))?;
        let options = SerializeOptions::new()
            .stringify_64_bit_integers(false)
            .use_proto_field_name(true)
            .skip_default_fields(false);
        reply
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|_| Refusal::new(Code::Internal, "", "服务返回了无法识别的数据"))
    }

    /// One unary call with an encoded request, as the logged-in user (or anonymously).
    async fn unary(
        &self,
        session: Option<&Session>,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Refusal> {
        let path = PathAndQuery::from_str(path)
            .map_err(|_| Refusal::new(Code::NotFound, "", "没有这个操作"))?;
        let mut request = tonic::Request::new(body);
        if let Some(session) = session {
            caller_metadata(session, request.metadata_mut());
        }
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|_| Refusal::new(Code::Unavailable, "", "服务暂时不可用"))?;
        grpc.unary(request, path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| Refusal::from_status(&s))
    }
}

/// Forwards the logged-in person's token (`authorization: Bearer …`) on a request: the
/// services learn who calls from it, and from nothing else.
pub fn caller_metadata(session: &Session, metadata: &mut tonic::metadata::MetadataMap) {
    // A token is ASCII by construction (it was checked before the session was made).
    if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", session.token)) {
        metadata.insert("authorization", value);
    }
}

fn bad_json(reason: &str) -> Refusal {
    // prost-reflect names the field in its message, e.g. "... at field `term`"; the console's
    // forms send numbers as numbers, so this only shows up for hand-made requests.
    let field = reason
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_default();
    Refusal {
        code: Code::InvalidArgument,
        field,
        message_zh: "填写的内容格式不正确".into(),
    }
}

/// Passes encoded protobuf through unchanged: the console encodes and decodes with
/// descriptors itself.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}
