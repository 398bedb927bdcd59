//! Who a node is: its level in the org tree and its administrative division code, and how that
//! pair is written into and read out of a certificate.

use std::fmt;
use std::str::FromStr;

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

/// A node's place in the org tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    City,
    County,
    Township,
}

impl Level {
    /// The lowercase name used in config files, certificates and the wire protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::County => "county",
            Level::Township => "township",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not a [`Level`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a level (expected city, county or township)")]
pub struct LevelError(pub String);

impl FromStr for Level {
    type Err = LevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "city" => Ok(Level::City),
            "county" => Ok(Level::County),
            "township" => Ok(Level::Township),
            other => Err(LevelError(other.to_owned())),
        }
    }
}

/// An administrative division code (行政区划代码) of 6, 9 or 12 digits, checked for shape only.
///
/// Whether it fits a level is checked by [`NodeIdentity::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgCode(String);

/// Why a text is not an [`OrgCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a 6, 9 or 12 digit administrative division code")]
pub struct OrgCodeError(pub String);

impl OrgCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit code of the city (prefecture) this code lies in, e.g. `370200` for
    /// `370202001`.
    pub fn city(&self) -> OrgCode {
        OrgCode(format!("{}00", &self.0[..4]))
    }
}

impl FromStr for OrgCode {
    type Err = OrgCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.bytes().all(|b| b.is_ascii_digit());
        if digits && matches!(s.len(), 6 | 9 | 12) {
            Ok(OrgCode(s.to_owned()))
        } else {
            Err(OrgCodeError(s.to_owned()))
        }
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A level and an org code that fit together: a node of the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    pub level: Level,
    pub org_code: OrgCode,
}

/// Why a level and an org code do not make a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{code:?} is a {digits}-digit code, but a {level} node needs a {expected}-digit code")]
    LengthMismatch {
        code: String,
        digits: usize,
        level: Level,
        expected: usize,
    },
    #[error("{code:?} does not end in 00, so it is a county code, not a city code")]
    NotACity { code: String },
    #[error("{code:?} ends in 00, so it is a city code, not a county code")]
    NotACounty { code: String },
    #[error("{uri:?} is not a node URI (expected {SAN_URI_PREFIX}<level>/<org_code>)")]
    NotANodeUri { uri: String },
    #[error("{uri:?} is not a gateway URI (expected {GATEWAY_SAN_URI_PREFIX}<city_code>)")]
    NotAGatewayUri { uri: String },
    #[error(transparent)]
    Level(#[from] LevelError),
    #[error(transparent)]
    OrgCode(#[from] OrgCodeError),
}

impl NodeIdentity {
    /// Checks that the code's length fits the level: six digits ending in `00` for a city, six
    /// digits not ending in `00` for a county, nine digits for a township.
    pub fn new(level: Level, org_code: OrgCode) -> Result<Self, IdentityError> {
        let code = org_code.as_str();
        let expected = match level {
            Level::City | Level::County => 6,
            Level::Township => 9,
        };
        if code.len() != expected {
            return Err(IdentityError::LengthMismatch {
                code: code.to_owned(),
                digits: code.len(),
                level,
                expected,
            });
        }
        let ends_in_00 = code.ends_with("00");
        match level {
            Level::City if !ends_in_00 => Err(IdentityError::NotACity {
                code: code.to_owned(),
            }),
            Level::County if ends_in_00 => Err(IdentityError::NotACounty {
                code: code.to_owned(),
            }),
            _ => Ok(NodeIdentity { level, org_code }),
        }
    }

    /// The SAN URI that names this node in its certificate.
    /// The identity of the node of `org`, its level read from the code (a village runs no node
    /// and is refused).
    pub fn of(org: renda_replica::OrgCode) -> Result<Self, IdentityError> {
        let level = match org.level() {
            renda_replica::Level::City => Level::City,
            renda_replica::Level::County => Level::County,
            renda_replica::Level::Township | renda_replica::Level::Village => Level::Township,
        };
        Self::new(level, org.to_string().parse()?)
    }

    pub fn san_uri(&self) -> String {
        format!("{SAN_URI_PREFIX}{}/{}", self.level, self.org_code)
    }

    /// Reads a SAN URI written by [`NodeIdentity::san_uri`].
    pub fn from_san_uri(uri: &str) -> Result<Self, IdentityError> {
        let not_node = || IdentityError::NotANodeUri {
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
    pub fn new(city: OrgCode) -> Result<Self, IdentityError> {
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
    pub fn from_san_uri(uri: &str) -> Result<Self, IdentityError> {
        let code = uri.strip_prefix(GATEWAY_SAN_URI_PREFIX).ok_or_else(|| {
            IdentityError::NotAGatewayUri {
                uri: uri.to_owned(),
            }
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

    fn identity(level: &str, code: &str) -> Result<NodeIdentity, IdentityError> {
        NodeIdentity::new(level.parse()?, code.parse()?)
    }

    #[test]
    fn levels_and_code_lengths_must_fit() {
        assert!(identity("city", "370200").is_ok());
        assert!(identity("county", "370202").is_ok());
        assert!(identity("township", "370202001").is_ok());
        assert!(matches!(
            identity("township", "370202"),
            Err(IdentityError::LengthMismatch { expected: 9, .. })
        ));
        assert!(matches!(
            identity("city", "370202"),
            Err(IdentityError::NotACity { .. })
        ));
        assert!(matches!(
            identity("county", "370200"),
            Err(IdentityError::NotACounty { .. })
        ));
        assert!(matches!(
            identity("county", "37020"),
            Err(IdentityError::OrgCode(_))
        ));
        assert!(matches!(
            identity("village", "370202"),
            Err(IdentityError::Level(_))
        ));
    }

    #[test]
    fn san_uri_round_trips() -> Result<(), IdentityError> {
        let node = identity("township", "370202001")?;
        assert_eq!(node.san_uri(), "renda://node/township/370202001");
        assert_eq!(NodeIdentity::from_san_uri(&node.san_uri())?, node);
        assert!(NodeIdentity::from_san_uri("https://node/township/370202001").is_err());
        assert!(NodeIdentity::from_san_uri("renda://node/township").is_err());
        Ok(())
    }

    #[test]
    fn gateway_san_uri_round_trips_and_names_a_city() -> Result<(), IdentityError> {
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
    fn city_of_a_township() -> Result<(), OrgCodeError> {
        assert_eq!("370202001".parse::<OrgCode>()?.city().as_str(), "370200");
        Ok(())
    }
}
