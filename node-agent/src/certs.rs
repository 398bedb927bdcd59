//! The city's certificate authority and the node certificates it signs (design.md §4).
//!
//! A node certificate names its node with a SAN URI `renda://node/<level>/<org_code>`, read back
//! by [`renda_tls::identity_from_cert`], plus DNS and IP SANs for the addresses it listens on.
//! Keys are ECDSA P-256, generated with ring. Key files are written with mode 0600 and existing
//! files are never overwritten.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Days, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use renda_tls::{GatewayIdentity, Level, NodeIdentity, OrgCode};

/// How long a CA certificate is valid.
const CA_VALID_YEARS: i32 = 20;
/// How long a node certificate is valid.
const NODE_VALID_YEARS: i32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{code} is not a city code (a city CA needs six digits ending in 00)")]
    NotACity { code: OrgCode },
    #[error("{0} is not a valid DNS name for a certificate")]
    DnsName(String),
    #[error("cannot create certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path} already exists; remove it first to replace it")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a renda-mesh city CA certificate: {reason}")]
    NotOurCa { path: PathBuf, reason: String },
    #[error("node {node} is not in city {city}, whose CA would sign it")]
    OutsideCity { node: NodeIdentity, city: OrgCode },
}

/// The city CA: its certificate and its signing key, both PEM.
pub struct CertificateAuthority {
    city: OrgCode,
    cert_pem: String,
    key: KeyPair,
}

/// A node certificate and its private key, both PEM.
pub struct NodeCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The extra names a node certificate is valid for, so that children can dial it by name.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

fn ca_name(city: &OrgCode) -> String {
    format!("renda-mesh city CA {city}")
}

/// The CA's parameters, rebuilt identically from the city code whenever the CA signs, so that
/// the issuer name in every node certificate matches the CA certificate's subject.
fn ca_params(city: &OrgCode) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, ca_name(city));
    name.push(DnType::OrganizationName, "renda-mesh");
    params.distinguished_name = name;
    // Only node certificates sit below the city CA, so no intermediate CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Sets the validity from yesterday (to tolerate a node whose clock is a little behind) for
/// `years` years.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let now = Utc::now().date_naive();
    let start = now.checked_sub_days(Days::new(1)).unwrap_or(now);
    // The 28th exists in every month, so the end date is always valid.
    let end_day = u8::try_from(start.day().min(28)).unwrap_or(28);
    let month = u8::try_from(start.month()).unwrap_or(1);
    let day = u8::try_from(start.day()).unwrap_or(1);
    params.not_before = rcgen::date_time_ymd(start.year(), month, day);
    params.not_after = rcgen::date_time_ymd(start.year() + years, month, end_day);
}

impl CertificateAuthority {
    /// Creates a new self-signed CA for a city.
    pub fn generate(city: &OrgCode) -> Result<Self, Error> {
        let identity =
            NodeIdentity::new(Level::City, *city).map_err(|_| Error::NotACity { code: *city })?;
        let mut params = ca_params(&identity.org_code)?;
        set_validity(&mut params, CA_VALID_YEARS);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            city: identity.org_code,
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads a CA written by [`CertificateAuthority::write`].
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let key = KeyPair::from_pem(&key_pem)?;
        let city = city_of_ca(&cert_path, &cert_pem)?;
        Ok(CertificateAuthority {
            city,
            cert_pem,
            key,
        })
    }

