//! The status page and media cards in a real headless Chromium, driven through ChromeDriver
//! (WebDriver): the page shows a run's records as they come, an audio card's player loads the
//! MP3 with the record's duration, a video card shows its poster, and a bad signature gets
//! nothing. Screenshots are kept under the test target's temporary directory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::*;
use crate::http::*;
use crate::spool_support::*;

const LONG: Duration = Duration::from_secs(120);

/// A ChromeDriver on a free loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: scripts/deps.sh installs Debian's chromium and chromium-driver"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    async fn browser(&self) -> Client {
        let profile = self._profile.path().display().to_string();
        // Flags that keep Chromium off the network (this machine has none) and quiet.
        let options = json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--mute-audio", "--window-size=1280,900",
                format!("--user-data-dir={profile}"),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots are kept: `target/tmp/screenshots/`.
fn artefact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = artefact(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Runs `script` (an async function body: `await` allowed, `return` a JSON value) in the page.
async fn run_js(client: &Client, script: &str) -> Value {
    let wrapped = format!(
        "const done = arguments[arguments.length - 1];
         (async () => {{ {script} }})().then(done, e => done({{error: String(e)}}));"
    );
    let value = client.execute_async(&wrapped, vec![]).await.unwrap();
    assert!(value.get("error").is_none(), "{script}: {value}");
    value
}

/// The text of the element at `css` once it holds every one of `texts`.
async fn wait_for_text(client: &Client, css: &str, texts: &[&str], limit: Duration) -> String {
    let start = Instant::now();
    loop {
        // Read in one script: the page replaces its sections as it refreshes, so an element
        // found by one WebDriver call may be gone by the next.
        let body = client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                vec![json!(css)],
            )
            .await
            .unwrap();
        let body = body.as_str().unwrap_or_default().to_string();
        if texts.iter().all(|t| body.contains(t)) {
            return body;
        }
        assert!(start.elapsed() < limit, "page never showed {texts:?}:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_page_and_cards_in_chromium() {
    let mut d = http_daemon(&card_config());
    d.start();
    let base = http_address(&d);
    let driver = Driver::start();
    let client = driver.browser().await;

    // The page is open before the run: it refreshes itself as records come.
    client.goto(&format!("{base}/?token={TOKEN}")).await.unwrap();
    let before = wait_for_text(&client, "#status", &["no records yet"], LONG).await;
    assert!(before.contains("nothing running"), "{before}");
    let voice = std::fs::read(fixture("voice_note.ogg")).unwrap();
    let video = std::fs::read(corpus().join("video/imageio__cockatoo.mp4")).unwrap();
    d.drop_file("voice_note.ogg", &voice);
    d.drop_file("cockatoo.mp4", &video);
    d.drop_file("tone.wav", &tone_wav(660.0, 2500));
    d.drop_file("broken.mp3", b"ID3 not really an mp3".as_slice());
    let records = d.wait_for(
        &["voice_note.ogg", "cockatoo.mp4", "tone.wav", "broken.mp3"],
        LONG,
    );
    // The records section, not the page: a name may still show among the jobs in flight.
    wait_for_text(
        &client,
        "#records",
        &[
            "voice_note.ogg",
            "cockatoo.mp4",
            "tone.wav",
            "broken.mp3",
            "media.rejected",
        ],
        LONG,
    )
    .await;
    wait_for_text(&client, "#sinks", &["ndjson"], LONG).await;
    let rows = client.find_all(Locator::Css("tr.record")).await.unwrap();
    assert_eq!(rows.len(), 4);
    let refreshed = client
        .find(Locator::Css("#status"))
        .await
        .unwrap()
        .attr("data-refreshed")
        .await
        .unwrap();
    assert!(
        refreshed.is_some(),
        "shown by the page's own refresh, not a reload"
    );
    // The status page's thumbnails load (waveforms and the video's poster frame).
    let thumbs = run_js(
        &client,
        "const imgs = [...document.querySelectorAll('img.thumb')];
         await Promise.all(imgs.map(i => i.decode()));
         return imgs.map(i => i.naturalWidth);",
    )
    .await;
    let thumbs = thumbs.as_array().unwrap();
    assert_eq!(thumbs.len(), 3, "voice, video, tone");
    assert!(thumbs.iter().all(|w| w.as_u64().unwrap() > 0), "{thumbs:?}");
    screenshot(&client, "status.png").await;

    // An audio card: its player loads the MP3, and says the record's duration.
    let voice_record = record_for(&records, "voice_note.ogg");
    client.set_window_size(640, 360).await.unwrap();
    client.goto(&card_link(&base, voice_record)).await.unwrap();
    let duration = run_js(
        &client,
        "const p = document.getElementById('player');
         if (p.readyState < 1) await new Promise((ok, bad) => {
           p.addEventListener('loadedmetadata', ok); p.addEventListener('error', () => bad(p.error.message)); });
         await document.querySelector('img.poster').decode();
         return p.duration;",
    )
    .await
    .as_f64()
    .unwrap();
    let expected = voice_record["media"]["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (duration - expected).abs() <= 0.1,
        "player {duration} s, record {expected} s"
    );
    // Seeking fetches a range, as players do.
    let seeked = run_js(
        &client,
        "const p = document.getElementById('player');
         p.currentTime = p.duration / 2;
         await new Promise(ok => p.addEventListener('seeked', ok, { once: true }));
         return p.currentTime;",
    )
    .await;
    assert!(seeked.as_f64().unwrap() > 0.0);
    screenshot(&client, "card-audio.png").await;

    // A video card shows its poster.
    let video_record = record_for(&records, "cockatoo.mp4");
    client.goto(&card_link(&base, video_record)).await.unwrap();
    let poster = run_js(
        &client,
        "const v = document.getElementById('player');
         const img = new Image(); img.src = v.poster; await img.decode();
         if (v.readyState < 1) await new Promise(ok => v.addEventListener('loadedmetadata', ok));
         return [img.naturalWidth, img.naturalHeight, v.videoWidth];",
    )
    .await;
    let poster = poster.as_array().unwrap();
    let width = video_record["media"]["width"].as_u64().unwrap();
    assert!(
        poster[0].as_u64().unwrap() > 0 && poster[1].as_u64().unwrap() > 0,
        "{poster:?}"
    );
    assert_eq!(poster[2].as_u64().unwrap(), width, "the video's own width");
    screenshot(&client, "card-video.png").await;

    // A link with a bad or expired signature: 403 and nothing in it, as the browser gets it
    // (fetched from a page of the same origin: Chromium puts its own page over an empty 403).
    let id = voice_record["record_id"].as_str().unwrap();
    client.goto(&format!("{base}/healthz")).await.unwrap();
    for query in [
        format!("exp={}&sig=AAAA", unix_now() + 600),
        signed_query(id, unix_now() - 5),
    ] {
        let url = format!("{base}/card/{id}?{query}");
        let answer = run_js(
            &client,
            &format!("const r = await fetch({url:?}); return [r.status, (await r.text()).length];"),
        )
        .await;
        assert_eq!(answer, json!([403, 0]), "{url}");
    }
    client.close().await.unwrap();
    assert_eq!(d.stop(LONG).code(), Some(0));
}
