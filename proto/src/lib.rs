//! Protocol buffer definitions of renda-mesh and the Rust code generated from them: messages,
//! tonic clients and servers for each `renda.<area>.v1` package, and the encoded file descriptor
//! set that a gRPC reflection service serves.
//!
//! This crate is only the wire format. It holds no logic, no validation and no conversions to
//! domain types; those live where the data is used (`TryFrom<pb::X>` at the edge of `sync` and
//! `api`). The one exception is the calendar day every side writes: `renda.types.v1.Date` from
//! a `chrono::NaiveDate`, and shown as `YYYY-MM-DD` (reading one back is checked at the edge).

/// The `renda.types.v1` package: value types every package shares (dates, satisfaction).
pub mod types {
    pub mod v1 {
        tonic::include_proto!("renda.types.v1");

        impl From<chrono::NaiveDate> for Date {
            fn from(d: chrono::NaiveDate) -> Date {
                use chrono::Datelike;
                Date {
                    year: d.year(),
                    month: i32::try_from(d.month()).unwrap_or_default(),
                    day: i32::try_from(d.day()).unwrap_or_default(),
                }
            }
        }

        /// `YYYY-MM-DD`, as people and the JSON reports read a day.
        impl std::fmt::Display for Date {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
            }
        }
    }
}

/// The `renda.sync.v1` package: the replication protocol between a child node and its parent.
pub mod sync {
    /// Version 1 of the replication protocol.
    pub mod v1 {
        tonic::include_proto!("renda.sync.v1");
    }
}

/// The `renda.org.v1` package: org units and record history.
pub mod org {
    pub mod v1 {
        tonic::include_proto!("renda.org.v1");
    }
}

/// The `renda.deputy.v1` package: deputies and deputy groups.
pub mod deputy {
    pub mod v1 {
        tonic::include_proto!("renda.deputy.v1");
    }
}

/// The `renda.station.v1` package: stations and 八有四公开.
pub mod station {
    pub mod v1 {
        tonic::include_proto!("renda.station.v1");
    }
}

/// The `renda.activity.v1` package: duty activities, check-ins and points.
pub mod activity {
    pub mod v1 {
        tonic::include_proto!("renda.activity.v1");
    }
}

/// The `renda.opinion.v1` package: citizens' opinions.
pub mod opinion {
    pub mod v1 {
        tonic::include_proto!("renda.opinion.v1");
    }
}

/// The `renda.suggestion.v1` package: motions and suggestions.
pub mod suggestion {
    pub mod v1 {
        tonic::include_proto!("renda.suggestion.v1");
    }
}

/// The `renda.project.v1` package: livelihood projects and votes.
pub mod project {
    pub mod v1 {
        tonic::include_proto!("renda.project.v1");
    }
}

/// The `renda.evaluation.v1` package: report-backs and evaluations.
pub mod evaluation {
    pub mod v1 {
        tonic::include_proto!("renda.evaluation.v1");
    }
}

/// The `renda.auth.v1` package: login, tokens and users.
pub mod auth {
    pub mod v1 {
        tonic::include_proto!("renda.auth.v1");
    }
}

/// The `renda.report.v1` package: upward reports with freshness.
pub mod report {
    pub mod v1 {
        tonic::include_proto!("renda.report.v1");
    }
}

/// The encoded `FileDescriptorSet` of every `.proto` file in this crate, for
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("renda_descriptor");
