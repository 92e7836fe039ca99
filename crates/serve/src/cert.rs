//! A server certificate the embedder replaces while the server runs (an attested certificate
//! is reissued before its claims grow too old for the relying parties' policies), and
//! certificates of their own for host names a client may ask for (TLS server name indication).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The certificate every new TLS connection is given ([`RenewableCert::replace`] swaps it),
/// unless the client asks for a host name that has one of its own
/// ([`RenewableCert::insert_name`]).
#[derive(Debug)]
pub struct RenewableCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// By lower-case host name.
    named: RwLock<BTreeMap<String, Arc<CertifiedKey>>>,
}

impl RenewableCert {
    /// A resolver starting with this certificate and key.
    ///
    /// # Errors
    /// When rustls (ring) cannot use the key.
    pub fn new(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<Self, rustls::Error> {
        Ok(Self { current: RwLock::new(Arc::new(certified(cert, key)?)), named: RwLock::new(BTreeMap::new()) })
    }

    /// Serves this certificate to connections from now on (open ones keep theirs).
    ///
    /// # Errors
    /// When rustls (ring) cannot use the key; the old certificate stays.
    pub fn replace(&self, cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<(), rustls::Error> {
        let next = Arc::new(certified(cert, key)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// Gives connections that ask for `host` (server name indication) this certificate, in
    /// place of the default one (an earlier one for the name is replaced).
    ///
    /// # Errors
    /// When rustls (ring) cannot use the key; nothing changes.
    pub fn insert_name(
        &self,
        host: &str,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), rustls::Error> {
        let next = Arc::new(certified(cert, key)?);
        self.named.write().unwrap_or_else(PoisonError::into_inner).insert(host.to_ascii_lowercase(), next);
        Ok(())
    }

    /// Connections that ask for `host` get the default certificate again.
    pub fn remove_name(&self, host: &str) {
        self.named.write().unwrap_or_else(PoisonError::into_inner).remove(&host.to_ascii_lowercase());
    }
}

fn certified(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Result<CertifiedKey, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(vec![cert], key, &provider)
}

impl ResolvesServerCert for RenewableCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let named = self.named.read().unwrap_or_else(PoisonError::into_inner);
            // rustls gives the name in lower case.
            if let Some(cert) = named.get(name) {
                return Some(Arc::clone(cert));
            }
        }
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}
