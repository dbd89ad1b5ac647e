//! Why a job failed, in the shape every consumer needs: a stable code, a message a person
//! understands, and the pipeline stage. Carried from worker processes to the daemon, into
//! `media.rejected` records and into `failed/NAME.error.json`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The pipeline stage an error comes from, as written in records and error files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl Stage {
    pub fn parse(text: &str) -> Option<Stage> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
    pub stage: Stage,
}

impl Failure {
    pub fn new(code: &str, stage: Stage, message: impl Into<String>) -> Failure {
        Failure {
            code: code.to_string(),
            message: message.into(),
            stage,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.stage, self.message)
    }
}
