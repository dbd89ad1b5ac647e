//! The Azure Blob store, through `object_store`: the official Azure SDK for Rust has no
//! shared-key authentication (so it cannot talk to Azurite, the emulator the tests run
//! against), while `object_store` has shared keys, SAS links, create-only writes and block
//! uploads, and is what pict-rs uses.
//!
//! Same behaviour as the S3 store: HEAD first, then a create-only put (Azure answers 409 where
//! S3 answers 412: "already there"); files of `multipart_threshold` or more go up as blocks of
//! `part_size`, `upload_concurrency` at once, read from the file one block at a time, and the
//! upload is aborted if any block fails (uncommitted blocks are dropped by Azure after a week
//! anyway). Links: `public_base_url`, else a SAS URL valid `presign_ttl`. Account and key from
//! the config, else `AZURE_STORAGE_ACCOUNT` / `AZURE_STORAGE_KEY`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path as FsPath;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};

use super::settings::StoreConfig;
use super::{Link, ObjectInfo, Put, PutRequest, Store, StoreError, IMMUTABLE};
use crate::failure::ErrorCode;

#[derive(Debug)]
pub struct AzureStore {
    client: MicrosoftAzure,
    config: StoreConfig,
    /// The blob service, for messages.
    endpoint: String,
}

impl AzureStore {
    pub fn new(config: &StoreConfig) -> Result<AzureStore, StoreError> {
        let from_env = |name: &str| std::env::var(name).unwrap_or_default();
        let account = match config.account.as_str() {
            "" => from_env("AZURE_STORAGE_ACCOUNT"),
            a => a.to_string(),
        };
        let key = match config.access_key.as_str() {
            "" => from_env("AZURE_STORAGE_KEY"),
            k => k.to_string(),
        };
        let endpoint = match config.endpoint.trim_end_matches('/') {
            "" => format!("https://{account}.blob.core.windows.net"),
            e => e.to_string(),
        };
        let options = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_timeout(config.timeout)
            .with_connect_timeout(config.timeout.min(std::time::Duration::from_secs(5)));
        // Our own retry budget (see `retry`) does the waiting; the client only smooths blips.
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: config.timeout,
            ..RetryConfig::default()
        };
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_container_name(&config.bucket)
            .with_endpoint(endpoint.clone())
            .with_client_options(options)
            .with_retry(retry);
        if !account.is_empty() {
            builder = builder.with_account(account);
        }
        if !key.is_empty() {
            builder = builder.with_access_key(key);
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::permanent(ErrorCode::STORE_CONFIG, format!("azure: {e}")))?;
        Ok(AzureStore {
            client,
            config: config.clone(),
            endpoint,
        })
    }

    fn attributes(request: &PutRequest<'_>) -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, request.content_type.to_string().into());
        attributes.insert(Attribute::CacheControl, IMMUTABLE.into());
        for (name, value) in request.metadata {
            attributes.insert(Attribute::Metadata(name.clone().into()), value.clone().into());
        }
        attributes
    }

    async fn put_single(&self, request: &PutRequest<'_>) -> Result<Put, StoreError> {
        let bytes = std::fs::read(request.path).map_err(|e| read_error(request.path, &e))?;
        let options = PutOptions {
            mode: PutMode::Create,
            attributes: Self::attributes(request),
            ..PutOptions::default()
        };
        match self
            .client
            .put_opts(&Path::from(request.key), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(Put::AlreadyThere)
            }
            Err(e) => Err(classify("PUT", request.key, e)),
        }
    }

    async fn put_blocks(&self, request: &PutRequest<'_>, size: u64) -> Result<Put, StoreError> {
        let options = PutMultipartOptions {
            attributes: Self::attributes(request),
            ..PutMultipartOptions::default()
        };
        let mut upload = self
            .client
            .put_multipart_opts(&Path::from(request.key), options)
            .await
            .map_err(|e| classify("PUT blocks", request.key, e))?;
        let sent = async {
            let mut file = std::fs::File::open(request.path).map_err(|e| read_error(request.path, &e))?;
            let part = self.config.part_size.as_u64();
            let mut in_flight: FuturesUnordered<object_store::UploadPart> = FuturesUnordered::new();
            let mut offset = 0;
            while offset < size {
                if in_flight.len() >= self.config.upload_concurrency {
                    if let Some(done) = in_flight.next().await {
                        done.map_err(|e| classify("PUT block", request.key, e))?;
                    }
                }
                let length = part.min(size - offset);
                let mut block = vec![0; length as usize];
                file.seek(SeekFrom::Start(offset))
                    .and_then(|_| file.read_exact(&mut block))
                    .map_err(|e| read_error(request.path, &e))?;
                in_flight.push(upload.put_part(PutPayload::from(block)));
                offset += length;
            }
            while let Some(done) = in_flight.next().await {
                done.map_err(|e| classify("PUT block", request.key, e))?;
            }
            upload
                .complete()
                .await
                .map_err(|e| classify("PUT block list", request.key, e))
        }
        .await;
        match sent {
            Ok(_) => Ok(Put::Created),
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    fn check_key(&self) -> String {
        let id = blake3::hash(format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes());
        format!("{}.mediaspool-check-{}", self.config.prefix, &id.to_hex()[..16])
    }
}

#[async_trait::async_trait]
impl Store for AzureStore {
    async fn put_if_absent(&self, request: &PutRequest<'_>) -> Result<Put, StoreError> {
        if self.head(request.key).await?.is_some() {
            return Ok(Put::AlreadyThere);
        }
        let size = std::fs::metadata(request.path)
            .map_err(|e| read_error(request.path, &e))?
            .len();
        if size >= self.config.multipart_threshold.as_u64() {
            self.put_blocks(request, size).await
        } else {
            self.put_single(request).await
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.client.get_opts(&Path::from(key), options).await {
            Ok(got) => Ok(Some(ObjectInfo {
                bytes: got.meta.size,
                metadata: got
                    .attributes
                    .iter()
                    .filter_map(|(name, value)| match name {
                        Attribute::Metadata(name) => Some((name.to_string(), value.to_string())),
                        _ => None,
                    })
                    .collect(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classify("HEAD", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let got = match self.client.get(&Path::from(key)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(classify("GET", key, e)),
        };
        let bytes = got.bytes().await.map_err(|e| classify("GET", key, e))?;
        Ok(Some(bytes.to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.client.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify("DELETE", key, e)),
        }
    }

    async fn link(&self, key: &str) -> Result<Link, StoreError> {
        if !self.config.public_base_url.is_empty() {
            return Ok(Link {
                url: format!("{}/{key}", self.config.public_base_url.trim_end_matches('/')),
                expires_at: None,
            });
        }
        let ttl = self.config.presign_ttl;
        let url = self
            .client
            .signed_url(http::Method::GET, &Path::from(key), ttl)
            .await
            .map_err(|e| classify("SAS for", key, e))?;
        Ok(Link {
            url: url.to_string(),
            expires_at: Some(time::OffsetDateTime::now_utc() + ttl),
        })
    }

    async fn check(&self) -> Vec<String> {
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
        let container = &self.config.bucket;
        match self.put_single(&request).await {
            Ok(_) => match self.delete(&key).await {
                Ok(()) => Vec::new(),
                Err(e) => vec![format!("cannot delete a probe blob from {}: {e}", self.describe())],
            },
            Err(e) => vec![match e.code() {
                ErrorCode::STORE_NO_BUCKET => format!("container {container:?} does not exist at {}", self.endpoint),
                ErrorCode::STORE_DENIED => format!(
                    "access to container {container:?} denied at {}: check store.account and store.access_key (or AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY)",
                    self.endpoint
                ),
                _ => format!("cannot write a probe blob to {}: {e}", self.describe()),
            }],
        }
    }

    fn describe(&self) -> String {
        format!(
            "azure://{}/{} ({})",
            self.config.bucket, self.config.prefix, self.endpoint
        )
    }
}

fn read_error(path: &FsPath, e: &std::io::Error) -> StoreError {
    StoreError::permanent(
        ErrorCode::STORE_IO,
        format!("cannot read {}: {e}", path.display()),
    )
}

/// Transient: no answer, a dropped connection, 5xx, throttling. Permanent: denied, no such
/// container, anything else Azure refuses with a 4xx.
fn classify(what: &str, key: &str, e: object_store::Error) -> StoreError {
    let message = format!("{what} {key}: {e}");
    match &e {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            StoreError::permanent(ErrorCode::STORE_DENIED, message)
        }
        object_store::Error::NotFound { .. } if message.contains("ContainerNotFound") => {
            StoreError::permanent(ErrorCode::STORE_NO_BUCKET, message)
        }
        object_store::Error::Generic { .. } => {
            let client_error = ["status code: 4", "status: 4"]
                .iter()
                .any(|s| message.contains(s))
                && !message.contains("status code: 408")
                && !message.contains("status code: 429");
            if message.contains("AuthenticationFailed") || message.contains("AuthorizationFailure") {
                StoreError::permanent(ErrorCode::STORE_DENIED, message)
            } else if client_error {
                StoreError::permanent(ErrorCode::STORE_REJECTED, message)
            } else {
                StoreError::transient(message)
            }
        }
        _ => StoreError::permanent(ErrorCode::STORE_REJECTED, message),
    }
}
