//! The `[store]` section of `mediaspool.toml`: its keys, defaults and validation (pure, no
//! I/O; [`super::open`] builds the store from it).

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Local,
    S3,
    Azure,
}

/// When S3 uploads carry a checksum (the SDK's default, a CRC32 trailer on a chunked body, is
/// refused by many S3-compatible servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// `when_required` with a custom `endpoint`, `when_supported` on AWS itself.
    Auto,
    WhenSupported,
    WhenRequired,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// Local store: the directory.
    pub root: PathBuf,
    /// S3: the bucket; Azure: the container.
    pub bucket: String,
    pub prefix: String,
    /// S3: a custom endpoint (`AWS_ENDPOINT_URL` is honoured too); Azure: the blob service URL
    /// (default `https://ACCOUNT.blob.core.windows.net`).
    pub endpoint: String,
    pub region: String,
    pub path_style: bool,
    pub checksum: Checksum,
    pub sse: String,
    pub kms_key_id: String,
    pub storage_class: String,
    pub originals_storage_class: String,
    pub upload_originals: bool,
    pub multipart_threshold: ByteSize,
    pub part_size: ByteSize,
    pub upload_concurrency: usize,
    pub public_base_url: String,
    #[serde(with = "humantime_serde")]
    pub presign_ttl: Duration,
    /// Azure: the storage account (else `AZURE_STORAGE_ACCOUNT`).
    pub account: String,
    /// Azure: the account key (else `AZURE_STORAGE_KEY`).
    pub access_key: String,
    /// A request that gets no answer this long is abandoned (and tried again).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a store call that fails transiently is tried again before its job waits in
    /// `work/` to be tried later.
    #[serde(with = "humantime_serde")]
    pub retry_budget: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            root: "media".into(),
            bucket: "crm-media".into(),
            prefix: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            path_style: false,
            checksum: Checksum::Auto,
            sse: String::new(),
            kms_key_id: String::new(),
            storage_class: String::new(),
            originals_storage_class: String::new(),
            upload_originals: false,
            multipart_threshold: ByteSize::mib(16),
            part_size: ByteSize::mib(8),
            upload_concurrency: 4,
            public_base_url: String::new(),
            presign_ttl: Duration::from_secs(7 * 24 * 3600),
            account: String::new(),
            access_key: String::new(),
            timeout: Duration::from_secs(30),
            retry_budget: Duration::from_secs(60),
        }
    }
}

/// S3's smallest part (all but the last) and its longest presigned URL.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

impl StoreConfig {
    /// Adds every problem of the `[store]` section to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        let mut problem = |p: String| problems.push(p);
        let remote = self.kind != StoreKind::Local;
        if !matches!(self.sse.as_str(), "" | "AES256" | "aws:kms") {
            problem(format!(
                "store.sse = {:?}: use \"AES256\" or \"aws:kms\"",
                self.sse
            ));
        }
        if !self.kms_key_id.is_empty() && self.sse != "aws:kms" {
            problem("store.kms_key_id is set but store.sse is not \"aws:kms\"".into());
        }
        if self.kind == StoreKind::Azure {
            for (key, value) in [
                ("sse", &self.sse),
                ("storage_class", &self.storage_class),
                ("originals_storage_class", &self.originals_storage_class),
            ] {
                if !value.is_empty() {
                    problem(format!(
                        "store.{key} applies to S3 only (Azure encrypts every blob; set the tier with a lifecycle rule)"
                    ));
                }
            }
        }
        if remote {
            if self.bucket.is_empty() {
                problem("store.bucket: the bucket (S3) or container (Azure) is required".into());
            } else if self.bucket.len() < 3
                || self.bucket.len() > 63
                || !self
                    .bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                problem(format!(
                    "store.bucket = {:?}: 3 to 63 lower-case letters, digits, '-' or '.'",
                    self.bucket
                ));
            }
            let part = self.part_size.as_u64();
            if !(MIN_PART..=MAX_PART).contains(&part) {
                problem(format!(
                    "store.part_size = {}: between 5 MiB and 5 GiB",
                    self.part_size.display().iec()
                ));
            }
            if self.multipart_threshold.as_u64() < MIN_PART {
                problem(format!(
                    "store.multipart_threshold = {}: at least 5 MiB",
                    self.multipart_threshold.display().iec()
                ));
            }
            if !(1..=64).contains(&self.upload_concurrency) {
                problem(format!(
                    "store.upload_concurrency = {}: between 1 and 64",
                    self.upload_concurrency
                ));
            }
            if self.public_base_url.is_empty()
                && (self.presign_ttl.is_zero() || self.presign_ttl > MAX_PRESIGN)
            {
                problem(format!(
                    "store.presign_ttl = {}: between 1 s and 7 days",
                    humantime::format_duration(self.presign_ttl)
                ));
            }
            if self.timeout.is_zero() {
                problem("store.timeout: must be more than 0".into());
            }
        }
        let url = &self.public_base_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            problem(format!(
                "store.public_base_url = {:?}: an http:// or https:// URL",
                self.public_base_url
            ));
        }
        if self.prefix.starts_with('/') {
            problem(format!(
                "store.prefix = {:?}: must not start with '/'",
                self.prefix
            ));
        }
    }

    /// The storage class configured for objects of `class` ("" = the store's default).
    pub fn storage_class_for(&self, class: super::ObjectClass) -> &str {
        match class {
            super::ObjectClass::Output => &self.storage_class,
            super::ObjectClass::Original => &self.originals_storage_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_store_lists_every_bad_key() {
        let config = StoreConfig {
            kind: StoreKind::S3,
            bucket: "No_Such".into(),
            part_size: ByteSize::mib(1),
            upload_concurrency: 0,
            presign_ttl: Duration::from_secs(8 * 86400),
            kms_key_id: "k".into(),
            public_base_url: String::new(),
            ..StoreConfig::default()
        };
        let mut problems = Vec::new();
        config.validate(&mut problems);
        assert_eq!(problems.len(), 5, "{problems:?}");
        let mut problems = Vec::new();
        StoreConfig {
            kind: StoreKind::S3,
            ..StoreConfig::default()
        }
        .validate(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn azure_refuses_s3_only_keys() {
        let mut problems = Vec::new();
        StoreConfig {
            kind: StoreKind::Azure,
            sse: "AES256".into(),
            storage_class: "GLACIER_IR".into(),
            ..StoreConfig::default()
        }
        .validate(&mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
