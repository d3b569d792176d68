//! `sluice certs`: a development CA and certificates signed by it (rcgen), for local TLS and
//! the tests. Never for production: the keys are written unencrypted.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("generating a certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What `generate` wrote.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// One `(cert, key)` pair per requested leaf, in order.
    pub leaves: Vec<(PathBuf, PathBuf)>,
}

fn write(path: &Path, contents: &str) -> Result<(), CertsError> {
    std::fs::write(path, contents).map_err(|source| CertsError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Writes a CA (`ca.pem`, `ca-key.pem`) and one leaf per entry of `leaves`:
/// `(file stem, subject alternative names)`, each as `STEM.pem` and `STEM-key.pem`.
pub fn generate(out: &Path, leaves: &[(&str, Vec<String>)]) -> Result<DevCerts, CertsError> {
    std::fs::create_dir_all(out).map_err(|source| CertsError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Sluice Development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let ca_cert = out.join("ca.pem");
    let ca_key_path = out.join("ca-key.pem");
    write(&ca_cert, &ca.pem())?;
    write(&ca_key_path, &ca_key_pem)?;

    let mut written = Vec::new();
    for (stem, names) in leaves {
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().map_or("localhost", String::as_str),
        );
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        let cert_path = out.join(format!("{stem}.pem"));
        let key_path = out.join(format!("{stem}-key.pem"));
        write(&cert_path, &cert.pem())?;
        write(&key_path, &key.serialize_pem())?;
        written.push((cert_path, key_path));
    }
    Ok(DevCerts {
        ca_cert,
        ca_key: ca_key_path,
        leaves: written,
    })
}

/// The default leaf of `sluice certs`: localhost by name and loopback address.
pub fn localhost() -> (&'static str, Vec<String>) {
    (
        "localhost",
        vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ],
    )
}
