//! TLS for client connections: rustls with certificates chosen by SNI, reloaded from disk.
//!
//! Owns loading PEM certificates and keys, choosing one per handshake, and swapping in a new
//! set when the files change (file watch) or on SIGHUP. A set that fails to load leaves the old
//! one serving and the error is logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{CertificateConfig, TlsConfig};

/// Why a certificate set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

fn file_error(path: &std::path::Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// One loaded certificate with the names it answers for.
#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// Names from the config; empty means "ask the certificate".
    names: Vec<String>,
}

/// Every certificate of a listener, indexed for SNI.
#[derive(Debug)]
struct CertSet {
    exact: HashMap<String, usize>,
    wildcard: Vec<(String, usize)>,
    certificates: Vec<Loaded>,
}

impl CertSet {
    fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertSet, TlsError> {
        let mut certificates = Vec::new();
        for certificate in &config.certificates {
            certificates.push(load_one(certificate, provider)?);
        }
        let mut exact = HashMap::new();
        let mut wildcard = Vec::new();
        for (index, loaded) in certificates.iter().enumerate() {
            for name in &loaded.names {
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.push((format!(".{suffix}"), index)),
                    None => {
                        exact.entry(name.clone()).or_insert(index);
                    }
                }
            }
        }
        wildcard.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        if certificates.is_empty() {
            return Err(TlsError::Setup("no certificate configured".into()));
        }
        Ok(CertSet {
            exact,
            wildcard,
            certificates,
        })
    }

    fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let default = || self.certificates.first().map(|c| Arc::clone(&c.key));
        let Some(name) = server_name.map(|n| n.to_ascii_lowercase()) else {
            return default();
        };
        if let Some(index) = self.exact.get(&name) {
            return self.certificates.get(*index).map(|c| Arc::clone(&c.key));
        }
        if let Some((_, index)) = self.wildcard.iter().find(|(suffix, _)| {
            name.ends_with(suffix.as_str())
                && name.len() > suffix.len()
                && !name[..name.len() - suffix.len()].contains('.')
        }) {
            return self.certificates.get(*index).map(|c| Arc::clone(&c.key));
        }
        let dns = ServerName::try_from(name.as_str()).ok()?;
        for loaded in self.certificates.iter().filter(|c| c.names.is_empty()) {
            let Some(der) = loaded.key.cert.first() else {
                continue;
            };
            if let Ok(cert) = webpki::EndEntityCert::try_from(der)
                && cert.verify_is_valid_for_subject_name(&dns).is_ok()
            {
                return Some(Arc::clone(&loaded.key));
            }
        }
        default()
    }
}

fn load_one(config: &CertificateConfig, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let cert_pem = std::fs::read(&config.cert).map_err(|e| file_error(&config.cert, e))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&config.cert, e))?;
    if chain.is_empty() {
        return Err(file_error(&config.cert, "no PEM certificate found"));
    }
    let key_pem = std::fs::read(&config.key).map_err(|e| file_error(&config.key, e))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| file_error(&config.key, e))?
        .ok_or_else(|| file_error(&config.key, "no PEM private key found"))?;
    let key =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| file_error(&config.key, e))?;
    Ok(Loaded {
        key: Arc::new(key),
        names: config.names.clone(),
    })
}

/// Chooses a listener's certificate by SNI; its set can be swapped while serving.
#[derive(Debug)]
pub struct CertResolver {
    set: ArcSwap<CertSet>,
    provider: Arc<CryptoProvider>,
}

impl CertResolver {
    /// Loads every certificate of `config`.
    pub fn load(config: &TlsConfig) -> Result<CertResolver, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let set = CertSet::load(config, &provider)?;
        Ok(CertResolver {
            set: ArcSwap::from_pointee(set),
            provider,
        })
    }

    /// Loads `config` again and swaps it in; on error the old set stays.
    pub fn reload(&self, config: &TlsConfig) -> Result<(), TlsError> {
        let set = CertSet::load(config, &self.provider)?;
        self.set.store(Arc::new(set));
        Ok(())
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().choose(hello.server_name())
    }
}

/// A rustls server config over `resolver`, offering h2 when `http2` is on.
pub fn server_config(
    resolver: Arc<CertResolver>,
    http2: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::clone(&resolver.provider);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The files a TLS config reads, for the watcher.
pub fn files(config: &TlsConfig) -> Vec<PathBuf> {
    config
        .certificates
        .iter()
        .flat_map(|c| [c.cert.clone(), c.key.clone()])
        .collect()
}
