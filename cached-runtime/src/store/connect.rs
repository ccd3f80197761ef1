//! Making the Redis client: URL checks, TLS (rustls with the `ring` provider, webpki roots or a
//! private CA, client certificates), the connection manager's settings, and the redaction of
//! URLs for every message that shows one.

use std::{fmt, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{Error, ErrorKind};

/// TLS settings of a `rediss://` connection beyond the URL; set by
/// `CacheBuilder::tls_root_ca` and `CacheBuilder::tls_client_auth`.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    /// PEM certificates trusted instead of the webpki roots.
    pub(crate) root_ca: Option<Vec<u8>>,
    /// PEM certificate chain and PEM private key for mutual TLS.
    pub(crate) client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsOptions {
    fn is_set(&self) -> bool {
        self.root_ca.is_some() || self.client_auth.is_some()
    }
}

/// Never prints the key, nor the certificates (only their sizes).
impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            root_ca,
            client_auth,
        } = self;
        let mut d = f.debug_struct("TlsOptions");
        if let Some(pem) = root_ca {
            d.field("root_ca", &format_args!("<{} bytes of PEM>", pem.len()));
        }
        if let Some((cert, _key)) = client_auth {
            d.field(
                "client_cert",
                &format_args!("<{} bytes of PEM>", cert.len()),
            )
            .field("client_key", &format_args!("<redacted>"));
        }
        d.finish()
    }
}

/// Whether `url` asks for TLS (`rediss://`, `valkeys://`, in any case).
fn is_tls(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// The Redis client for `url`, with `tls` applied. Fails (never panics) for a URL that does not
/// parse, TLS without the `tls` feature, TLS options on a plain-text URL, or PEM that does not
/// hold what it should. Nothing is connected here.
pub(crate) fn client(url: &str, tls: &TlsOptions) -> Result<redis::Client, Error> {
    let tls_url = is_tls(url);
    if tls_url && !cfg!(feature = "tls") {
        return Err(Error::config(format!(
            "`{}` uses TLS: enable the `tls` feature of cached-runtime",
            redact(url)
        )));
    }
    if tls.is_set() && !tls_url {
        return Err(Error::config(format!(
            "tls_root_ca / tls_client_auth need a `rediss://` URL, got `{}`",
            redact(url)
        )));
    }
    let invalid = |e: redis::RedisError| {
        Error::config(format!(
            "invalid Redis URL `{}`: {}",
            redact(url),
            scrub(&e.to_string(), url)
        ))
    };
    #[cfg(feature = "tls")]
    if tls_url {
        install_crypto_provider();
        check_tls(tls)?;
        let client = match certificates(tls) {
            Some(certificates) => redis::Client::build_with_tls(url, certificates),
            None => redis::Client::open(url),
        }
        .map_err(invalid)?;
        if let redis::ConnectionAddr::TcpTls { insecure: true, .. } =
            client.get_connection_info().addr()
        {
            tracing::warn!(
                url = %redact(url),
                "`#insecure`: the Redis server's TLS certificate is not verified"
            );
        }
        return Ok(client);
    }
    redis::Client::open(url).map_err(invalid)
}

/// The private CA and client certificate of `tls` as redis-rs takes them; `None` if neither is
/// set (the webpki roots, no client certificate).
#[cfg(feature = "tls")]
pub(crate) fn certificates(tls: &TlsOptions) -> Option<redis::TlsCertificates> {
    tls.is_set().then(|| redis::TlsCertificates {
        client_tls: tls
            .client_auth
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.root_ca.clone(),
    })
}

/// A lazily connecting, auto-reconnecting connection: one attempt per (re)connection, bounded
/// by `connect_timeout`.
pub(crate) fn manager(
    client: redis::Client,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> Result<ConnectionManager, Error> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        // One attempt per (re)connection: while Redis is down each call should fail fast
        // into its body, not sit in a backoff loop. The next call tries again.
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidConfig,
            "cannot create the Redis connection manager",
            e,
        )
    })
}

/// Makes rustls usable by redis-rs, which builds its `ClientConfig` from the process-wide
/// default provider: installs `ring`'s unless the application installed one. (rustls alone
/// would panic at the first connection when the build enables more than one provider.)
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: there is a default either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Parses the TLS options as a connection would, so that bad PEM fails `build()` with a clear
/// message instead of every connection attempt.
#[cfg(feature = "tls")]
fn check_tls(tls: &TlsOptions) -> Result<(), Error> {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

    fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::config(format!("{what}: invalid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::config(format!(
                "{what}: no `BEGIN CERTIFICATE` block found in the PEM"
            )));
        }
        Ok(certs)
    }

    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = &tls.root_ca {
        for cert in certificates(pem, "tls_root_ca")? {
            roots.add(cert).map_err(|e| {
                Error::config(format!("tls_root_ca: not a usable CA certificate: {e}"))
            })?;
        }
    }
    if let Some((cert, key)) = &tls.client_auth {
        let chain = certificates(cert, "tls_client_auth certificate")?;
        // The key's own text never goes into a message: only what kind of problem it has.
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            let why = match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block found"
                }
                _ => "malformed PEM",
            };
            Error::config(format!("tls_client_auth key: {why}"))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                Error::config(format!(
                    "tls_client_auth: the certificate and key are not usable: {e}"
                ))
            })?;
    }
    Ok(())
}

