//! `mediaspool link KEY|RECORD_ID`: a fresh link to a stored object, for records whose
//! presigned links have expired. A record id (from the catalog) stands for its media's key.

use super::{EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE};
use crate::config::Config;

pub fn run(config: &Config, target: &str) -> u8 {
    let key = match super::block_on(key_of(config, target)) {
        Ok(key) => key,
        Err(message) => {
            eprintln!("mediaspool: {message}");
            return EXIT_USAGE;
        }
    };
    super::block_on(async {
        let store = match crate::store::open(&config.store).await {
            Ok(store) => store,
            Err(e) => {
                eprintln!("mediaspool: store: {e}");
                return EXIT_USAGE;
            }
        };
        match store.head(&key).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                eprintln!("mediaspool: no object {key:?} in {}", store.describe());
                return EXIT_SOME_FAILED;
            }
            Err(e) => {
                eprintln!("mediaspool: store: {e}");
                return EXIT_SOME_FAILED;
            }
        }
        match store.link(&key).await {
            Ok(link) => {
                println!("{}", link.url);
                if let Some(at) = link.expires_at {
                    let at = at
                        .format(&time::format_description::well_known::Rfc3339)
                        .expect("UTC time formats");
                    eprintln!("expires at {at}");
                }
                EXIT_OK
            }
            Err(e) => {
                eprintln!("mediaspool: store: {e}");
                EXIT_SOME_FAILED
            }
        }
    })
}

/// A record id names its media's key when the catalog knows it; anything else is a key.
async fn key_of(config: &Config, target: &str) -> Result<String, String> {
    let looks_like_record_id = target.len() == 32 && target.bytes().all(|b| b.is_ascii_hexdigit());
    if !looks_like_record_id {
        return Ok(target.to_string());
    }
    let catalog = crate::catalog::open(&config.catalog.url)
        .await
        .map_err(|e| e.to_string())?;
    match catalog.record(target).await.map_err(|e| e.to_string())? {
        Some(record) => record.media.map(|m| m.key).ok_or_else(|| {
            format!(
                "record {target} names no stored media ({})",
                record.event.as_str()
            )
        }),
        None => Ok(target.to_string()),
    }
}
