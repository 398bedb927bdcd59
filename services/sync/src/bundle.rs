//! Signed change bundles: a sync session on a USB stick.
//!
//! `export` writes the operations a parent lacks (or, at a parent, a child's scope) to a file
//! signed with the exporting node's certificate key; `import` verifies the whole file first —
//! its framing, its signature, that the certificate comes from this mesh's CA and names the
//! org unit the bundle claims, that it is addressed to this node — and only then applies it
//! with the same authority checks as a live session. A truncated, tampered or foreign bundle
//! is refused and nothing of it is applied.

use crate::authority::{Direction, Policy};
use crate::{Error, PROTOCOL_VERSION};
use prost::Message;
use renda_proto::sync::v1 as pb;
use renda_replica::OrgCode;
use renda_store::{BatchReport, Cursor, Direction as Checkpoint, Store};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

const MAGIC: &[u8; 8] = b"RENDABD1";
/// A bundle larger than this is refused before it is read into memory.
const MAX_BUNDLE_BYTES: u64 = 1 << 30;
const BATCH: usize = 1_000;

/// The exporting node's key material, as PEM.
pub struct Signer {
    key: EcdsaKeyPair,
    certificate_der: Vec<u8>,
}

impl Signer {
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let cert = CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| format!("node certificate is not PEM: {e}"))?;
        let key = match PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("node key is not PEM: {e}"))?
        {
            PrivateKeyDer::Pkcs8(der) => der,
            _ => return Err("node key must be a PKCS#8 ECDSA P-256 key".into()),
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            key.secret_pkcs8_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| format!("node key is not an ECDSA P-256 key: {e}"))?;
        Ok(Signer {
            key,
            certificate_der: cert.to_vec(),
        })
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub ops: usize,
    pub bytes: u64,
    pub to: OrgCode,
}

/// Writes a bundle for `to`: if `to` is this node's parent (an ancestor), every operation after
/// the push checkpoint for it; if `to` is below this node, its scope after the last bundle
/// exported for it (or from the start with `full`).
pub async fn export(
    store: &Store,
    signer: &Signer,
    to: OrgCode,
    full: bool,
    path: &Path,
) -> Result<Exported, Error> {
    let err = |reason: String| Error::Bundle {
        path: path.display().to_string(),
        reason,
    };
    let mut prepared = prepare(store, to, full).await.map_err(|e| match e {
        Error::Bundle { reason, .. } => err(reason),
        other => other,
    })?;
    prepared.bundle.certificate_der = signer.certificate_der.clone();
    let count = prepared.bundle.ops.len();
    let body = prepared.bundle.encode_to_vec();
    let mut file = Vec::with_capacity(body.len() + 128);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&(body.len() as u32).to_be_bytes());
    file.extend_from_slice(&body);
    let signature = signer
        .key
        .sign(&SystemRandom::new(), &file)
        .map_err(|e| err(format!("signing failed: {e}")))?;
    let signature = signature.as_ref();
    file.extend_from_slice(&(signature.len() as u32).to_be_bytes());
    file.extend_from_slice(signature);
    let tmp = path.with_extension("partial");
    tokio::fs::write(&tmp, &file)
        .await
        .map_err(|e| err(format!("writing failed: {e}")))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| err(format!("writing failed: {e}")))?;
    prepared.written(store).await?;
    Ok(Exported {
        ops: count,
        bytes: file.len() as u64,
        to,
    })
}

/// The contents of a bundle for `to`, unsigned, and where the export leaves its checkpoint.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub bundle: pb::Bundle,
    key: String,
    upto: Cursor,
}

impl Prepared {
    /// Once the bundle is durably written: downward, the next bundle starts after it; upward,
    /// a live session with the parent learns whether it imported this one
    /// (`Welcome.bundled_upto`) before pushing.
    pub async fn written(&self, store: &Store) -> Result<(), Error> {
        store
            .set_checkpoint(&self.key, Checkpoint::Push, self.upto)
            .await?;
        Ok(())
    }
}

