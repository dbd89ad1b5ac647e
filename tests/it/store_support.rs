//! Object-store servers for the store tests: the S3 server (moto) and Azurite that
//! `scripts/test.sh` starts, servers of their own for tests that stop or restart one, buckets
//! and containers, and checks with independent clients (curl, the AWS CLI).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

fn required(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: {what} is needed. Run the tests through scripts/test.sh, which installs and starts it.")
    })
}

/// Credentials and settings every S3 client here gets; never the user's own files, never
/// the instance metadata service.
pub const AWS_ENV: [(&str, &str); 6] = [
    ("AWS_ACCESS_KEY_ID", "mediaspool-test"),
    ("AWS_SECRET_ACCESS_KEY", "mediaspool-test-secret"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// A distinct bucket or container name per test.
pub fn unique_name(prefix: &str) -> String {
    let seed = format!(
        "{prefix}{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    format!("{prefix}-{}", &blake3::hash(seed.as_bytes()).to_hex()[..12])
}

/// An S3 server: the one the test command started, or one of a test's own.
pub struct S3Server {
    pub endpoint: String,
    pub port: u16,
    child: Option<Child>,
}

impl S3Server {
    pub fn shared() -> S3Server {
        let endpoint = required("MEDIASPOOL_TEST_S3_ENDPOINT", "an S3 server (moto)");
        let port = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        S3Server {
            endpoint,
            port,
            child: None,
        }
    }

    /// A moto server of this test's own, on a port the system picks (`0`) or on `port`.
    pub fn start_own(port: u16, env: &[(&str, &str)]) -> S3Server {
        let moto = required("MEDIASPOOL_TEST_MOTO_SERVER", "moto's server");
        let mut cmd = Command::new(moto);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("moto starts");
        let port = listening_port(&mut child, "moto");
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child: Some(child),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("a server of this test's own").id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes no pointers; the pid is the server we started.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// SIGKILL: everything it held (moto keeps data in memory) is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // SAFETY: kill takes no pointers; the pid is our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
        }
        self.kill();
    }
}

/// Reads a server's output until it names the `http://127.0.0.1:PORT` it listens on, then
/// keeps draining it in the background (a full pipe would block the server).
fn listening_port(child: &mut Child, what: &str) -> u16 {
    let out = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if !sent {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let port: String = line[at + 17..].chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(port) = port.parse::<u16>() {
                        if port != 0 {
                            let _ = tx.send(port);
                            sent = true;
                        }
                    }
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} did not say which port it listens on"))
}

/// A bucket on an S3 server, checked with the AWS CLI (an independent client).
pub struct Bucket {
    pub endpoint: String,
    pub name: String,
}

impl Bucket {
    pub fn create(server: &S3Server) -> Bucket {
        let bucket = Bucket {
            endpoint: server.endpoint.clone(),
            name: unique_name("t"),
        };
        bucket.s3api(&["create-bucket", "--bucket", &bucket.name]);
        bucket
    }

    /// A new bucket keeping every version of every object, so that each write of a key
    /// shows (see [`Bucket::versions`]).
    pub fn create_versioned(server: &S3Server) -> Bucket {
        let bucket = Bucket::create(server);
        bucket.s3api(&[
            "put-bucket-versioning",
            "--bucket",
            &bucket.name,
            "--versioning-configuration",
            "Status=Enabled",
        ]);
        bucket
    }

    /// `aws s3api ARGS` against this server, as JSON (`Null` for no output).
    pub fn s3api(&self, args: &[&str]) -> Value {
        let aws = required("MEDIASPOOL_TEST_AWS_CLI", "the AWS CLI");
        let out = Command::new(aws)
            .args(["--endpoint-url", &self.endpoint, "--output", "json", "s3api"])
            .args(args)
            .envs(AWS_ENV)
            .output()
            .expect("aws runs");
        assert!(
            out.status.success(),
            "aws s3api {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        }
    }

    /// The `[store]` section for this bucket, plus `extra` lines.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[store]\nkind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\npath_style = true\n{extra}\n",
            self.name, self.endpoint
        )
    }

    /// Keys in the bucket with how many times each was written (bucket versioning on).
    pub fn versions(&self) -> std::collections::BTreeMap<String, usize> {
        let listed = self.s3api(&["list-object-versions", "--bucket", &self.name]);
        let mut counts = std::collections::BTreeMap::new();
        for v in listed["Versions"].as_array().cloned().unwrap_or_default() {
            *counts.entry(v["Key"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
        counts
    }

    pub fn open_multipart_uploads(&self) -> Vec<Value> {
        let listed = self.s3api(&["list-multipart-uploads", "--bucket", &self.name]);
        listed["Uploads"].as_array().cloned().unwrap_or_default()
    }
}

/// A GET with curl (an independent client): status, response headers (lower-case names)
/// and the body written to `to`.
pub fn curl_get(url: &str, to: &Path) -> (u16, std::collections::BTreeMap<String, String>) {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o"])
        .arg(to)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// A port nothing listens on (bound, then closed).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Azurite, which the test command started: its blob endpoint (path-style, account
/// `devstoreaccount1`) and its well-known key.
pub struct Azurite {
    pub endpoint: String,
}

pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    pub fn shared() -> Azurite {
        Azurite {
            endpoint: required("MEDIASPOOL_TEST_AZURE_ENDPOINT", "Azurite"),
        }
    }

    /// Creates a container with a Shared Key signed request, and returns its name.
    pub fn create_container(&self) -> String {
        let name = unique_name("t");
        let url = format!("{}/{name}?restype=container", self.endpoint);
        let date = httpdate_now();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        );
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let key = engine.decode(AZURITE_KEY).unwrap();
        let signature = engine.encode(hmac_sha256(&key, to_sign.as_bytes()));
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                "Content-Length: 0",
            ])
            .args(["-H", &format!("x-ms-date: {date}")])
            .args(["-H", &format!("x-ms-version: {version}")])
            .args([
                "-H",
                &format!("Authorization: SharedKey {AZURITE_ACCOUNT}:{signature}"),
            ])
            .arg(&url)
            .output()
            .expect("curl runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "201",
            "create container {name}"
        );
        name
    }

    pub fn config(&self, container: &str, extra: &str) -> String {
        format!(
            "[store]\nkind = \"azure\"\nbucket = \"{container}\"\nendpoint = \"{}\"\naccount = \"{AZURITE_ACCOUNT}\"\naccess_key = \"{AZURITE_KEY}\"\n{extra}\n",
            self.endpoint
        )
    }
}

fn httpdate_now() -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::now_utc().format(&format).unwrap()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A TCP forwarder on a port of its own to a server that can be swapped or taken away:
/// connections while it has no target are closed at once (a server that is down).
pub struct Proxy {
    pub port: u16,
    target: Arc<Mutex<Option<u16>>>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Some(target)));
        let current = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let target = *current.lock().unwrap();
                let Some(server) = target.and_then(|t| TcpStream::connect(("127.0.0.1", t)).ok()) else {
                    continue; // dropped: the connection closes
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Proxy { port, target: shared }
    }

    pub fn set_target(&self, target: Option<u16>) {
        *self.target.lock().unwrap() = target;
    }
}

/// `n` distinct small PNG pictures (one made by ffmpeg, then told apart by bytes after its
/// end, which decoders ignore): quick media work, so store behaviour dominates a run.
pub fn distinct_pictures(dir: &Path, n: usize) -> Vec<PathBuf> {
    let base = dir.join("base.png");
    crate::common::make_media(
        &["-f", "lavfi", "-i", "testsrc2=size=96x64", "-frames:v", "1"],
        &base,
    );
    let bytes = std::fs::read(&base).unwrap();
    (0..n)
        .map(|i| {
            let path = dir.join(format!("pic-{i:03}.png"));
            let mut distinct = bytes.clone();
            distinct.extend_from_slice(format!("mediaspool-{i}").as_bytes());
            std::fs::write(&path, distinct).unwrap();
            path
        })
        .collect()
}
