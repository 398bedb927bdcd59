//! Who a node is: its level in the org tree and its administrative division code, and how that
//! pair is written into and read out of a certificate.

use std::fmt;

/// The URI scheme and authority of the SAN that names a node: `renda://node/<level>/<org_code>`.
pub const SAN_URI_PREFIX: &str = "renda://node/";

/// The SAN prefix that names a city gateway: `renda://gateway/<city_code>`. A gateway is not a
/// node: it holds no replica, and a node lets it call only [`GATEWAY_SERVICES`].
pub const GATEWAY_SAN_URI_PREFIX: &str = "renda://gateway/";

/// The gRPC path prefixes a gateway certificate may call: reports, log-in, and health.
pub const GATEWAY_SERVICES: [&str; 3] = [
    "/renda.report.v1.Reports/",
    "/renda.auth.v1.Auth/",
    "/grpc.health.v1.Health/",
];

pub use renda_org::{Level, OrgCode};

/// A level and an org code that fit together: a node of the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    pub level: Level,
    pub org_code: OrgCode,
}

/// Why a level and an org code do not make a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{code} is a {actual} code, but this is a {level} node")]
    LevelMismatch {
        code: OrgCode,
        actual: Level,
        level: Level,
    },
    #[error("{code} is a village code: villages are units inside a township's node and run none")]
    NotANodeLevel { code: OrgCode },
    #[error("{uri:?} is not a node URI (expected {SAN_URI_PREFIX}<level>/<org_code>)")]
    NotANodeUri { uri: String },
    #[error("{uri:?} is not a gateway URI (expected {GATEWAY_SAN_URI_PREFIX}<city_code>)")]
    NotAGatewayUri { uri: String },
    #[error(transparent)]
    Code(#[from] renda_org::Error),
}

impl NodeIdentity {
    /// Checks that the code names a unit of that level (a city code ends in `00`, a county's
    /// does not, a township's has nine digits) and that the level runs a node.
    pub fn new(level: Level, org_code: OrgCode) -> Result<Self, NameError> {
        if !level.runs_node() || !org_code.level().runs_node() {
            return Err(NameError::NotANodeLevel { code: org_code });
        }
        if org_code.level() != level {
            return Err(NameError::LevelMismatch {
                code: org_code,
                actual: org_code.level(),
                level,
            });
        }
        Ok(NodeIdentity { level, org_code })
    }

    /// The identity of the node of `org`, its level read from the code (a village runs no node
    /// and is refused).
    pub fn of(org: OrgCode) -> Result<Self, NameError> {
        Self::new(org.level(), org)
    }

    /// The SAN URI that names this node in its certificate.
    pub fn san_uri(&self) -> String {
        format!("{SAN_URI_PREFIX}{}/{}", self.level, self.org_code)
    }

    /// Reads a SAN URI written by [`NodeIdentity::san_uri`].
    pub fn from_san_uri(uri: &str) -> Result<Self, NameError> {
        let not_node = || NameError::NotANodeUri {
            uri: uri.to_owned(),
        };
        let rest = uri.strip_prefix(SAN_URI_PREFIX).ok_or_else(not_node)?;
        let (level, code) = rest.split_once('/').ok_or_else(not_node)?;
        NodeIdentity::new(level.parse()?, code.parse()?)
    }
}

/// A city gateway, named by its city's code: several gateways of one city share the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GatewayIdentity {
    pub city: OrgCode,
}

impl GatewayIdentity {
    /// Checks that `city` is a city code (six digits ending in `00`).
    pub fn new(city: OrgCode) -> Result<Self, NameError> {
        let node = NodeIdentity::new(Level::City, city)?;
        Ok(GatewayIdentity {
            city: node.org_code,
        })
    }

    /// The SAN URI that names this gateway in its certificate.
    pub fn san_uri(&self) -> String {
        format!("{GATEWAY_SAN_URI_PREFIX}{}", self.city)
    }

    /// Reads a SAN URI written by [`GatewayIdentity::san_uri`].
    pub fn from_san_uri(uri: &str) -> Result<Self, NameError> {
        let code =
            uri.strip_prefix(GATEWAY_SAN_URI_PREFIX)
                .ok_or_else(|| NameError::NotAGatewayUri {
                    uri: uri.to_owned(),
                })?;
        GatewayIdentity::new(code.parse()?)
    }

    /// Whether a gateway may call the gRPC method at `path` (`/package.Service/Method`).
    pub fn may_call(path: &str) -> bool {
        GATEWAY_SERVICES
            .iter()
            .any(|prefix| path.starts_with(prefix))
    }
}

impl fmt::Display for GatewayIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gateway {}", self.city)
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.level, self.org_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(level: &str, code: &str) -> Result<NodeIdentity, NameError> {
        NodeIdentity::new(level.parse()?, code.parse()?)
    }

    #[test]
    fn levels_and_code_lengths_must_fit() {
        assert!(identity("city", "370200").is_ok());
        assert!(identity("county", "370202").is_ok());
        assert!(identity("township", "370202001").is_ok());
        assert!(matches!(
            identity("township", "370202"),
            Err(NameError::LevelMismatch {
                level: Level::Township,
                actual: Level::County,
                ..
            })
        ));
        assert!(matches!(
            identity("city", "370202"),
            Err(NameError::LevelMismatch {
                actual: Level::County,
                ..
            })
        ));
        assert!(matches!(
            identity("county", "370200"),
            Err(NameError::LevelMismatch {
                actual: Level::City,
                ..
            })
        ));
        assert!(matches!(
            identity("county", "37020"),
            Err(NameError::Code(_))
        ));
        assert!(matches!(
            identity("village", "370202001001"),
            Err(NameError::NotANodeLevel { .. })
        ));
        assert!(matches!(
            identity("province", "370202"),
            Err(NameError::Code(renda_org::Error::Level { .. }))
        ));
    }

    #[test]
    fn san_uri_round_trips() -> Result<(), NameError> {
        let node = identity("township", "370202001")?;
        assert_eq!(node.san_uri(), "renda://node/township/370202001");
        assert_eq!(NodeIdentity::from_san_uri(&node.san_uri())?, node);
        assert!(NodeIdentity::from_san_uri("https://node/township/370202001").is_err());
        assert!(NodeIdentity::from_san_uri("renda://node/township").is_err());
        Ok(())
    }

    #[test]
    fn gateway_san_uri_round_trips_and_names_a_city() -> Result<(), NameError> {
        let gateway = GatewayIdentity::new("370200".parse()?)?;
        assert_eq!(gateway.san_uri(), "renda://gateway/370200");
        assert_eq!(GatewayIdentity::from_san_uri(&gateway.san_uri())?, gateway);
        assert!(GatewayIdentity::new("370202".parse()?).is_err());
        assert!(GatewayIdentity::from_san_uri("renda://node/city/370200").is_err());
        assert!(GatewayIdentity::may_call(
            "/renda.report.v1.Reports/GetReport"
        ));
        assert!(GatewayIdentity::may_call("/renda.auth.v1.Auth/Login"));
        assert!(!GatewayIdentity::may_call(
            "/renda.sync.v1.Replication/Push"
        ));
        assert!(!GatewayIdentity::may_call(
            "/renda.deputy.v1.Deputies/CreateDeputy"
        ));
        Ok(())
    }

    #[test]
    fn city_of_a_township() -> Result<(), renda_org::Error> {
        assert_eq!("370202001".parse::<OrgCode>()?.city().to_string(), "370200");
        Ok(())
    }
}
