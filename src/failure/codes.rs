//! Every error code mediaspool writes, in one table: the code, the stage it belongs to,
//! whether the cause can pass, and what it means. Records, `failed/NAME.error.json`, logs and
//! `probe` name these codes; the README's table is made from this one (a test compares them).
//!
//! To add a code: one line in the table below, then `MEDIASPOOL_UPDATE_README=1 cargo test --lib
//! failure::codes` rewrites the README's table. A code keeps its name and stage once released:
//! CRMs and scripts match on them.

use super::Stage;

/// A stable error code. Only this table makes them, so every code a [`super::Failure`] carries
/// is listed here, at the stage it is reported with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    id: &'static str,
    stage: Stage,
    retryable: bool,
    meaning: &'static str,
}

impl ErrorCode {
    /// The code as written in records and error files: `too-large`.
    pub fn id(self) -> &'static str {
        self.id
    }

    pub fn stage(self) -> Stage {
        self.stage
    }

    /// Whether the same file, sent again unchanged, may succeed: the cause can pass (an I/O
    /// error, a server down, a worker that could not start). Media that is bad stays bad.
    pub fn retryable(self) -> bool {
        self.retryable
    }

    /// One line for the README's table.
    pub fn meaning(self) -> &'static str {
        self.meaning
    }

    /// The code named `id`, if the table has it.
    pub fn find(id: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.id == id)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

macro_rules! error_codes {
    ($($name:ident: $id:literal, $stage:ident, $retryable:literal, $meaning:literal;)*) => {
        impl ErrorCode {
            $(pub const $name: ErrorCode = ErrorCode {
                id: $id,
                stage: Stage::$stage,
                retryable: $retryable,
                meaning: $meaning,
            };)*

            /// Every code, in the README's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];
        }

        #[cfg(test)]
        const NAMES: &[(&str, &str)] = &[$((stringify!($name), $id)),*];
    };
}

error_codes! {
    // NAME: "code", stage, retryable, "meaning";
    NOT_A_REGULAR_FILE: "not-a-regular-file", Claim, false,
        "a symlink, FIFO, socket, device or directory in the spool: moved to `failed/` as it is, never followed or opened";
    WORK_DIR_ERROR: "work-dir-error", Claim, true,
        "the job's scratch directory under `work/.jobs/` could not be made";
    BAD_MANIFEST: "bad-manifest", Manifest, false,
        "the manifest is over `spool.max_manifest_bytes`, not a regular file, not JSON, or fields have the wrong type or are over their limits (each one named)";
    CHECKSUM_MISMATCH: "checksum-mismatch", Manifest, false,
        "the manifest's `sha256` does not match the bytes";
    MANIFEST_UNREADABLE: "manifest-unreadable", Manifest, true,
        "the manifest could not be taken into `work/` or read";
    TOO_LARGE: "too-large", Policy, false,
        "over `policy.max_input_bytes` (checked before hashing) or the profile's `max_bytes`";
    NO_CONSENT: "no-consent", Policy, false,
        "`policy.require_consent` and no `consent: true` (the input is deleted, not quarantined)";
    READ_ERROR: "read-error", Hash, true,
        "the input could not be read for hashing";
    EMPTY_FILE: "empty-file", Probe, false,
        "0 bytes";
    UNREADABLE: "unreadable", Probe, false,
        "looks like media but libav cannot read it (or the picture has no pixel format)";
    NO_STREAM: "no-stream", Probe, false,
        "no decodable audio or video stream, or it decodes to nothing";
    TOO_LONG: "too-long", Probe, false,
        "declared duration over the profile's `max_duration`, or decoded past it";
    DIMENSIONS_TOO_LARGE: "dimensions-too-large", Probe, false,
        "picture over `max_width` x `max_height` (either way up)";
    TOO_MANY_STREAMS: "too-many-streams", Probe, false,
        "more streams than `max_streams`";
    WRONG_KIND: "wrong-kind", Route, false,
        "routing picked a profile for another kind of media than the file is";
    UNSUPPORTED_KIND: "unsupported-kind", Route, false,
        "not media and `routing.other = \"reject\"`";
    NO_PROFILE: "no-profile", Route, false,
        "routing names a profile that does not exist";
    DECODE_ERROR: "decode-error", Transcode, false,
        "corrupt or truncated data; the message gives the position";
    IMAGE_DECODE_ERROR: "image-decode-error", Transcode, false,
        "the image decoder refused the data";
    ENCODE_FAILED: "encode-failed", Transcode, false,
        "an encoder or muxer failed";
    IO_ERROR: "io-error", Transcode, true,
        "a file of the media work (the input, an output, a thumbnail) could not be read or written";
    THUMBNAIL_FAILED: "thumbnail-failed", Thumbnail, false,
        "no frame, or the picture could not be written";
    VERIFY_FAILED: "verify-failed", Verify, false,
        "the output is not the expected container/codec/layout or does not decode";
    DURATION_MISMATCH: "duration-mismatch", Verify, false,
        "a track of the output is not as long as the source's";
    STORE_IO: "store-io", Store, true,
        "a file could not be read or written by the store (a full disk passes: the job waits in `work/`)";
    STORE_UNAVAILABLE: "store-unavailable", Store, true,
        "the store does not answer, times out, fails (5xx) or throttles: never a rejection, the job waits in `work/` (see Uploads and outages)";
    STORE_DENIED: "store-denied", Store, false,
        "the store refused the credentials or the request (403)";
    STORE_NO_BUCKET: "store-no-bucket", Store, false,
        "the bucket or container does not exist";
    STORE_REJECTED: "store-rejected", Store, false,
        "the store refused the request (another 4xx)";
    STORE_CONFIG: "store-config", Store, false,
        "the store cannot be set up from the configuration (a bad key, no credentials)";
    CATALOG_ERROR: "catalog-error", Catalog, false,
        "a catalog error that came back on three tries (no record is written)";
    WORKER_CRASHED: "worker-crashed", Worker, false,
        "the worker process died on this file twice";
    TIMEOUT: "timeout", Worker, false,
        "the job ran over `spool.job_timeout` (plus the media's duration) twice";
    OUT_OF_MEMORY: "out-of-memory", Worker, false,
        "the worker went over `spool.job_memory` twice";
    WORKER_UNAVAILABLE: "worker-unavailable", Worker, true,
        "no worker process could be started";
}

