//! The one configuration loader of renda-mesh's binaries: a TOML file, overridden key by key
//! by environment variables, checked against an explicit schema, with errors that name the
//! dotted key (`node.org_code`) and secrets that never print.
//!
//! It is not a config type: each binary (node-agent, gateway) declares its [`Schema`] and reads
//! its own typed `Config` from the checked [`Table`]. The environment is passed in as a map
//! rather than read here, so tests need no `set_var` and loading is a pure function of its
//! inputs.
//!
//! Unknown sections and keys are refused, in the file and in the environment. This is done
//! against the schema rather than with serde's `deny_unknown_fields`, because serde's errors
//! cannot name the key of a value that came from the environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The type a configuration key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Text that must never be printed (token secrets): read it with [`Table::secret`].
    Secret,
    Bool,
    Integer,
    /// In the environment, a comma-separated list.
    TextList,
    /// A list of secrets (earlier token keys as `id:secret`); in the environment,
    /// comma-separated.
    SecretList,
}

/// Every section and key a binary accepts, with its type.
pub type Sections = &'static [(&'static str, &'static [(&'static str, Kind)])];

/// What a binary accepts and how the environment overrides it.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub sections: Sections,
    /// `RENDA_`: `RENDA_NODE_ORG_CODE` sets `node.org_code`.
    pub env_prefix: &'static str,
    /// Variables with the prefix that are not configuration (a password given to a command).
    pub not_config: &'static [&'static str],
    /// Whether a variable with the prefix that names a section of another binary is ignored
    /// (the gateway on a host whose environment also configures a node) or refused.
    pub foreign_sections: Foreign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    Refuse,
    Ignore,
}

/// A configuration that could not be loaded. `key` is the dotted key (`node.org_code`) or the
/// environment variable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// The refusal of `key`'s value.
pub fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A value that must never be printed: `Debug` shows `<secret>`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that uses it (signing keys).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Characters in the value.
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// A checked configuration: every key known to the schema, environment overrides applied.
/// Its `Debug` form lists the keys that are set, never their values.
#[derive(Clone)]
pub struct Table {
    table: toml::Table,
    schema: Schema,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .table
            .iter()
            .flat_map(|(section, v)| {
                v.as_table()
                    .into_iter()
                    .flat_map(|t| t.keys())
                    .map(move |k| format!("{section}.{k}"))
            })
            .collect();
        f.debug_struct("Table").field("set", &keys).finish()
    }
}

