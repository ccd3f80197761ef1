//! A TLS redis-server for the TLS suite: a throwaway PKI made with the `openssl` command (a CA,
//! a server certificate for 127.0.0.1 / localhost, a client certificate, and an unrelated CA)
//! and a [`RedisServer`] that also listens with TLS.

use std::{
    fs, io,
    path::Path,
    process::{Command, Stdio},
    sync::atomic::AtomicBool,
};

use crate::{RedisServer, SPAWN_ATTEMPTS, StartError, free_port, make_temp_dir, start_with};

/// Whether the server asks for client certificates (`--tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `no`: any TLS client may connect.
    No,
    /// `yes`: a client without a certificate signed by the CA is refused.
    Required,
}

/// The PEM files of a test PKI, in memory. Keys are unencrypted PKCS#8 (P-256).
#[derive(Clone)]
pub struct Pki {
    /// The CA that signed the server and client certificates.
    pub ca: Vec<u8>,
    /// The server's certificate (SAN: IP 127.0.0.1, DNS localhost).
    pub server_cert: Vec<u8>,
    /// The server's key.
    pub server_key: Vec<u8>,
    /// A client certificate (extended key usage: client auth), signed by [`ca`](Self::ca).
    pub client_cert: Vec<u8>,
    /// The client certificate's key.
    pub client_key: Vec<u8>,
    /// A CA that signed nothing here: trusting only it fails every handshake.
    pub other_ca: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

impl Pki {
    /// Makes a fresh PKI in `dir` (created if missing) with `openssl`.
    ///
    /// # Panics
    ///
    /// If `openssl` is not on `PATH` or fails.
    pub fn generate(dir: &Path) -> Pki {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let config = dir.join("openssl.cnf");
        fs::write(&config, OPENSSL_CONFIG).expect("write the openssl config");
        let config = config.to_str().expect("a UTF-8 temp path").to_owned();
        let path = |name: &str| dir.join(name).to_str().expect("UTF-8").to_owned();
        let self_signed = |name: &str, cn: &str| {
            openssl(&[
                "req",
                "-x509",
                "-config",
                &config,
                "-extensions",
                "ca",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &path(&format!("{name}.key")),
                "-out",
                &path(&format!("{name}.pem")),
            ]);
        };
        let signed = |name: &str, cn: &str, extensions: &str| {
            openssl(&[
                "req",
                "-new",
                "-config",
                &config,
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &path(&format!("{name}.key")),
                "-out",
                &path(&format!("{name}.csr")),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &path(&format!("{name}.csr")),
                "-CA",
                &path("ca.pem"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &config,
                "-extensions",
                extensions,
                "-out",
                &path(&format!("{name}.pem")),
            ]);
        };
        self_signed("ca", "cached-runtime test CA");
        self_signed("other-ca", "unrelated test CA");
        signed("server", "localhost", "server");
        signed("client", "cached-runtime test client", "client");
        let read = |name: &str| {
            fs::read(dir.join(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
        };
        Pki {
            ca: read("ca.pem"),
            server_cert: read("server.pem"),
            server_key: read("server.key"),
            client_cert: read("client.pem"),
            client_key: read("client.key"),
            other_ca: read("other-ca.pem"),
        }
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "openssl {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            panic!("openssl not found on PATH: the TLS tests make their certificates with it")
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    }
}

/// A [`RedisServer`] that also listens with TLS on [`tls_port`](Self::tls_port), with the
/// certificates of its own [`Pki`]. Its plain-text port stays open for the harness's
/// [`cmd`](RedisServer::cmd) and readiness checks; dropping it kills the server and removes
/// its directory, PKI included.
#[derive(Debug)]
pub struct TlsRedisServer {
    server: RedisServer,
    tls_port: u16,
    pki: Pki,
}

impl TlsRedisServer {
    /// Makes a PKI and spawns the server (retrying on other ports if one is taken).
    ///
    /// # Panics
    ///
    /// If `openssl` or `redis-server` (built with TLS) is missing, or the server cannot start.
    pub fn spawn(client_auth: ClientAuth) -> TlsRedisServer {
        let dir = make_temp_dir();
        let pki_dir = dir.join("pki");
        let pki = Pki::generate(&pki_dir);
        let file = |name: &str| pki_dir.join(name).to_str().expect("UTF-8").to_owned();
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let (port, tls_port) = (free_port(), free_port());
            if port == tls_port {
                continue;
            }
            let args = [
                "--tls-port".to_owned(),
                tls_port.to_string(),
                "--tls-cert-file".to_owned(),
                file("server.pem"),
                "--tls-key-file".to_owned(),
                file("server.key"),
                "--tls-ca-cert-file".to_owned(),
                file("ca.pem"),
                "--tls-auth-clients".to_owned(),
                match client_auth {
                    ClientAuth::No => "no",
                    ClientAuth::Required => "yes",
                }
                .to_owned(),
            ];
            match start_with(port, &dir, &args) {
                Ok(child) => {
                    return TlsRedisServer {
                        server: RedisServer {
                            port,
                            dir,
                            child: Some(child),
                            paused: AtomicBool::new(false),
                        },
                        tls_port,
                        pki,
                    };
                }
                Err(StartError::Exited(msg) | StartError::NotReady(msg)) => {
                    failures.push(format!("ports {port}/{tls_port}: {msg}"));
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "could not start redis-server with TLS after {SPAWN_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// The TLS port (on 127.0.0.1).
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// `rediss://127.0.0.1:TLS_PORT/0`.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.tls_port)
    }

    /// The certificates and keys.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The server, for [`cmd`](RedisServer::cmd) on its plain-text port. (Its `restart`
    /// would bring it back without TLS.)
    pub fn server(&self) -> &RedisServer {
        &self.server
    }
}
