//! The S3 store (aws-sdk-s3): any S3-compatible bucket — AWS, MinIO, R2, GCS's
//! interoperable endpoint.
//!
//! A put first asks whether the key exists (HEAD: another daemon, or this one before a crash,
//! may have put it), then writes with `If-None-Match: *`, where a 412 means "already there".
//! Correctness does not rest on that header (some stores ignore it): keys are
//! content-addressed, so a second write of the same key writes the same bytes. Files of
//! `multipart_threshold` or more go up in parts of `part_size`, `upload_concurrency` at once,
//! each streamed from the file (memory stays at a few buffers per part, whatever the size);
//! a failed or cancelled multipart upload is aborted, and one left behind by a daemon that died
//! is aborted when the key is put again. Credentials come from the standard AWS chain.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};

use super::settings::{Checksum, StoreConfig};
use super::{Link, ObjectInfo, Put, PutRequest, Store, StoreError, DELETE_CONCURRENCY, IMMUTABLE};
use crate::failure::ErrorCode;

/// Keys in one DeleteObjects request: S3's limit.
const DELETE_BATCH: usize = 1000;

#[derive(Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    config: StoreConfig,
    /// The endpoint requests go to, for messages (`AWS` when the SDK resolves it).
    endpoint: String,
}

impl S3Store {
    pub async fn new(config: &StoreConfig) -> Result<S3Store, StoreError> {
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .read_timeout(config.timeout)
            .build();
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .timeout_config(timeouts)
            .load()
            .await;
        let endpoint = if config.endpoint.is_empty() {
            shared.endpoint_url().unwrap_or_default().to_string()
        } else {
            config.endpoint.clone()
        };
        let custom_endpoint = !endpoint.is_empty();
        // One attempt per call: the store's own budget (see `retry`) does the trying again, so a
        // request is abandoned after `store.timeout`, not after the SDK's three attempts of it.
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(1));
        if !config.endpoint.is_empty() {
            builder = builder.endpoint_url(&config.endpoint);
        }
        let when_required = match config.checksum {
            Checksum::WhenRequired => true,
            Checksum::WhenSupported => false,
            Checksum::Auto => custom_endpoint,
        };
        if when_required {
            builder = builder
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            config: config.clone(),
            endpoint: if custom_endpoint { endpoint } else { "AWS".into() },
        })
    }

    /// One DeleteObjects request (quiet: only failures come back); the keys that failed.
    async fn delete_batch(&self, keys: &[String]) -> Vec<(String, StoreError)> {
        let objects: Result<Vec<ObjectIdentifier>, _> = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect();
        let delete =
            objects.and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
        let delete = match delete {
            Ok(delete) => delete,
            Err(e) => {
                let e = StoreError::permanent(ErrorCode::STORE_CONFIG, format!("DeleteObjects: {e}"));
                return keys.iter().map(|k| (k.clone(), e.clone())).collect();
            }
        };
        let answer = self
            .client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await;
        match answer {
            Ok(answer) => answer
                .errors()
                .iter()
                .map(|e| {
                    let key = e.key().unwrap_or_default().to_string();
                    let message = format!(
                        "DELETE {key}: {} {}",
                        e.code().unwrap_or("error"),
                        e.message().unwrap_or("")
                    );
                    let error = match e.code() {
                        Some("InternalError" | "SlowDown" | "ServiceUnavailable") => {
                            StoreError::transient(message)
                        }
                        Some("AccessDenied") => StoreError::permanent(ErrorCode::STORE_DENIED, message),
                        _ => StoreError::permanent(ErrorCode::STORE_REJECTED, message),
                    };
                    (key, error)
                })
                .collect(),
            Err(e) => {
                let e = classify("DeleteObjects", &format!("({} keys)", keys.len()), e);
                keys.iter().map(|k| (k.clone(), e.clone())).collect()
            }
        }
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        (!self.config.sse.is_empty()).then(|| ServerSideEncryption::from(self.config.sse.as_str()))
    }

    fn kms_key(&self) -> Option<String> {
        (!self.config.kms_key_id.is_empty()).then(|| self.config.kms_key_id.clone())
    }

    fn storage_class(&self, request: &PutRequest<'_>) -> Option<StorageClass> {
        let class = self.config.storage_class_for(request.class);
        (!class.is_empty()).then(|| StorageClass::from(class))
    }

    fn metadata(request: &PutRequest<'_>) -> HashMap<String, String> {
        request
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn put_single(&self, request: &PutRequest<'_>, size: u64) -> Result<Put, StoreError> {
        let body = ByteStream::from_path(request.path).await.map_err(|e| {
            StoreError::permanent(
                ErrorCode::STORE_IO,
                format!("cannot read {}: {e}", request.path.display()),
            )
        })?;
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(request.key)
            .body(body)
            .content_length(size as i64)
            .content_type(request.content_type)
            .cache_control(IMMUTABLE)
            .set_metadata(Some(Self::metadata(request)))
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .set_storage_class(self.storage_class(request))
            .if_none_match("*")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Put::Created),
            Err(e) if precondition_failed(&e) => Ok(Put::AlreadyThere),
            Err(e) => Err(classify("PUT", request.key, e)),
        }
    }

    async fn put_multipart(&self, request: &PutRequest<'_>, size: u64) -> Result<Put, StoreError> {
        self.abort_left_behind(request.key).await;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(request.key)
            .content_type(request.content_type)
            .cache_control(IMMUTABLE)
            .set_metadata(Some(Self::metadata(request)))
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key())
            .set_storage_class(self.storage_class(request))
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", request.key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: request.key.to_string(),
            upload_id: Some(upload_id.clone()),
        };
        let result = self.upload_parts(request, size, &upload_id).await;
        match result {
            Ok(Put::Created) => {
                guard.disarm();
                Ok(Put::Created)
            }
            Ok(Put::AlreadyThere) | Err(_) => {
                guard.abort().await;
                result
            }
        }
    }

    async fn upload_parts(
        &self,
        request: &PutRequest<'_>,
        size: u64,
        upload_id: &str,
    ) -> Result<Put, StoreError> {
        let part_size = self.config.part_size.as_u64();
        let count = size.div_ceil(part_size).max(1);
        let parts = (0..count).map(|i| {
            let offset = i * part_size;
            let length = part_size.min(size - offset);
            let number = i as i32 + 1;
            async move {
                let body = ByteStream::read_from()
                    .path(request.path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| {
                        StoreError::permanent(
                            ErrorCode::STORE_IO,
                            format!("cannot read {}: {e}", request.path.display()),
                        )
                    })?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(request.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(length as i64)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| classify("UploadPart", request.key, e))?;
                Ok::<_, StoreError>(
                    CompletedPart::builder()
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .part_number(number)
                        .build(),
                )
            }
        });
        let mut done: Vec<CompletedPart> = futures::stream::iter(parts)
            .buffer_unordered(self.config.upload_concurrency)
            .try_collect()
            .await?;
        done.sort_by_key(|p| p.part_number());
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(request.key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .if_none_match("*")
            .send()
            .await;
        match completed {
            Ok(_) => Ok(Put::Created),
            Err(e) if precondition_failed(&e) => Ok(Put::AlreadyThere),
            Err(e) => Err(classify("CompleteMultipartUpload", request.key, e)),
        }
    }

    /// Multipart uploads of `key` still open were left by a put that died (a daemon killed
    /// mid-upload): nothing will complete them, and they cost storage until aborted.
    async fn abort_left_behind(&self, key: &str) {
        let Ok(listed) = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
        else {
            return;
        };
        for upload in listed.uploads() {
            if upload.key() != Some(key) {
                continue;
            }
            if let Some(id) = upload.upload_id() {
                tracing::info!(key, "aborting a multipart upload left unfinished");
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await;
            }
        }
    }

    fn check_key(&self) -> String {
        let id = blake3::hash(format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes());
        format!("{}.mediaspool-check-{}", self.config.prefix, &id.to_hex()[..16])
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put_if_absent(&self, request: &PutRequest<'_>) -> Result<Put, StoreError> {
        if self.head(request.key).await?.is_some() {
            return Ok(Put::AlreadyThere);
        }
        let size = std::fs::metadata(request.path)
            .map_err(|e| {
                StoreError::permanent(
                    ErrorCode::STORE_IO,
                    format!("cannot read {}: {e}", request.path.display()),
                )
            })?
            .len();
        if size >= self.config.multipart_threshold.as_u64() {
            self.put_multipart(request, size).await
        } else {
            self.put_single(request, size).await
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                bytes: out.content_length().unwrap_or_default().max(0) as u64,
                metadata: out
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("HEAD", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let got = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(got) => got,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(classify("GET", key, e)),
        };
        let body = got
            .body
            .collect()
            .await
            .map_err(|e| StoreError::transient(format!("GET {key}: the body was cut off: {e}")))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("DELETE", key, e))
    }

    /// DeleteObjects, [`DELETE_BATCH`] keys a request, [`DELETE_CONCURRENCY`] requests at once.
    async fn delete_many(&self, keys: &[String]) -> Vec<(String, StoreError)> {
        let batches: Vec<futures::future::BoxFuture<'_, Vec<(String, StoreError)>>> = keys
            .chunks(DELETE_BATCH)
            .map(|batch| Box::pin(self.delete_batch(batch)) as _)
            .collect();
        let mut batches = futures::stream::iter(batches).buffer_unordered(DELETE_CONCURRENCY);
        let mut failed = Vec::new();
        while let Some(batch) = batches.next().await {
            failed.extend(batch);
        }
        failed
    }

    async fn link(&self, key: &str) -> Result<Link, StoreError> {
        if !self.config.public_base_url.is_empty() {
            return Ok(Link {
                url: format!("{}/{key}", self.config.public_base_url.trim_end_matches('/')),
                expires_at: None,
            });
        }
        let ttl = self.config.presign_ttl;
        let presigning = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::permanent(ErrorCode::STORE_CONFIG, format!("store.presign_ttl: {e}")))?;
        let signed = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| classify("presign GET", key, e))?;
        Ok(Link {
            url: signed.uri().to_string(),
            expires_at: Some(time::OffsetDateTime::now_utc() + ttl),
        })
    }

    async fn check(&self) -> Vec<String> {
        let bucket = &self.bucket;
        if let Err(e) = self.client.head_bucket().bucket(bucket).send().await {
            let problem = match status(&e) {
                Some(404) => format!("store.bucket {bucket:?} does not exist at {}", self.endpoint),
                Some(401 | 403) => format!(
                    "access to bucket {bucket:?} denied at {}: check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the instance role)",
                    self.endpoint
                ),
                _ => format!("cannot reach the store at {}: {}", self.endpoint, classify("HEAD bucket", bucket, e)),
            };
            return vec![problem];
        }
        let key = self.check_key();
        let probe = tempfile::NamedTempFile::new().and_then(|f| {
            std::fs::write(f.path(), b"mediaspool check")?;
            Ok(f)
        });
        let probe = match probe {
            Ok(p) => p,
            Err(e) => return vec![format!("cannot write a probe file: {e}")],
        };
        let metadata = Default::default();
        let request = PutRequest {
            key: &key,
            path: probe.path(),
            content_type: "text/plain",
            metadata: &metadata,
            class: super::ObjectClass::Output,
        };
        let mut problems = Vec::new();
        match self.put_single(&request, 16).await {
            Ok(_) => {
                if let Err(e) = self.delete(&key).await {
                    problems.push(format!(
                        "cannot delete a probe object from {}: {e}",
                        self.describe()
                    ));
                }
            }
            Err(e) => problems.push(format!("cannot write a probe object to {}: {e}", self.describe())),
        }
        problems
    }

    fn describe(&self) -> String {
        format!("s3://{}/{} ({})", self.bucket, self.config.prefix, self.endpoint)
    }
}

