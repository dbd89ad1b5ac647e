//! `mediaspool probe FILE...`: one JSON object per file on stdout.

use std::io::Write;
use std::path::PathBuf;

use super::{EXIT_OK, EXIT_SOME_FAILED};
use crate::media;

pub fn run(files: &[PathBuf]) -> u8 {
    let mut code = EXIT_OK;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in files {
        let value = match media::probe(file) {
            Ok(probe) => {
                let mut v = serde_json::to_value(&probe).expect("probe serialises");
                v["file"] = file.display().to_string().into();
                v
            }
            Err(e) => {
                code = EXIT_SOME_FAILED;
                serde_json::json!({"file": file.display().to_string(), "error": e.failure()})
            }
        };
        let _ = writeln!(out, "{value}");
    }
    code
}