impl Table {
    /// Reads the file at `path` and checks it with overrides from `env`.
    pub fn load(
        path: &Path,
        schema: Schema,
        env: &HashMap<String, String>,
    ) -> Result<Table, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Table::parse(&text, schema, env)
    }

    /// Checks TOML text with overrides from `env` (usually `std::env::vars().collect()`);
    /// variables without the schema's prefix are ignored.
    pub fn parse(
        text: &str,
        schema: Schema,
        env: &HashMap<String, String>,
    ) -> Result<Table, Error> {
        let mut table = Table {
            table: text.parse()?,
            schema,
        };
        table.check_known_keys()?;
        table.apply_env(env)?;
        Ok(table)
    }

    fn section(&self, name: &str) -> Option<&'static [(&'static str, Kind)]> {
        self.schema
            .sections
            .iter()
            .find(|(section, _)| *section == name)
            .map(|(_, keys)| *keys)
    }

    fn kind(&self, section: &str, key: &str) -> Option<Kind> {
        self.section(section)?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, kind)| *kind)
    }

    fn check_known_keys(&self) -> Result<(), Error> {
        for (section, value) in &self.table {
            let Some(keys) = self.section(section) else {
                let known: Vec<&str> = self.schema.sections.iter().map(|(s, _)| *s).collect();
                return Err(invalid(
                    section,
                    format!("unknown section (expected one of: {})", known.join(", ")),
                ));
            };
            let Some(entries) = value.as_table() else {
                return Err(invalid(section, "must be a table ([section])"));
            };
            for key in entries.keys() {
                if !keys.iter().any(|(k, _)| k == key) {
                    let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                    return Err(invalid(
                        &format!("{section}.{key}"),
                        format!("unknown key (expected one of: {})", known.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Maps `RENDA_NODE_ORG_CODE` to `("node", "org_code")`.
    fn env_key(&self, var: &str) -> Option<(&'static str, String)> {
        let rest = var.strip_prefix(self.schema.env_prefix)?;
        self.schema.sections.iter().find_map(|(section, _)| {
            let upper = section.to_ascii_uppercase();
            let key = rest.strip_prefix(upper.as_str())?.strip_prefix('_')?;
            Some((*section, key.to_ascii_lowercase()))
        })
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), Error> {
        // Sorted so that the first error reported does not depend on hash order.
        let mut vars: Vec<(&String, &String)> = env.iter().collect();
        vars.sort();
        for (var, text) in vars {
            if !var.starts_with(self.schema.env_prefix)
                || self.schema.not_config.contains(&var.as_str())
            {
                continue;
            }
            let Some((section, key)) = self.env_key(var) else {
                if self.schema.foreign_sections == Foreign::Ignore {
                    continue;
                }
                return Err(invalid(
                    var,
                    format!(
                        "names no config section (expected {}<SECTION>_<KEY>)",
                        self.schema.env_prefix
                    ),
                ));
            };
            let dotted = format!("{section}.{key}");
            let Some(kind) = self.kind(section, &key) else {
                return Err(invalid(&dotted, format!("unknown key (set by {var})")));
            };
            let value = match kind {
                Kind::Text | Kind::Secret => toml::Value::String(text.clone()),
                Kind::Bool => match text.as_str() {
                    "true" | "1" => toml::Value::Boolean(true),
                    "false" | "0" => toml::Value::Boolean(false),
                    _ => {
                        return Err(invalid(
                            &dotted,
                            format!("{text:?} from {var} is not true or false"),
                        ));
                    }
                },
                Kind::Integer => toml::Value::Integer(text.parse().map_err(|_| {
                    invalid(&dotted, format!("{text:?} from {var} is not an integer"))
                })?),
                Kind::TextList | Kind::SecretList => toml::Value::Array(
                    text.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| toml::Value::String(item.to_owned()))
                        .collect(),
                ),
            };
            let entry = self
                .table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(section_table) = entry.as_table_mut() {
                section_table.insert(key, value);
            }
        }
        Ok(())
    }

    fn get(&self, section: &str, key: &str) -> Option<&toml::Value> {
        self.table.get(section)?.as_table()?.get(key)
    }

    /// Whether the file or the environment gave `[section]` at all.
    pub fn has_section(&self, section: &str) -> bool {
        self.table.contains_key(section)
    }

    pub fn text(&self, section: &str, key: &str) -> Result<Option<&str>, Error> {
        match self.get(section, key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                &format!("{section}.{key}"),
                format!("must be a string, not {}", other.type_str()),
            )),
        }
    }

    pub fn required_text(&self, section: &str, key: &str) -> Result<&str, Error> {
        self.text(section, key)?
            .ok_or_else(|| invalid(&format!("{section}.{key}"), "is required"))
    }

    /// A secret; its errors never quote the value.
    pub fn secret(&self, section: &str, key: &str) -> Result<Option<Secret>, Error> {
        match self.get(section, key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(Secret(s.clone()))),
            Some(other) => Err(invalid(
                &format!("{section}.{key}"),
                format!("must be a string, not {}", other.type_str()),
            )),
        }
    }

    pub fn bool(&self, section: &str, key: &str) -> Result<Option<bool>, Error> {
        match self.get(section, key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(invalid(
                &format!("{section}.{key}"),
                format!("must be true or false, not {}", other.type_str()),
            )),
        }
    }

    /// An integer of at least `min`.
    pub fn integer(&self, section: &str, key: &str, min: u64) -> Result<Option<u64>, Error> {
        let dotted = || format!("{section}.{key}");
        match self.get(section, key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) => match u64::try_from(*n) {
                Ok(n) if n >= min => Ok(Some(n)),
                _ => Err(invalid(&dotted(), format!("{n} is less than {min}"))),
            },
            Some(other) => Err(invalid(
                &dotted(),
                format!("must be an integer, not {}", other.type_str()),
            )),
        }
    }

    /// A span in minutes given as `{base}_hours` or as `{base}_minutes` (for spans that are
    /// not whole hours), at least one minute; both at once is an error naming the second.
    pub fn minutes(&self, section: &str, base: &str) -> Result<Option<u64>, Error> {
        let hours = self.integer(section, &format!("{base}_hours"), 1)?;
        let minutes = self.integer(section, &format!("{base}_minutes"), 1)?;
        match (hours, minutes) {
            (Some(_), Some(_)) => Err(invalid(
                &format!("{section}.{base}_minutes"),
                format!("set {base}_hours or {base}_minutes, not both"),
            )),
            (Some(h), None) => Ok(Some(h.saturating_mul(60))),
            (None, m) => Ok(m),
        }
    }

    pub fn text_list(&self, section: &str, key: &str) -> Result<Vec<String>, Error> {
        let dotted = || format!("{section}.{key}");
        match self.get(section, key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        invalid(
                            &dotted(),
                            format!("must hold strings, not {}", item.type_str()),
                        )
                    })
                })
                .collect(),
            Some(other) => Err(invalid(
                &dotted(),
                format!("must be a list of strings, not {}", other.type_str()),
            )),
        }
    }

    /// A secret of at least `min_chars` characters.
    pub fn long_secret(
        &self,
        section: &str,
        key: &str,
        min_chars: usize,
    ) -> Result<Option<Secret>, Error> {
        match self.secret(section, key)? {
            Some(secret) if secret.len() < min_chars => Err(invalid(
                &format!("{section}.{key}"),
                format!("is {} characters; use at least {min_chars}", secret.len()),
            )),
            other => Ok(other),
        }
    }

    /// A list of `id:secret` entries (earlier signing keys), each secret of at least
    /// `min_chars` characters.
    pub fn keyed_secrets(
        &self,
        section: &str,
        key: &str,
        min_chars: usize,
    ) -> Result<Vec<(String, Secret)>, Error> {
        let dotted = format!("{section}.{key}");
        self.secret_list(section, key)?
            .into_iter()
            .map(|entry| {
                let Some((id, secret)) = entry.expose().split_once(':') else {
                    return Err(invalid(&dotted, "each entry must be id:secret"));
                };
                let n = secret.chars().count();
                if n < min_chars {
                    return Err(invalid(
                        &dotted,
                        format!(
                            "the secret of key {id:?} is {n} characters; use at least {min_chars}"
                        ),
                    ));
                }
                Ok((id.to_owned(), Secret::new(secret)))
            })
            .collect()
    }

    pub fn secret_list(&self, section: &str, key: &str) -> Result<Vec<Secret>, Error> {
        Ok(self
            .text_list(section, key)?
            .into_iter()
            .map(Secret)
            .collect())
    }

    /// An IP address and port, `default` when unset.
    pub fn socket_addr(
        &self,
        section: &str,
        key: &str,
        default: &str,
    ) -> Result<SocketAddr, Error> {
        let text = self.text(section, key)?.unwrap_or(default);
        text.parse().map_err(|_| {
            invalid(
                &format!("{section}.{key}"),
                format!("{text:?} is not an IP address and port such as {default:?}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: Schema = Schema {
        sections: &[
            (
                "gateway",
                &[("listen", Kind::Text), ("token_secret", Kind::Secret)],
            ),
            ("tls", &[("ca", Kind::Text)]),
        ],
        env_prefix: "RENDA_",
        not_config: &[],
        foreign_sections: Foreign::Ignore,
    };

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_keys_are_refused_by_their_dotted_name() {
        let err = Table::parse(
            "[gateway]\nlisten = \"x\"\nlisen = \"y\"\n",
            SCHEMA,
            &env(&[]),
        )
        .expect_err("a typo");
        assert!(
            err.to_string().starts_with("gateway.lisen: unknown key"),
            "{err}"
        );
        let err = Table::parse("[gatway]\n", SCHEMA, &env(&[])).expect_err("a typo");
        assert!(
            err.to_string().starts_with("gatway: unknown section"),
            "{err}"
        );
        let err = Table::parse("", SCHEMA, &env(&[("RENDA_GATEWAY_LISEN", "x")]))
            .expect_err("a typo in the environment");
        assert!(
            err.to_string()
                .contains("gateway.lisen: unknown key (set by RENDA_GATEWAY_LISEN)"),
            "{err}"
        );
    }

    #[test]
    fn the_environment_overrides_and_foreign_sections_are_ignored_when_asked() -> Result<(), Error>
    {
        let t = Table::parse(
            "[gateway]\nlisten = \"file\"\n",
            SCHEMA,
            &env(&[
                ("RENDA_GATEWAY_LISTEN", "env"),
                ("RENDA_NODE_ORG_CODE", "370200"),
                ("OTHER", "x"),
            ]),
        )?;
        assert_eq!(t.text("gateway", "listen")?, Some("env"));
        let strict = Schema {
            foreign_sections: Foreign::Refuse,
            ..SCHEMA
        };
        let err = Table::parse("", strict, &env(&[("RENDA_NODE_ORG_CODE", "370200")]))
            .expect_err("a section this binary does not have");
        assert!(
            err.to_string()
                .starts_with("RENDA_NODE_ORG_CODE: names no config section"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn secrets_never_print() -> Result<(), Error> {
        let t = Table::parse(
            "",
            SCHEMA,
            &env(&[("RENDA_GATEWAY_TOKEN_SECRET", "s3cret-s3cret")]),
        )?;
        let secret = t
            .secret("gateway", "token_secret")?
            .expect("set by the environment");
        assert_eq!(secret.expose(), "s3cret-s3cret");
        assert!(!format!("{secret:?} {t:?}").contains("s3cret"), "{t:?}");
        assert_eq!(format!("{secret:?}"), "<secret>");
        Ok(())
    }
}
