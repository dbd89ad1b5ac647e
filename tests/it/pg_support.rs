//! PostgreSQL for the tests: a fresh database per test on the server `scripts/test.sh` starts
//! (`MEDIASPOOL_TEST_POSTGRES_URL`), and servers of a test's own for tests that stop one.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn required(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: {what} is needed. Run the tests through scripts/test.sh, which installs and starts it.")
    })
}

/// The URL of database `db` on the server of `url`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let server = &base[..base.rfind('/').expect("a URL with a database")];
    match query {
        "" => format!("{server}/{db}"),
        q => format!("{server}/{db}?{q}"),
    }
}

/// Runs `sql` (one or more statements) on the database of `url`. On a thread of its own, so
/// that async tests may call it too.
pub fn run_sql(url: &str, sql: &str) {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {url}: {e}"));
                tokio::spawn(connection);
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            });
        });
    });
}

/// A new, empty database on the shared test server; its URL.
pub fn fresh_database() -> String {
    let url = required("MEDIASPOOL_TEST_POSTGRES_URL", "a PostgreSQL server");
    let seed = format!(
        "{:?}{:?}",
        std::time::SystemTime::now(),
        std::thread::current().id()
    );
    let name = format!("ms_{}", &blake3::hash(seed.as_bytes()).to_hex()[..16]);
    run_sql(&url, &format!("CREATE DATABASE {name}"));
    with_database(&url, &name)
}

/// A PostgreSQL server of a test's own, on a free port, stopped and removed on drop.
pub struct OwnServer {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    user: String,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        let bin = PathBuf::from(required(
            "MEDIASPOOL_TEST_PG_BIN",
            "PostgreSQL's initdb and pg_ctl",
        ));
        let user = required("MEDIASPOOL_TEST_PG_USER", "the user PostgreSQL runs as");
        let dir = tempfile::Builder::new()
            .prefix("mediaspool-pg-")
            .tempdir()
            .unwrap();
        let chown = Command::new("chown")
            .args([&user, dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let server = OwnServer {
            port: free_port(),
            dir,
            bin,
            user,
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.start_again();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let mut cmd = match self.user == whoami() {
            true => Command::new(&tool),
            false => {
                let mut c = Command::new("runuser");
                c.args(["-u", &self.user, "--"]).arg(&tool);
                c
            }
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Stops the server at once (connections are cut, as in a crash or a restart).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let data = self.data();
        let tool = self.bin.join("pg_ctl");
        let _ = match self.user == whoami() {
            true => Command::new(tool)
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output(),
            false => Command::new("runuser")
                .args(["-u", &self.user, "--"])
                .arg(tool)
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output(),
        };
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits for `f` to give `Some` (panics after `limit`).
pub fn wait<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
