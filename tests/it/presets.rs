//! Golden requests: for each preset, the exact method, URL, headers (credentials masked) and
//! body it makes of a sample record of each event. `MEDIASPOOL_BLESS=1` rewrites the files in
//! `tests/golden/presets/` (read the diff before committing it).

use mediaspool::config::SinkConfig;
use mediaspool::delivery::http::MASK;
use mediaspool::delivery::{sample_records, HttpSink, PRESETS};

use crate::common::repo;

const TOKEN: &str = "pat-na1-0000-secret-token";

fn base_for(preset: &str) -> &'static str {
    match preset {
        "zapier" => "https://hooks.zapier.com/hooks/catch/123456/abcdef/",
        "make" => "https://hook.eu1.make.com/abcdefghijklmnop",
        "standard-webhooks" => "https://crm.example.com/hooks/media",
        "hubspot" | "zoho" => "",
        _ => "https://acme.example.com",
    }
}

fn rendered(preset: &str) -> String {
    let mut config = SinkConfig {
        preset: preset.to_string(),
        url: base_for(preset).to_string(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        ..Default::default()
    };
    config
        .headers
        .insert("Authorization".into(), "Bearer ${CRM_TOKEN}".into());
    config.params.insert("account_id".into(), "3".into());
    config
        .params
        .insert("media_url_field".into(), "360001234567".into());
    let env = |name: &str| (name == "CRM_TOKEN").then(|| TOKEN.to_string());
    let sink = HttpSink::build("crm", &config, &env).unwrap_or_else(|p| panic!("{preset}: {p:?}"));
    let mut out = String::new();
    for record in sample_records() {
        let json = serde_json::to_string(&record).unwrap();
        let r = sink
            .render(&json)
            .unwrap_or_else(|e| panic!("{preset} {}: {e}", record.event.as_str()));
        out.push_str(&format!(
            "### {}\n{} {}\n",
            record.event.as_str(),
            r.method,
            r.url
        ));
        let mut headers = r.headers.clone();
        // The timestamp and signature change with the clock: a fixed one shows their form.
        headers.extend(sink.webhook_headers(&record.record_id, 1_764_324_002, &r.body));
        for (name, value) in headers {
            out.push_str(&format!("{name}: {}\n", sink.redactor().clean(&value)));
        }
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        out.push_str(&serde_json::to_string_pretty(&body).unwrap());
        out.push_str("\n\n");
    }
    out
}

#[test]
fn each_preset_makes_the_request_its_api_expects() {
    let dir = repo().join("tests/golden/presets");
    let bless = std::env::var_os("MEDIASPOOL_BLESS").is_some();
    for preset in PRESETS {
        let text = rendered(preset.name);
        assert!(!text.contains(TOKEN), "{}: the token is shown", preset.name);
        assert!(
            text.contains(&format!("Authorization: {MASK}\n")),
            "{}",
            preset.name
        );
        let path = dir.join(format!("{}.txt", preset.name));
        if bless {
            std::fs::write(&path, &text).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(text, golden, "{} differs from {}", preset.name, path.display());
    }
}
