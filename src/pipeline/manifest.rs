//! The manifest steps of a job: reading it (or waiting for one that comes just after its
//! media), and the checks that need the bytes or the policy (checksum, consent).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{blocking, read_failure, Ctx, Facts, ManifestSource, Rejection};
use crate::catalog::JobVerdict;
use crate::failure::{ErrorCode, Failure};
use crate::ingest::manifest::{sha256_matches, Manifest, ManifestError};

/// Reads (or, once the media work is done, waits for) the manifest. A manifest that does not
/// parse, or is over its limits, rejects the pair.
pub(super) async fn load_manifest(
    ctx: &Ctx,
    source: &ManifestSource,
    facts: &mut Facts,
    wait: bool,
) -> Result<(), Rejection> {
    if facts.manifest.is_some() {
        return Ok(());
    }
    let path = match source {
        ManifestSource::None => return Ok(()),
        ManifestSource::File(path) => path.clone(),
        ManifestSource::Spool { spool, job, deadline } => loop {
            match spool.take_manifest(job) {
                Ok(true) => break spool.manifest_of(job),
                Ok(false) if wait && Instant::now() < *deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                Ok(false) => return Ok(()),
                Err(e) => {
                    return Err(Failure::new(
                        ErrorCode::MANIFEST_UNREADABLE,
                        format!("cannot take the manifest: {e}"),
                    )
                    .into())
                }
            }
        },
    };
    let limit = ctx.config.spool.max_manifest_bytes.as_u64();
    let parsed = match Manifest::read(&path, limit) {
        Ok(parsed) => parsed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Failure::new(
                ErrorCode::MANIFEST_UNREADABLE,
                format!("cannot read the manifest: {e}"),
            )
            .into())
        }
    };
    let manifest = match parsed {
        Ok(m) => m,
        // Caught while its producer was still writing it: read it again, within the grace period.
        Err(ManifestError::NotJson(_)) if still_arriving(source) => {
            tokio::time::sleep(Duration::from_millis(25)).await;
            return Box::pin(reload(ctx, source, facts)).await;
        }
        Err(e) => return Err(e.failure().into()),
    };
    // From here on its chat id and customer names are redacted from every log line.
    crate::privacy::redact::register_manifest(&manifest);
    facts.manifest = Some(manifest);
    facts.manifest_checked = false;
    Ok(())
}

/// A spool manifest whose grace period has not run out may still be being written.
fn still_arriving(source: &ManifestSource) -> bool {
    matches!(source, ManifestSource::Spool { deadline, .. } if Instant::now() < *deadline)
}

/// Reads the manifest already taken into `work/` again.
async fn reload(ctx: &Ctx, source: &ManifestSource, facts: &mut Facts) -> Result<(), Rejection> {
    load_manifest(ctx, source, facts, false).await
}

/// The manifest's checks that need the bytes or the policy: checksum and consent. Without a
/// manifest, consent is refused only when `last` (no manifest can come any more).
pub(super) async fn check_manifest(
    ctx: &Arc<Ctx>,
    path: &Path,
    facts: &mut Facts,
    last: bool,
) -> Result<(), Rejection> {
    if facts.manifest_checked || facts.hash.is_none() || (facts.manifest.is_none() && !last) {
        return Ok(());
    }
    facts.manifest_checked = true;
    let manifest = facts.manifest.clone();
    if let Some(expected) = manifest.as_ref().and_then(|m| m.sha256.clone()) {
        let p = path.to_path_buf();
        let matches = blocking(ctx, move |_| sha256_matches(&p, &expected))
            .await
            .map_err(|e| read_failure(&e))?;
        if !matches {
            return Err(Failure::new(
                ErrorCode::CHECKSUM_MISMATCH,
                "the file's SHA-256 differs from the manifest's sha256: the download is corrupt or incomplete",
            )
            .into());
        }
    }
    if ctx.config.policy.require_consent && manifest.as_ref().and_then(|m| m.consent) != Some(true) {
        return Err(Rejection {
            failure: Failure::new(
                ErrorCode::NO_CONSENT,
                "policy.require_consent is set and the manifest does not say consent: true; the file was deleted",
            ),
            verdict: JobVerdict::Removed,
        });
    }
    Ok(())
}