/// Reads what a bundle for `to` carries (see [`export`]), without signing or writing it.
pub async fn prepare(store: &Store, to: OrgCode, full: bool) -> Result<Prepared, Error> {
    let me = store.org();
    let upward = to != me && to.contains(me);
    let downward = to != me && me.contains(to);
    if !upward && !downward {
        return Err(Error::Bundle {
            path: String::new(),
            reason: format!("{to} is neither above nor below this node {me}"),
        });
    }
    let bundle_key = exported_to(to);
    let start = if full {
        Cursor::START
    } else if upward {
        store.checkpoint(&to.to_string(), Checkpoint::Push).await?
    } else {
        store.checkpoint(&bundle_key, Checkpoint::Push).await?
    };
    let mut ops = Vec::new();
    let mut upto = start;
    loop {
        let page = if upward {
            store.push_page(upto, BATCH as u32).await?
        } else {
            store.feed_page(to, upto, BATCH as u32, None).await?
        };
        upto = page.upto;
        ops.extend(page.ops.into_iter().map(|op| op.bytes));
        if page.last {
            break;
        }
    }
    let bundle = pb::Bundle {
        protocol_version: PROTOCOL_VERSION,
        schema_version: store.schema().version,
        from_org: me.to_string(),
        from_actor: store.actor().0,
        to_org: to.to_string(),
        created_unix_ms: crate::now_ms(),
        ops,
        start: Some(cursor_pb(start)),
        upto: Some(cursor_pb(upto)),
        certificate_der: Vec::new(),
    };
    Ok(Prepared {
        bundle,
        key: bundle_key,
        upto,
    })
}

/// A bundle that passed every check, ready to apply.
#[derive(Debug)]
pub struct Verified {
    pub from: OrgCode,
    pub direction: Direction,
    pub bundle: pb::Bundle,
}

/// Checks a bundle file completely without applying anything: framing, the signer's certificate
/// (issued by this mesh's CA and within its validity window at `now_unix_s`), the signature,
/// the sender it claims, versions, the addressee and the direction.
pub fn verify(
    bytes: &[u8],
    ca_pem: &[u8],
    me: OrgCode,
    schema_version: u32,
    now_unix_s: i64,
) -> Result<Verified, String> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a renda-mesh bundle (bad header)".into());
    }
    let body_len = read_u32(bytes, MAGIC.len())? as usize;
    let body_start = MAGIC.len() + 4;
    let body_end = body_start
        .checked_add(body_len)
        .filter(|end| end + 4 <= bytes.len())
        .ok_or("bundle is truncated (body shorter than its header says)")?;
    let sig_len = read_u32(bytes, body_end)? as usize;
    let sig_start = body_end + 4;
    if sig_start + sig_len != bytes.len() {
        return Err(format!(
            "bundle is truncated or has trailing bytes ({} bytes, the framing says {})",
            bytes.len(),
            sig_start + sig_len
        ));
    }
    let bundle = pb::Bundle::decode(&bytes[body_start..body_end])
        .map_err(|e| format!("bundle body is malformed: {e}"))?;
    let ca = CertificateDer::from_pem_slice(ca_pem).map_err(|e| format!("CA is not PEM: {e}"))?;
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca)
        .map_err(|e| format!("CA certificate is malformed: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&bundle.certificate_der)
        .map_err(|e| format!("bundle certificate is malformed: {e}"))?;
    cert.verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| {
            "bundle certificate was not issued by this mesh's CA: unknown node".to_string()
        })?;
    renda_tls::check_validity(&cert, now_unix_s).map_err(|e| {
        format!("bundle certificate refused: {e}; renew the sender's certificate and export again")
    })?;
    let (level, certified) = match renda_tls::caller_of(&cert) {
        Ok(renda_tls::Caller::Node(node)) => (node.level, node.org_code),
        Ok(renda_tls::Caller::Gateway(gateway)) => {
            return Err(format!(
                "bundle is signed by {gateway}, which holds no replica and sends no bundles"
            ));
        }
        Err(e) => return Err(format!("bundle certificate names no node: {e}")),
    };
    UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        &cert.public_key().subject_public_key.data,
    )
    .verify(&bytes[..body_end], &bytes[sig_start..])
    .map_err(|_| "bundle signature does not match its content: tampered or damaged".to_string())?;
    if bundle.from_org != certified.to_string() {
        return Err(format!(
            "bundle claims to come from {} but is signed by {level} {certified}",
            bundle.from_org
        ));
    }
    if bundle.protocol_version != PROTOCOL_VERSION || bundle.schema_version != schema_version {
        return Err(format!(
            "bundle versions (protocol {}, schema {}) differ from this node's ({PROTOCOL_VERSION}, {schema_version})",
            bundle.protocol_version, bundle.schema_version
        ));
    }
    if bundle.to_org != me.to_string() {
        return Err(format!(
            "bundle is addressed to {}, not to this node {me}",
            bundle.to_org
        ));
    }
    let direction = if certified != me && me.contains(certified) {
        Direction::FromChild(certified)
    } else if certified != me && certified.contains(me) {
        Direction::FromParent(certified)
    } else {
        return Err(format!(
            "bundle comes from {certified}, which is neither above nor below this node {me}"
        ));
    };
    Ok(Verified {
        from: certified,
        direction,
        bundle,
    })
}

