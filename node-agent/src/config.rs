//! The node's configuration: a TOML file, overridden key by key by `RENDA_<SECTION>_<KEY>`
//! environment variables, checked into [`Config`] with errors that name the offending key.
//!
//! Loading, the refusal of unknown sections and keys, environment overrides and hidden secrets
//! are the shared loader's (`renda_config`); this module declares the node's [`SCHEMA`] and
//! reads its typed values.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::Uri;

use renda_tls::{Level, NodeIdentity, OrgCode};

/// Every section and key the configuration accepts, with its type.
pub const SECTIONS: Sections = &[
    (
        "node",
        &[
            ("level", Kind::Text),
            ("org_code", Kind::Text),
            ("data_dir", Kind::Text),
        ],
    ),
    ("storage", &[("url", Kind::Text)]),
    (
        "listen",
        &[
            ("grpc", Kind::Text),
            ("http", Kind::Text),
            ("client", Kind::Text),
        ],
    ),
    ("upstream", &[("addresses", Kind::TextList)]),
    (
        "tls",
        &[
            ("ca", Kind::Text),
            ("cert", Kind::Text),
            ("key", Kind::Text),
            ("insecure_dev", Kind::Bool),
        ],
    ),
    ("telemetry", &[("otlp_endpoint", Kind::Text)]),
    (
        "auth",
        &[
            ("token_secret", Kind::Secret),
            ("token_key_id", Kind::Text),
            ("previous_token_keys", Kind::SecretList),
            ("token_ttl_minutes", Kind::Integer),
            ("freshness_limit_hours", Kind::Integer),
            ("freshness_limit_minutes", Kind::Integer),
        ],
    ),
    (
        "sync",
        &[
            ("interval_secs", Kind::Integer),
            ("batch_ops", Kind::Integer),
            ("backoff_min_ms", Kind::Integer),
            ("backoff_max_ms", Kind::Integer),
        ],
    ),
];

pub use renda_config::{Error, Foreign, Kind, Schema, Sections, Table, invalid};

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "RENDA_";

/// `RENDA_` variables that are not config keys: the password of `node-agent user add`.
pub const NOT_CONFIG: &[&str] = &["RENDA_NEW_USER_PASSWORD"];

/// What a node's configuration accepts.
pub const SCHEMA: Schema = Schema {
    sections: SECTIONS,
    env_prefix: ENV_PREFIX,
    not_config: NOT_CONFIG,
    foreign_sections: Foreign::Refuse,
};

/// The whole configuration of a node, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub auth: AuthConfig,
    pub node: NodeConfig,
    pub storage: StorageConfig,
    pub listen: ListenConfig,
    pub upstream: UpstreamConfig,
    pub tls: TlsConfig,
    pub telemetry: TelemetryConfig,
    pub sync: SyncConfig,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub identity: NodeIdentity,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// A `sqlite://` or `postgres://` URL; `sqlite://<data_dir>/node.db` unless set.
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Mutual TLS between nodes: replication and status, and people's calls forwarded by a
    /// gateway.
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// Server-authenticated TLS for people (a deputy's phone, an office tool, a script): the
    /// domain services, `Auth`, health and reflection, never replication.
    pub client: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Parents to dial, in fallback order. Empty for the city, never empty below it.
    pub addresses: Vec<Uri>,
}

#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// Mutual TLS with certificates from the city CA: the only mode for real deployments.
    Mutual(TlsFiles),
    /// Plain-text gRPC, for development only (`tls.insecure_dev = true`).
    InsecureDev,
}

pub use renda_tls::TlsFiles;

/// Log-in tokens and report freshness.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// The secret that signs log-in tokens; the gateway in front of this node must share it.
    /// A random one per start when unset (tokens then last until the node restarts).
    pub token_secret: Option<Vec<u8>>,
    /// The id tokens signed with `token_secret` carry (default `1`).
    pub token_key_id: String,
    /// Earlier keys still accepted for checking tokens until they are removed here, as
    /// `id:secret`.
    pub previous_token_keys: Vec<(String, Vec<u8>)>,
    /// How long a log-in token is valid (default 12 hours).
    pub token_ttl: Duration,
    /// Reports flag a township whose data is older than this many hours (default 72).
    pub freshness_limit_minutes: u64,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "<secret>"),
            )
            .field("token_key_id", &self.token_key_id)
            .field(
                "previous_token_keys",
                &self
                    .previous_token_keys
                    .iter()
                    .map(|(id, _)| format!("{id}:<secret>"))
                    .collect::<Vec<_>>(),
            )
            .field("token_ttl", &self.token_ttl)
            .field("freshness_limit_minutes", &self.freshness_limit_minutes)
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// Where to export spans over OTLP/gRPC; no export when unset.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub interval: Duration,
    pub batch_ops: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval: Duration::from_secs(30),
            batch_ops: 500,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// The shortest token secret the node (and the gateway) accepts.