/// The URL for messages: the whole user-info part (user name, password, token) becomes
/// `***`, parseable URL or not, and so do the `user`/`pass` query parameters of a Unix socket
/// URL. `redis://alice:s3cret@host:6379/0` → `redis://***@host:6379/0`.
///
/// Everything before the *last* `@` is user info (a password may hold an `@`); with no `://`
/// it starts at the beginning. A URL whose query holds an `@` loses its host too: more hidden
/// than needed, never less.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    let rest = match rest.rfind('@') {
        Some(at) => {
            out.push_str("***");
            &rest[at..]
        }
        None => rest,
    };
    let (before_fragment, fragment) = match rest.find('#') {
        Some(hash) => rest.split_at(hash),
        None => (rest, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((name, _))
                        if ["pass", "password", "user", "username"]
                            .iter()
                            .any(|secret| name.eq_ignore_ascii_case(secret)) =>
                    {
                        out.push_str(name);
                        out.push_str("=***");
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    out
}

/// `text` (an error message about `url`) with the URL and its credentials replaced by `***`,
/// raw and percent-decoded.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut secrets: Vec<String> = vec![url.to_owned()];
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if let Some(at) = rest.rfind('@') {
        let userinfo = &rest[..at];
        secrets.push(userinfo.to_owned());
        secrets.extend(userinfo.split(':').map(str::to_owned));
    }
    for pair in rest.split(['?', '&', '#']) {
        if let Some((name, value)) = pair.split_once('=')
            && ["pass", "password", "user", "username"]
                .iter()
                .any(|secret| name.eq_ignore_ascii_case(secret))
        {
            secrets.push(value.to_owned());
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    // Longest first, so a password inside the URL is not replaced before the URL is.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_owned();
    for secret in secrets {
        // Short fragments (a one-letter user name) would mangle the message, and hide little.
        if secret.len() >= 3 && text.contains(&secret) {
            text = text.replace(&secret, "***");
        }
    }
    text
}

/// `%XX` sequences decoded, lossily (for matching only).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{TlsOptions, redact, scrub};

    #[test]
    fn redacts_the_whole_userinfo() {
        for (url, redacted) in [
            ("redis://u:secret@h:1/0", "redis://***@h:1/0"),
            ("redis://:secret@h", "redis://***@h"),
            ("redis://TOKEN@host:abc", "redis://***@host:abc"),
            ("redis://u%3ATOKEN@host", "redis://***@host"),
            ("rediss://alice:p@ss@w0rd@h:6380/2", "rediss://***@h:6380/2"),
            (
                "redis://u:pa/ss?x@h:1/0?protocol=resp3",
                "redis://***@h:1/0?protocol=resp3",
            ),
            ("redis://u:pw@h:1/0#insecure", "redis://***@h:1/0#insecure"),
            ("alice:s3cret@localhost:6379", "***@localhost:6379"),
            ("redis:/alice:s3cret@localhost", "***@localhost"),
            ("redis://@h", "redis://***@h"),
            (
                "redis+unix:///run/redis.sock?db=1&user=alice&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&user=***&pass=***",
            ),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }

    #[test]
    fn leaves_urls_without_credentials_alone() {
        for url in [
            "redis://h:6379",
            "redis://127.0.0.1:6379/0",
            "rediss://[::1]:6380/1?protocol=resp3#insecure",
            "localhost:6379",
            "",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[test]
    fn scrubs_credentials_from_messages() {
        let url = "redis://alice:s%40cret@h:1/0";
        let text = format!("failed for {url}: user alice, password s@cret / s%40cret");
        let scrubbed = scrub(&text, url);
        for secret in ["alice", "s@cret", "s%40cret"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert_eq!(scrub("Connection refused", url), "Connection refused");
    }

    #[test]
    fn tls_options_debug_hides_the_key() {
        let tls = TlsOptions {
            root_ca: Some(b"-----BEGIN CERTIFICATE-----\nCA\n".to_vec()),
            client_auth: Some((
                b"CERT".to_vec(),
                b"-----BEGIN PRIVATE KEY-----KEYDATA".to_vec(),
            )),
        };
        let debug = format!("{tls:?}");
        assert!(
            !debug.contains("KEYDATA") && !debug.contains("PRIVATE"),
            "{debug}"
        );
        assert!(!debug.contains("CERT\""), "{debug}");
    }

    #[test]
    fn tls_options_need_a_tls_url() {
        let tls = TlsOptions {
            root_ca: Some(Vec::new()),
            client_auth: None,
        };
        let err = super::client("redis://u:s3cret@h:1/0", &tls).unwrap_err();
        assert!(err.is_config());
        assert!(err.to_string().contains("rediss://"), "{err}");
        assert!(!format!("{err}{err:?}").contains("s3cret"), "{err:?}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_without_options_installs_a_crypto_provider() {
        let client = super::client("rediss://127.0.0.1:1/0", &TlsOptions::default());
        assert!(client.is_ok(), "{:?}", client.err());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn invalid_pem_is_a_config_error() {
        let garbage = b"not a certificate".to_vec();
        for tls in [
            TlsOptions {
                root_ca: Some(garbage.clone()),
                client_auth: None,
            },
            TlsOptions {
                root_ca: Some(
                    b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
                ),
                client_auth: None,
            },
            TlsOptions {
                root_ca: None,
                client_auth: Some((garbage.clone(), garbage.clone())),
            },
        ] {
            let err = super::client("rediss://127.0.0.1:1/0", &tls).unwrap_err();
            assert!(err.is_config(), "{err}");
            assert!(err.to_string().contains("tls_"), "{err}");
        }
    }
}
