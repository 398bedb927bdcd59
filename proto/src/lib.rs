//! Protocol buffer definitions of renda-mesh and the Rust code generated from them: messages,
//! tonic clients and servers for each `renda.<area>.v1` package, and the encoded file descriptor
//! set that a gRPC reflection service serves.
//!
//! This crate is only the wire format. It holds no logic, no validation and no conversions to
//! domain types; those live where the data is used (`TryFrom<pb::X>` at the edge of `sync` and
//! `api`).

/// The `renda.sync.v1` package: the replication protocol between a child node and its parent.
pub mod sync {
    /// Version 1 of the replication protocol.
    pub mod v1 {
        tonic::include_proto!("renda.sync.v1");
    }
}

/// The encoded `FileDescriptorSet` of every `.proto` file in this crate, for
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("renda_descriptor");