pub const MIN_SECRET_CHARS: usize = 32;

const DEFAULT_GRPC: &str = "127.0.0.1:7443";
const DEFAULT_HTTP: &str = "127.0.0.1:7080";
const DEFAULT_CLIENT: &str = "127.0.0.1:7444";

impl Config {
    /// Reads and checks the config file at `path`, with overrides from `env`.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, env)
    }

    /// Checks a config given as TOML text, with overrides from `env` (usually
    /// `std::env::vars().collect()`); variables without the `RENDA_` prefix are ignored.
    pub fn from_toml(text: &str, env: &HashMap<String, String>) -> Result<Config, Error> {
        Config::from_table(&Table::parse(text, SCHEMA, env)?)
    }

    fn from_table(t: &Table) -> Result<Config, Error> {
        let level: Level = t
            .required_text("node", "level")?
            .parse()
            .map_err(|e: renda_org::Error| invalid("node.level", e.to_string()))?;
        let org_code: OrgCode = t
            .required_text("node", "org_code")?
            .parse()
            .map_err(|e: renda_org::Error| invalid("node.org_code", e.to_string()))?;
        let identity = NodeIdentity::new(level, org_code)
            .map_err(|e| invalid("node.org_code", e.to_string()))?;
        let data_dir = PathBuf::from(t.required_text("node", "data_dir")?);

        let url = match t.text("storage", "url")? {
            Some(url) => {
                if !["sqlite:", "postgres://", "postgresql://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme))
                {
                    return Err(invalid(
                        "storage.url",
                        format!("{url:?} is neither a sqlite:// nor a postgres:// URL"),
                    ));
                }
                url.to_owned()
            }
            None => format!("sqlite://{}/node.db", data_dir.display()),
        };

        let listen = ListenConfig {
            grpc: t.socket_addr("listen", "grpc", DEFAULT_GRPC)?,
            http: t.socket_addr("listen", "http", DEFAULT_HTTP)?,
            client: t.socket_addr("listen", "client", DEFAULT_CLIENT)?,
        };

        let insecure_dev = t.bool("tls", "insecure_dev")?.unwrap_or(false);
        let tls = if insecure_dev {
            TlsConfig::InsecureDev
        } else {
            let required = |key: &str| -> Result<PathBuf, Error> {
                t.text("tls", key)?.map(PathBuf::from).ok_or_else(|| {
                    invalid(
                        &format!("tls.{key}"),
                        "is required unless tls.insecure_dev = true",
                    )
                })
            };
            TlsConfig::Mutual(TlsFiles {
                ca: required("ca")?,
                cert: required("cert")?,
                key: required("key")?,
            })
        };

        let upstream = UpstreamConfig {
            addresses: upstream_addresses(t, identity.level, insecure_dev)?,
        };

        let telemetry = TelemetryConfig {
            otlp_endpoint: t.text("telemetry", "otlp_endpoint")?.map(str::to_owned),
        };

        let token_secret = t
            .long_secret("auth", "token_secret", MIN_SECRET_CHARS)?
            .map(|s| s.expose().as_bytes().to_vec());
        let previous_token_keys = t
            .keyed_secrets("auth", "previous_token_keys", MIN_SECRET_CHARS)?
            .into_iter()
            .map(|(id, secret)| (id, secret.expose().as_bytes().to_vec()))
            .collect();
        let auth = AuthConfig {
            token_secret,
            token_key_id: t.text("auth", "token_key_id")?.unwrap_or("1").to_owned(),
            previous_token_keys,
            token_ttl: Duration::from_secs(
                60 * t
                    .integer("auth", "token_ttl_minutes", 1)?
                    .unwrap_or(12 * 60),
            ),
            freshness_limit_minutes: t.minutes("auth", "freshness_limit")?.unwrap_or(72 * 60),
        };

        let defaults = SyncConfig::default();
        let interval_secs = t.integer("sync", "interval_secs", 1)?;
        let batch_ops = t.integer("sync", "batch_ops", 1)?;
        let backoff_min_ms = t.integer("sync", "backoff_min_ms", 1)?;
        let backoff_max_ms = t.integer("sync", "backoff_max_ms", 1)?;
        let sync = SyncConfig {
            interval: interval_secs.map_or(defaults.interval, Duration::from_secs),
            batch_ops: match batch_ops {
                Some(n) => u32::try_from(n)
                    .map_err(|_| invalid("sync.batch_ops", format!("{n} is too large")))?,
                None => defaults.batch_ops,
            },
            backoff_min: backoff_min_ms.map_or(defaults.backoff_min, Duration::from_millis),
            backoff_max: backoff_max_ms.map_or(defaults.backoff_max, Duration::from_millis),
        };
        if sync.backoff_min > sync.backoff_max {
            return Err(invalid(
                "sync.backoff_min_ms",
                format!(
                    "{} ms is more than sync.backoff_max_ms ({} ms)",
                    sync.backoff_min.as_millis(),
                    sync.backoff_max.as_millis()
                ),
            ));
        }

        Ok(Config {
            auth,
            node: NodeConfig { identity, data_dir },
            storage: StorageConfig { url },
            listen,
            upstream,
            tls,
            telemetry,
            sync,
        })
    }
}