/// Aborts a multipart upload that was neither completed nor aborted, also when the put is
/// cancelled (a shutdown stopping the job).
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    fn disarm(mut self) {
        self.upload_id = None;
    }

    async fn abort(mut self) {
        if let Some(id) = self.upload_id.take() {
            abort(&self.client, &self.bucket, &self.key, &id).await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.upload_id.take() else { return };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { abort(&client, &bucket, &key, &id).await });
        }
    }
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = aborted {
        tracing::warn!(key, error = %DisplayErrorContext(&e), "cannot abort a multipart upload; it is aborted when the key is put again");
    }
}

fn status<E, R: HasStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HasStatus::status_code)
}

trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// `If-None-Match: *` refused: the key exists (412 is not a modelled error of the SDK).
fn precondition_failed<E: ProvideErrorMetadata, R: HasStatus>(e: &SdkError<E, R>) -> bool {
    status(e) == Some(412) || e.code() == Some("PreconditionFailed")
}

/// Transient: no answer, a dropped connection, 5xx, throttling, a conditional-write conflict.
/// Permanent: denied, no such bucket, anything else the store refuses.
fn classify<E, R>(what: &str, key: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: HasStatus + std::fmt::Debug,
{
    let code = e.code().map(str::to_string);
    let http = status(&e);
    let message = format!("{what} {key}: {}", DisplayErrorContext(&e));
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::transient(message)
        }
        SdkError::ConstructionFailure(_) => StoreError::permanent(ErrorCode::STORE_CONFIG, message),
        _ => match (http, code.as_deref()) {
            (Some(500..=599 | 429 | 408), _)
            | (_, Some("SlowDown" | "Throttling" | "RequestTimeout" | "ConditionalRequestConflict")) => {
                StoreError::transient(message)
            }
            (_, Some("NoSuchBucket")) => StoreError::permanent(ErrorCode::STORE_NO_BUCKET, message),
            (Some(401 | 403), _) => StoreError::permanent(ErrorCode::STORE_DENIED, message),
            _ => StoreError::permanent(ErrorCode::STORE_REJECTED, message),
        },
    }
}