    pub fn city(&self) -> &OrgCode {
        &self.city
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`, creating it if needed.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
        create_dir(dir)?;
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        write_new(&cert_path, self.cert_pem.as_bytes(), 0o644)?;
        write_new(&key_path, self.key.serialize_pem().as_bytes(), 0o600)?;
        Ok((cert_path, key_path))
    }

    /// Signs a certificate for `node`, valid for both server and client authentication.
    pub fn issue(&self, node: &NodeIdentity, hosts: &Hosts) -> Result<NodeCertificate, Error> {
        if node.org_code.city() != self.city {
            return Err(Error::OutsideCity {
                node: node.clone(),
                city: self.city,
            });
        }
        let mut sans = vec![SanType::URI(node.san_uri().try_into()?)];
        for dns in &hosts.dns {
            let name = dns
                .as_str()
                .try_into()
                .map_err(|_| Error::DnsName(dns.clone()))?;
            sans.push(SanType::DnsName(name));
        }
        sans.extend(hosts.ips.iter().copied().map(SanType::IpAddress));
        self.sign(
            format!("renda-mesh {} {}", node.level, node.org_code),
            &node.org_code,
            sans,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// Signs a certificate for this city's gateway(s): a client certificate only (a gateway
    /// dials the city node and never serves gRPC), named `renda://gateway/<city>`, which a
    /// node accepts for reports and log-in only.
    pub fn issue_gateway(&self) -> Result<NodeCertificate, Error> {
        let gateway =
            GatewayIdentity::new(self.city).map_err(|_| Error::NotACity { code: self.city })?;
        self.sign(
            format!("renda-mesh gateway {}", gateway.city),
            &gateway.city,
            vec![SanType::URI(gateway.san_uri().try_into()?)],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn sign(
        &self,
        common_name: String,
        unit: &OrgCode,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<NodeCertificate, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        name.push(DnType::OrganizationName, "renda-mesh");
        name.push(DnType::OrganizationalUnitName, unit.to_string());
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = sans;
        set_validity(&mut params, NODE_VALID_YEARS);

        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(&self.city)?, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodeCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl NodeCertificate {
    /// Writes `<org_code>.pem` and `<org_code>.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &Path, org_code: &OrgCode) -> Result<(PathBuf, PathBuf), Error> {
        self.write_as(dir, &org_code.to_string())
    }

    /// Writes `<stem>.pem` and `<stem>.key` (mode 0600) into `dir`.
    pub fn write_as(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), Error> {
        create_dir(dir)?;
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        write_new(&cert_path, self.cert_pem.as_bytes(), 0o644)?;
        write_new(&key_path, self.key_pem.as_bytes(), 0o600)?;
        Ok((cert_path, key_path))
    }
}

/// Reads the city code from a CA certificate's common name, checking that it is a CA of ours.
fn city_of_ca(path: &Path, pem: &str) -> Result<OrgCode, Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let not_ours = |reason: &str| Error::NotOurCa {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| not_ours(&format!("no PEM certificate ({e})")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| not_ours(&format!("not X.509 ({e})")))?;
    if !cert.is_ca() {
        return Err(not_ours("not a CA certificate"));
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| not_ours("no common name"))?;
    let code = common_name
        .strip_prefix("renda-mesh city CA ")
        .ok_or_else(|| not_ours("common name does not start with \"renda-mesh city CA\""))?;
    let city: OrgCode = code
        .parse()
        .map_err(|e: renda_org::Error| not_ours(&e.to_string()))?;
    if ca_name(&city) != common_name {
        return Err(not_ours("unexpected common name"));
    }
    Ok(city)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes a new file with `mode`; refuses to replace an existing one, so a CA key is never lost
/// by running `init-ca` twice.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists {
                    path: path.to_owned(),
                }
            } else {
                Error::Write {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

/// `node-agent certs init-ca`: creates the city CA in `out`.
pub fn init_ca(out: &Path, city: &OrgCode) -> Result<(PathBuf, PathBuf), Error> {
    CertificateAuthority::generate(city)?.write(out)
}

/// `node-agent certs issue`: signs a node certificate with the CA in `ca_dir` and writes it to
/// `out`, together with a copy of `ca.pem` (which the node needs to check its peers) unless `out`
/// already holds one.
pub fn issue(
    ca_dir: &Path,
    node: &NodeIdentity,
    hosts: &Hosts,
    out: &Path,
) -> Result<(PathBuf, PathBuf), Error> {
    let ca = CertificateAuthority::load(ca_dir)?;
    let written = ca.issue(node, hosts)?.write(out, &node.org_code)?;
    let ca_copy = out.join("ca.pem");
    if !ca_copy.exists() {
        write_new(&ca_copy, ca.cert_pem().as_bytes(), 0o644)?;
    }
    Ok(written)
}

/// `node-agent certs issue-gateway`: signs the city's gateway certificate and writes
/// `gateway-<city>.pem`, `gateway-<city>.key` and a copy of `ca.pem` into `out`.
pub fn issue_gateway(ca_dir: &Path, out: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let ca = CertificateAuthority::load(ca_dir)?;
    let written = ca
        .issue_gateway()?
        .write_as(out, &format!("gateway-{}", ca.city()))?;
    let ca_copy = out.join("ca.pem");
    if !ca_copy.exists() {
        write_new(&ca_copy, ca.cert_pem().as_bytes(), 0o644)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_are_written_once_with_private_keys_0600() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let city: OrgCode = "370200".parse()?;
        let (ca_pem, ca_key) = init_ca(dir.path(), &city)?;
        assert_eq!(
            std::fs::metadata(&ca_key)?.permissions().mode() & 0o777,
            0o600
        );
        assert!(std::fs::read_to_string(&ca_pem)?.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(matches!(
            init_ca(dir.path(), &city),
            Err(Error::Exists { .. })
        ));

        let node = NodeIdentity::new(Level::Township, "370202001".parse()?)?;
        let out = dir.path().join("node");
        let hosts = Hosts {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse()?],
        };
        let (cert, key) = issue(dir.path(), &node, &hosts, &out)?;
        assert_eq!(
            cert.file_name().and_then(|n| n.to_str()),
            Some("370202001.pem")
        );
        assert_eq!(std::fs::metadata(&key)?.permissions().mode() & 0o777, 0o600);
        assert!(out.join("ca.pem").exists());
        Ok(())
    }

    #[test]
    fn a_city_ca_signs_only_its_own_city() -> anyhow::Result<()> {
        let ca = CertificateAuthority::generate(&"370200".parse()?)?;
        let elsewhere = NodeIdentity::new(Level::Township, "370302001".parse()?)?;
        assert!(matches!(
            ca.issue(&elsewhere, &Hosts::default()),
            Err(Error::OutsideCity { .. })
        ));
        assert!(matches!(
            CertificateAuthority::generate(&"370202".parse()?),
            Err(Error::NotACity { .. })
        ));
        Ok(())
    }
}