fn upstream_addresses(t: &Table, level: Level, insecure_dev: bool) -> Result<Vec<Uri>, Error> {
    const KEY: &str = "upstream.addresses";
    let texts = t.text_list("upstream", "addresses")?;
    if level == Level::City {
        if !texts.is_empty() {
            return Err(invalid(
                KEY,
                "must be empty for the city node, which has no parent",
            ));
        }
        return Ok(Vec::new());
    }
    if texts.is_empty() {
        return Err(invalid(
            KEY,
            format!("a {level} node needs at least one parent to dial"),
        ));
    }
    texts
        .iter()
        .map(|text| {
            let uri: Uri = text
                .parse()
                .map_err(|e| invalid(KEY, format!("{text:?} is not a URI: {e}")))?;
            let scheme_ok = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => insecure_dev,
                _ => false,
            };
            if !scheme_ok {
                let allowed = if insecure_dev {
                    "https:// or http://"
                } else {
                    "https:// (http:// only with tls.insecure_dev = true)"
                };
                return Err(invalid(KEY, format!("{text:?} must start with {allowed}")));
            }
            if uri.host().is_none() || uri.port_u16().is_none() {
                return Err(invalid(
                    KEY,
                    format!("{text:?} must name a host and a port"),
                ));
            }
            Ok(uri)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOWNSHIP: &str = r#"
        [node]
        level = "township"
        org_code = "370202001"
        data_dir = "/var/lib/renda"

        [upstream]
        addresses = ["https://county.example:7443", "https://city.example:7443"]

        [tls]
        ca = "/etc/renda/ca.pem"
        cert = "/etc/renda/370202001.pem"
        key = "/etc/renda/370202001.key"
    "#;

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error_text(text: &str, env: &HashMap<String, String>) -> String {
        match Config::from_toml(text, env) {
            Ok(config) => panic!("expected a config error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn township_config_with_defaults() -> Result<(), Error> {
        let config = Config::from_toml(TOWNSHIP, &no_env())?;
        assert_eq!(config.node.identity.level, Level::Township);
        assert_eq!(config.node.identity.org_code.to_string(), "370202001");
        assert_eq!(config.storage.url, "sqlite:///var/lib/renda/node.db");
        assert_eq!(config.listen.grpc.to_string(), "127.0.0.1:7443");
        assert_eq!(config.listen.http.to_string(), "127.0.0.1:7080");
        assert_eq!(config.listen.client.to_string(), "127.0.0.1:7444");
        assert_eq!(config.auth.token_key_id, "1");
        assert!(config.auth.previous_token_keys.is_empty());
        assert_eq!(config.auth.token_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(config.upstream.addresses.len(), 2);
        assert_eq!(
            config.upstream.addresses[0].to_string(),
            "https://county.example:7443/"
        );
        assert!(matches!(config.tls, TlsConfig::Mutual(_)));
        assert!(config.telemetry.otlp_endpoint.is_none());
        assert_eq!(config.sync.batch_ops, 500);
        Ok(())
    }

    #[test]
    fn env_overrides_file() -> Result<(), Error> {
        let config = Config::from_toml(
            TOWNSHIP,
            &env(&[
                ("RENDA_NODE_ORG_CODE", "370202002"),
                ("RENDA_LISTEN_GRPC", "0.0.0.0:9443"),
                (
                    "RENDA_UPSTREAM_ADDRESSES",
                    "https://a.example:1, https://b.example:2",
                ),
                ("RENDA_SYNC_BATCH_OPS", "50"),
                ("RENDA_TELEMETRY_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("PATH", "/usr/bin"),
            ]),
        )?;
        assert_eq!(config.node.identity.org_code.to_string(), "370202002");
        assert_eq!(config.listen.grpc.to_string(), "0.0.0.0:9443");
        assert_eq!(config.upstream.addresses.len(), 2);
        assert_eq!(config.sync.batch_ops, 50);
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        Ok(())
    }

    #[test]
    fn token_keys_rotate_and_expire_as_configured() -> Result<(), Error> {
        let rotated = format!(
            "{TOWNSHIP}\n[auth]\ntoken_key_id = \"2027a\"\ntoken_ttl_minutes = 30\n\
             previous_token_keys = [\"2026b:an-old-secret-of-at-least-32-characters\"]\n"
        );
        let config = Config::from_toml(&rotated, &no_env())?;
        assert_eq!(config.auth.token_key_id, "2027a");
        assert_eq!(config.auth.token_ttl, Duration::from_secs(30 * 60));
        assert_eq!(config.auth.previous_token_keys.len(), 1);
        assert_eq!(config.auth.previous_token_keys[0].0, "2026b");
        // Secrets never show in the config's debug form.
        assert!(!format!("{config:?}").contains("an-old-secret"));
        let bad = format!("{TOWNSHIP}\n[auth]\nprevious_token_keys = [\"no-colon\"]\n");
        assert!(
            error_text(&bad, &no_env()).starts_with("auth.previous_token_keys: each entry"),
            "{}",
            error_text(&bad, &no_env())
        );
        let short = format!("{TOWNSHIP}\n[auth]\nprevious_token_keys = [\"k:short\"]\n");
        assert!(error_text(&short, &no_env()).contains("at least 32"));
        Ok(())
    }

    #[test]
    fn config_errors_name_their_key() {
        let bad_code = TOWNSHIP.replace("370202001\"\n", "37020\"\n");
        assert_eq!(
            error_text(&bad_code, &no_env()),
            r#"node.org_code: "37020" is not an administrative division code: it must have 6, 9 or 12 digits, got 5"#
        );

        let wrong_length = TOWNSHIP.replace("\"370202001\"\n", "\"370202\"\n");
        assert!(
            error_text(&wrong_length, &no_env())
                .starts_with("node.org_code: 370202 is a county code, but this is a township node")
        );

        let unknown = format!("{TOWNSHIP}\n[sync]\nintervall_secs = 5\n");
        assert!(error_text(&unknown, &no_env()).starts_with("sync.intervall_secs: unknown key"));

        let unknown_section = format!("{TOWNSHIP}\n[database]\nurl = \"x\"\n");
        assert!(error_text(&unknown_section, &no_env()).starts_with("database: unknown section"));

        let no_upstream = TOWNSHIP.replace("[upstream]", "[unused]").replace(
            "addresses = [\"https://county.example:7443\", \"https://city.example:7443\"]",
            "",
        );
        let no_upstream = no_upstream.replace("[unused]", "");
        assert!(
            error_text(&no_upstream, &no_env())
                .starts_with("upstream.addresses: a township node needs at least one parent")
        );

        assert!(
            error_text(TOWNSHIP, &env(&[("RENDA_LISTEN_GRPC", "localhost")]))
                .starts_with("listen.grpc: \"localhost\" is not an IP address and port")
        );
        assert!(
            error_text(TOWNSHIP, &env(&[("RENDA_SYNC_BATCH_OPS", "many")])).starts_with(
                "sync.batch_ops: \"many\" from RENDA_SYNC_BATCH_OPS is not an integer"
            )
        );
        assert!(
            error_text(TOWNSHIP, &env(&[("RENDA_TLS_CAFILE", "x")]))
                .starts_with("tls.cafile: unknown key (set by RENDA_TLS_CAFILE)")
        );
        assert!(
            error_text(TOWNSHIP, &env(&[("RENDA_STORAGE_URL", "mysql://x")]))
                .starts_with("storage.url: \"mysql://x\" is neither")
        );
        let plain = TOWNSHIP.replace("https://county", "http://county");
        assert!(error_text(&plain, &no_env()).starts_with(
            "upstream.addresses: \"http://county.example:7443\" must start with https://"
        ));

        let no_key = TOWNSHIP.replace("key = \"/etc/renda/370202001.key\"", "");
        assert_eq!(
            error_text(&no_key, &no_env()),
            "tls.key: is required unless tls.insecure_dev = true"
        );

        let typed = TOWNSHIP.replace("level = \"township\"", "level = 3");
        assert_eq!(
            error_text(&typed, &no_env()),
            "node.level: must be a string, not integer"
        );
    }

    #[test]
    fn city_has_no_upstream_and_dev_mode_allows_plain_text() -> Result<(), Error> {
        let city = r#"
            [node]
            level = "city"
            org_code = "370200"
            data_dir = "data"
            [storage]
            url = "postgres://renda@localhost/renda"
            [tls]
            insecure_dev = true
        "#;
        let config = Config::from_toml(city, &no_env())?;
        assert!(config.upstream.addresses.is_empty());
        assert!(matches!(config.tls, TlsConfig::InsecureDev));
        assert_eq!(config.storage.url, "postgres://renda@localhost/renda");

        let with_parent = format!("{city}\n[upstream]\naddresses = [\"http://x:1\"]\n");
        assert!(
            error_text(&with_parent, &no_env())
                .starts_with("upstream.addresses: must be empty for the city")
        );
        Ok(())
    }
}