/// The README's table of codes.
pub fn markdown_table() -> String {
    let mut table = String::from("| code | stage | retry | meaning |\n|---|---|---|---|\n");
    for code in ErrorCode::ALL {
        let retry = if code.retryable { "yes" } else { "no" };
        table.push_str(&format!(
            "| `{}` | {} | {retry} | {} |\n",
            code.id, code.stage, code.meaning
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    const BEGIN: &str = "<!-- error codes: made from src/failure/codes.rs -->\n";
    const END: &str = "<!-- end of error codes -->";

    #[test]
    fn codes_are_unique_and_named_after_their_constant() {
        let mut seen = std::collections::HashSet::new();
        for (name, id) in NAMES {
            assert!(seen.insert(*id), "{id} twice");
            assert_eq!(name.to_lowercase().replace('_', "-"), *id);
            assert!(ErrorCode::find(id).is_some());
        }
        assert_eq!(ErrorCode::find("no-such-code"), None);
    }

    /// The README lists exactly these codes, each at its stage. With
    /// `MEDIASPOOL_UPDATE_README=1` the README's table is rewritten instead.
    #[test]
    fn readme_lists_every_code_at_its_stage() {
        let readme = std::fs::read_to_string(README).unwrap();
        let start = readme.find(BEGIN).expect("README marks its error-code table") + BEGIN.len();
        let end = start
            + readme[start..]
                .find(END)
                .expect("README ends its error-code table");
        let table = markdown_table();
        if std::env::var_os("MEDIASPOOL_UPDATE_README").is_some() {
            std::fs::write(README, format!("{}{table}{}", &readme[..start], &readme[end..])).unwrap();
            return;
        }
        let listed: Vec<(String, String)> = readme[start..end]
            .lines()
            .filter_map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code.to_string(), cells.get(2)?.to_string()))
            })
            .collect();
        let expected: Vec<(String, String)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.id.to_string(), c.stage.to_string()))
            .collect();
        assert_eq!(
            listed, expected,
            "the README's codes or stages differ from src/failure/codes.rs; \
             run MEDIASPOOL_UPDATE_README=1 cargo test --lib failure::codes"
        );
        assert_eq!(
            &readme[start..end],
            table,
            "the README's error-code table differs from src/failure/codes.rs; \
             run MEDIASPOOL_UPDATE_README=1 cargo test --lib failure::codes"
        );
    }
}
