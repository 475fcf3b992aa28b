//! TLS client configuration: rustls with the `ring` provider, the system's root bundle plus every
//! PEM bundle from the config, and readable certificate errors.

use super::Error;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, RootCertStore};
use std::path::PathBuf;
use std::sync::Arc;

/// Where Go looks for the system bundle on Linux, in order; the first one that exists is used.
/// Debian and Ubuntu have the first, Fedora/RHEL (and so Fedora CoreOS) the second and fifth.
pub const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

pub(crate) fn client_config(
    system_files: Option<&[PathBuf]>,
    bundles: &[Vec<u8>],
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    let defaults: Vec<PathBuf> = SYSTEM_CA_FILES.iter().map(PathBuf::from).collect();
    let files = system_files.unwrap_or(&defaults);
    if let Some((path, pem)) = files
        .iter()
        .find_map(|p| std::fs::read(p).ok().map(|d| (p, d)))
    {
        // System bundles may hold certificates webpki rejects; skip those, as Go does.
        let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
        let (added, ignored) = roots.add_parsable_certificates(certs);
        log::debug!(
            "loaded {added} system root certificates from {} ({ignored} ignored)",
            path.display()
        );
    }
    for (index, bundle) in bundles.iter().enumerate() {
        let bad = |reason: String| Error::CaBundle { index, reason };
        let mut count = 0;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(bundle) {
            let (kind, der) =
                section.map_err(|e| bad(format!("unable to decode pem block: {e}")))?;
            if kind != SectionKind::Certificate {
                return Err(bad(format!(
                    "pem block of type {kind:?} is not a certificate"
                )));
            }
            roots
                .add(CertificateDer::from(der))
                .map_err(|e| bad(format!("certificate does not parse: {e}")))?;
            count += 1;
        }
        if count == 0 {
            return Err(bad("no pem certificate found".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            host: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Turns a TLS handshake failure into an error a person can act on.
pub(crate) fn classify(host: &str, err: &std::io::Error) -> Error {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return Error::Tls {
            host: host.into(),
            reason: format!("handshake failed: {err}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => {
            let reason = match cert {
                CertificateError::UnknownIssuer => {
                    "certificate signed by unknown authority".to_string()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    format!("certificate has expired ({cert})")
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!("certificate is not valid yet; is the clock right? ({cert})")
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    format!("certificate is not valid for host \"{host}\" ({cert})")
                }
                other => format!("invalid certificate: {other}"),
            };
            Error::Certificate {
                host: host.into(),
                reason,
            }
        }
        other => Error::Tls {
            host: host.into(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_bundles() {
        let none: &[PathBuf] = &[];
        let err = client_config(Some(none), &[b"not pem at all".to_vec()]).unwrap_err();
        assert!(matches!(err, Error::CaBundle { index: 0, .. }), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = client_config(Some(none), &[garbage.to_vec()]).unwrap_err();
        assert!(err.to_string().contains("bundle #0"), "{err}");
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(client_config(Some(none), &[key.to_vec()]).is_err());
    }

    #[test]
    fn system_bundle_is_optional() {
        let missing = [PathBuf::from("/nonexistent/ca.pem")];
        assert!(client_config(Some(&missing), &[]).is_ok());
    }
}
