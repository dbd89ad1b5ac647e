//! The privacy lifecycle: what the logs never show.

use std::time::Duration;

use crate::spool_support::*;
use crate::store_support::*;

const LONG: Duration = Duration::from_secs(120);

/// What must not reach a log line in any form the test's inputs carry it.
const PRIVATE: [&str; 9] = [
    "600111222",
    "600 111 333",
    "4155550100",
    "Maria",
    "Garcia",
    "grp-sales-7781",
    "mediaspool-test-secret",
    "c-privacy-1",
    "hunter2hunter2",
];

fn drop_with_manifest(d: &Daemon, name: &str, manifest: &str, bytes: &[u8]) {
    // The manifest first: its chat id and names are known before a line names the file.
    d.drop_file(&format!("{name}.meta.json"), manifest.as_bytes());
    d.drop_file(name, bytes);
}

/// A full run at `-vv` (every library's debug lines too) on the S3 test server, in human
/// and then JSON lines: files named by phone numbers, chat ids and customer names, manifests
/// carrying them, credentials in the environment and in the configuration.
#[test]
fn logs_at_every_level_carry_no_phone_number_name_chat_id_or_secret() {
    let server = S3Server::shared();
    let bucket = Bucket::create(&server);
    // A presigned link for every record: its query string is a credential.
    let mut d = Daemon::new("", &bucket.config("presign_ttl = \"1h\""))
        .with_env("MEDIASPOOL_STORE__ACCESS_KEY", "hunter2hunter2");
    for (k, v) in AWS_ENV {
        d = d.with_env(k, v);
    }
    d.start_with(&["-vv"]);
    drop_with_manifest(
        &d,
        "34600111222_voice.wav",
        r#"{"customer_id": "c-privacy-1", "chat_id": "wa:+34600111222", "message_id": "m1",
            "extra": {"customer_name": "Maria Garcia"}}"#,
        &tone_wav(440.0, 800),
    );
    drop_with_manifest(
        &d,
        "grp-sales-7781 Maria Garcia.wav",
        r#"{"chat_id": "grp-sales-7781", "message_id": "m2",
            "extra": {"contact": {"display_name": "Maria Garcia"}}}"#,
        &tone_wav(550.0, 800),
    );
    d.drop_file("+34 600 111 333.wav", &tone_wav(660.0, 800));
    d.wait_for(
        &[
            "34600111222_voice.wav",
            "grp-sales-7781 Maria Garcia.wav",
            "+34 600 111 333.wav",
        ],
        LONG,
    );
    assert_eq!(d.stop(LONG).code(), Some(0));
    let human = d.log();

    d.start_with(&["-vv", "--log-format", "json"]);
    drop_with_manifest(
        &d,
        "tel:+14155550100 Maria.wav",
        r#"{"chat_id": "tel:+14155550100", "message_id": "m3", "extra": {"customer_name": "Maria Garcia"}}"#,
        // The same bytes as the first: a duplicate line.
        &tone_wav(440.0, 800),
    );
    d.wait_for(&["tel:+14155550100 Maria.wav"], LONG);
    assert_eq!(d.stop(LONG).code(), Some(0));
    let json = d.log()[human.len()..].to_string();

    // The runs were logged, with what stood for the private values in their place.
    for (format, log) in [("human", &human), ("json", &json)] {
        assert!(
            log.lines().count() > 20,
            "{format}: a -vv run logs more than this:\n{log}"
        );
        for private in PRIVATE {
            assert!(!log.contains(private), "{format}: {private:?} in the log:\n{log}");
        }
    }
    assert!(human.contains("[phone]") && human.contains("[name]"), "{human}");
    assert!(
        human.contains("chat:"),
        "the chat id's tag stands in for it:\n{human}"
    );
    assert!(json.contains("[name]"), "{json}");
    for line in json.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    // Records are data, not logs: they keep what the CRM needs.
    let records = d.records();
    assert!(records.iter().any(|r| r["crm"]["chat_id"] == "wa:+34600111222"));
}