/// Verifies and applies a bundle file.
pub async fn import(
    store: &Store,
    policy: &Policy,
    ca_pem: &[u8],
    path: &Path,
) -> Result<(OrgCode, BatchReport), Error> {
    let err = |reason: String| Error::Bundle {
        path: path.display().to_string(),
        reason,
    };
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| err(format!("cannot read: {e}")))?
        .len();
    if len > MAX_BUNDLE_BYTES {
        return Err(err(format!(
            "{len} bytes is larger than the {MAX_BUNDLE_BYTES} byte limit"
        )));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let verified = verify(
        &bytes,
        ca_pem,
        store.org(),
        store.schema().version,
        crate::now_ms() / 1000,
    )
    .map_err(err)?;
    let from = verified.from;
    Ok((from, apply(store, policy, verified).await?))
}

/// Applies a verified bundle with the authority checks of a live session, then moves the
/// checkpoints it covers: a bundle is a session on a USB stick.
pub async fn apply(
    store: &Store,
    policy: &Policy,
    verified: Verified,
) -> Result<BatchReport, Error> {
    let from = verified.from.to_string();
    let direction = verified.direction;
    let check = |op: &renda_replica::Op, record_org: Option<OrgCode>| {
        policy.check(op, record_org, direction)
    };
    let mut total = BatchReport::default();
    for chunk in verified.bundle.ops.chunks(BATCH) {
        let report = store.apply_batch(chunk, Some(&from), &check).await?;
        total.applied += report.applied;
        total.duplicates += report.duplicates;
        total.held += report.held;
        total.quarantined += report.quarantined;
    }
    // A bundle from a child: what it covered of the child's feed, told to the child at its next
    // session so that it does not push those operations again; and when it was made, which is
    // how fresh the child's data is here (a clock ahead of this node's counts as now).
    if let Direction::FromChild(child) = direction {
        let made = chrono::DateTime::from_timestamp_millis(
            verified.bundle.created_unix_ms.min(crate::now_ms()),
        );
        let key = child.to_string();
        let mut state = store
            .peer_sync(&key)
            .await?
            .unwrap_or_else(|| renda_store::PeerSync {
                peer: key,
                ..Default::default()
            });
        if made > state.last_bundle {
            state.last_bundle = made;
            store.set_peer_sync(&state).await?;
        }
        let key = imported_from(child);
        let start = verified.bundle.start.map_or(Cursor::START, cursor_from_pb);
        let upto = verified.bundle.upto.map_or(Cursor::START, cursor_from_pb);
        if upto > store.checkpoint(&key, Checkpoint::Pull).await? {
            store.set_checkpoint(&key, Checkpoint::Push, start).await?;
            store.set_checkpoint(&key, Checkpoint::Pull, upto).await?;
        }
    }
    // A bundle from the parent that starts where this node's pull stopped moves that
    // checkpoint on, as a live session would.
    if let Direction::FromParent(parent) = direction {
        let key = parent.to_string();
        let current = store.checkpoint(&key, Checkpoint::Pull).await?;
        let start = verified.bundle.start.map_or(Cursor::START, cursor_from_pb);
        let upto = verified.bundle.upto.map_or(Cursor::START, cursor_from_pb);
        if start <= current && upto > current {
            store.set_checkpoint(&key, Checkpoint::Pull, upto).await?;
        }
    }
    Ok(total)
}

/// Where a parent keeps the furthest upward bundle imported from `child`: its start as the
/// `Push` checkpoint and its end as the `Pull` checkpoint of this key, both in the child's feed.
pub(crate) fn imported_from(child: OrgCode) -> String {
    format!("bundle-from:{child}")
}

/// Where a node keeps the end of the last bundle it exported for `to` (`Push` checkpoint).
pub(crate) fn exported_to(to: OrgCode) -> String {
    format!("bundle:{to}")
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| "bundle is truncated".to_string())
}

pub(crate) fn cursor_pb(c: Cursor) -> pb::Cursor {
    pb::Cursor {
        position: c.position,
        seq: c.local_seq,
    }
}

pub(crate) fn cursor_from_pb(c: pb::Cursor) -> Cursor {
    Cursor {
        position: c.position,
        local_seq: c.seq,
    }
}
