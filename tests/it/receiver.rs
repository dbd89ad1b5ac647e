//! A real HTTP receiver on 127.0.0.1 (port 0) for the delivery tests: it verifies every
//! request's Standard Webhooks signature and timestamp, answers as the test scripts it, and can
//! go down (connections refused) and come back on the same port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use mediaspool::delivery::signing::{verify, Secret};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How to answer one request: status, headers, body, delay before answering.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: "{}".into(),
            delay: Duration::ZERO,
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    pub at: std::time::Instant,
}

type Script = Box<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

#[derive(Default)]
pub struct Log {
    /// Every request answered, in order, with the status it got.
    pub requests: Vec<Received>,
    /// The webhook-id of every request as it arrives (before it is answered).
    pub arrivals: Vec<String>,
    /// Requests whose signature or timestamp did not verify.
    pub forged: Vec<String>,
}

impl Log {
    /// Ids answered 2xx, in order.
    pub fn accepted(&self) -> Vec<&Received> {
        self.requests
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    pub fn accepted_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.accepted() {
            *counts.entry(r.id.clone()).or_default() += 1;
        }
        counts
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Log>>,
    script: Arc<Script>,
    secret: Option<Secret>,
    runtime: tokio::runtime::Runtime,
    serving: Option<JoinSet<()>>,
}

impl Receiver {
    /// Starts on a free port; `secret` (if any) is what signatures are checked with.
    pub fn start(
        secret: Option<&str>,
        script: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let mut r = Receiver {
            addr: listener.local_addr().unwrap(),
            log: Arc::default(),
            script: Arc::new(Box::new(script)),
            secret: secret.map(|s| Secret::parse(s).unwrap()),
            runtime,
            serving: None,
        };
        r.serve(listener);
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut set = JoinSet::new();
        let (log, script, secret) = (
            Arc::clone(&self.log),
            Arc::clone(&self.script),
            self.secret.clone(),
        );
        set.spawn_on(
            async move {
                let mut connections = JoinSet::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (log, script, secret) = (Arc::clone(&log), Arc::clone(&script), secret.clone());
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(req, Arc::clone(&log), Arc::clone(&script), secret.clone())
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            },
            self.runtime.handle(),
        );
        self.serving = Some(set);
    }

    /// Refuses connections (and drops open ones) until [`Receiver::up`].
    pub fn down(&mut self) {
        if let Some(mut set) = self.serving.take() {
            self.runtime.block_on(async {
                set.abort_all();
                while set.join_next().await.is_some() {}
            });
        }
    }

    pub fn up(&mut self) {
        let listener = self.runtime.block_on(TcpListener::bind(self.addr)).unwrap();
        self.serve(listener);
    }

    /// Waits until `done` holds of the log, or panics after `limit`.
    pub fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&Log) -> bool) {
        let start = std::time::Instant::now();
        while !done(&self.log.lock().unwrap()) {
            assert!(
                start.elapsed() < limit,
                "receiver: {what} not seen within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    log: Arc<Mutex<Log>>,
    script: Arc<Script>,
    secret: Option<Secret>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut received = Received {
        id: header("webhook-id"),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body,
        status: 0,
        at: std::time::Instant::now(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed = secret.as_ref().is_none_or(|s| {
        verify(
            s,
            &received.id,
            &header("webhook-timestamp"),
            &received.body,
            &header("webhook-signature"),
            now,
        )
        .is_ok()
    });
    // The script is told how many requests arrived before this one.
    let n = {
        let mut log = log.lock().unwrap();
        log.arrivals.push(received.id.clone());
        log.arrivals.len() - 1
    };
    let answer = if signed {
        script(&received, n)
    } else {
        log.lock().unwrap().forged.push(received.id.clone());
        Answer::status(401)
    };
    tokio::time::sleep(answer.delay).await;
    received.status = answer.status;
    log.lock().unwrap().requests.push(received);
    let mut response = Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        response = response.header(k, v);
    }
    Ok(response.body(Full::new(Bytes::from(answer.body))).unwrap())
}
