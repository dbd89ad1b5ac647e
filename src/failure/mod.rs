//! Why a job failed, in the one shape every consumer gets: a stable code (with its stage, from
//! [`codes`]) and a message a person understands. Carried from worker processes to the daemon,
//! written as a `media.rejected` record's `error` and, with the time, as
//! `failed/NAME.error.json`; all three are `{code, message, stage}`.

pub mod codes;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use codes::ErrorCode;

/// The pipeline stage an error comes from, as written in records and error files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Claim,
    Manifest,
    Policy,
    Hash,
    Probe,
    Route,
    Transcode,
    Thumbnail,
    Verify,
    Store,
    Catalog,
    Worker,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Claim => "claim",
            Stage::Manifest => "manifest",
            Stage::Policy => "policy",
            Stage::Hash => "hash",
            Stage::Probe => "probe",
            Stage::Route => "route",
            Stage::Transcode => "transcode",
            Stage::Thumbnail => "thumbnail",
            Stage::Verify => "verify",
            Stage::Store => "store",
            Stage::Catalog => "catalog",
            Stage::Worker => "worker",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure: serialised as `{"code", "message", "stage"}`, the stage being the code's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "FailureJson", try_from = "FailureJson")]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn stage(&self) -> Stage {
        self.code.stage()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.stage(), self.message)
    }
}

/// A message in a record or an error file is cut to this many bytes: messages quote file names,
/// libav's words and manifest fields, and a record has a size bound to keep.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes at a character boundary, ending in `…` when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(ellipsis);
    text
}

/// The JSON form of records and error files.
#[derive(Serialize, Deserialize)]
struct FailureJson {
    code: String,
    message: String,
    stage: Stage,
}

impl From<Failure> for FailureJson {
    fn from(f: Failure) -> FailureJson {
        FailureJson {
            code: f.code.id().to_string(),
            stage: f.stage(),
            message: cut(f.message, MAX_MESSAGE_BYTES),
        }
    }
}

impl TryFrom<FailureJson> for Failure {
    type Error = String;

    fn try_from(json: FailureJson) -> Result<Failure, String> {
        let code =
            ErrorCode::find(&json.code).ok_or_else(|| format!("unknown error code {:?}", json.code))?;
        Ok(Failure::new(code, json.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_code_message_stage_and_the_stage_is_the_codes() {
        let f = Failure::new(ErrorCode::TOO_LARGE, "3 GB is over policy.max_input_bytes");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "too-large", "message": "3 GB is over policy.max_input_bytes", "stage": "policy"})
        );
        assert_eq!(serde_json::from_value::<Failure>(json).unwrap(), f);
        let unknown = serde_json::json!({"code": "no-such-code", "message": "m", "stage": "probe"});
        assert!(serde_json::from_value::<Failure>(unknown).is_err());
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let long = Failure::new(ErrorCode::DECODE_ERROR, "é".repeat(MAX_MESSAGE_BYTES));
        let json = serde_json::to_value(&long).unwrap();
        let message = json["message"].as_str().unwrap();
        assert!(
            message.len() <= MAX_MESSAGE_BYTES && message.ends_with('…'),
            "{message}"
        );
        let short = Failure::new(ErrorCode::DECODE_ERROR, "short");
        assert_eq!(serde_json::to_value(&short).unwrap()["message"], "short");
    }
}
