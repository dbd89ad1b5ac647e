//! MP4 box sizes checked before symphonia reads a file's headers.
//!
//! In: the path of a file libav reads as MP4/MOV. Out: whether every box symphonia would descend
//! into lies within its parent and the file, and every sample table holds the entries it
//! declares. symphonia 0.5 sizes its buffers from these fields before reading them: a 1.6 KB
//! file declaring a 90 GB metadata box made it ask for 90 GB, and a failed allocation aborts the
//! process, which no `catch_unwind` can stop. When this says no, the file's declared duration
//! comes from libav alone. Blocking; reads box headers only (a few bytes each), at most
//! [`MAX_BOXES`] of them, [`MAX_DEPTH`] deep.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Boxes read before giving up on a file (and so leaving it to libav).
const MAX_BOXES: usize = 100_000;
/// Nesting followed (moov/trak/mdia/minf/stbl/stsd/mp4a/esds is eight).
const MAX_DEPTH: usize = 12;

/// Whether symphonia can read the MP4 at `path` without being asked for more memory than the
/// file's own boxes account for.
pub fn sizes_hold(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(length) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut walk = Walk {
        reader: BufReader::with_capacity(4096, file),
        boxes: 0,
    };
    walk.children(0, length, b"file", 0).is_some()
}

struct Walk {
    reader: BufReader<File>,
    boxes: usize,
}

/// Boxes whose payload is a list of boxes, and how many bytes come before that list (version
/// and flags, an entry count). Sample entries are [`sample_entry`]; `ilst` items are read by
/// their parent.
fn container(kind: &[u8; 4]) -> Option<u64> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"udta" | b"edts" | b"dinf" | b"mvex" | b"moof"
        | b"traf" | b"mfra" | b"ilst" | b"wave" => Some(0),
        b"meta" => Some(4),
        b"stsd" => Some(8),
        _ => None,
    }
}

/// Audio sample entries symphonia reads the child boxes of (`esds`, `alac`, `dfLa`, `dOps`).
fn sample_entry(kind: &[u8; 4]) -> bool {
    matches!(kind, b"mp4a" | b"alac" | b"fLaC" | b"Opus")
}

/// Sample tables: bytes before the entries (version and flags, then counts) and bytes per entry.
fn table(kind: &[u8; 4]) -> Option<(u64, u64)> {
    match kind {
        b"stco" => Some((8, 4)),
        b"co64" | b"stts" => Some((8, 8)),
        b"stsc" => Some((8, 12)),
        b"stsz" => Some((12, 4)),
        _ => None,
    }
}

impl Walk {
    /// Checks the boxes in `start..end`, children of a `parent` box; `None` when one does not
    /// fit or the file cannot be read.
    fn children(&mut self, start: u64, end: u64, parent: &[u8; 4], depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut at = start;
        while at < end {
            self.boxes += 1;
            if self.boxes > MAX_BOXES || end - at < 8 {
                return None;
            }
            let [s0, s1, s2, s3, k0, k1, k2, k3] = self.read_at(at)?;
            let kind = [k0, k1, k2, k3];
            let (size, header_len) = match u32::from_be_bytes([s0, s1, s2, s3]) {
                0 => (end - at, 8),
                1 => (u64::from_be_bytes(self.read_at(at + 8)?), 16),
                size => (u64::from(size), 8),
            };
            if size < header_len || size > end - at {
                return None;
            }
            let (payload, box_end) = (at + header_len, at + size);
            if parent == b"ilst" {
                // An item (`©nam`, `covr`, `----`…) holds `data`, `mean` and `name` boxes.
                self.children(payload, box_end, &kind, depth + 1)?;
            } else if let Some(skip) = container(&kind) {
                (payload + skip <= box_end).then_some(())?;
                self.children(payload + skip, box_end, &kind, depth + 1)?;
            } else if parent == b"stsd" && sample_entry(&kind) {
                let skip = self.audio_entry_fields(payload, box_end)?;
                self.children(payload + skip, box_end, &kind, depth + 1)?;
            } else if let Some((fixed, entry)) = table(&kind) {
                self.table_fits(&kind, payload, box_end, fixed, entry)?;
            }
            at = box_end;
        }
        Some(())
    }

    /// `N` bytes of the file from `offset`.
    fn read_at<const N: usize>(&mut self, offset: u64) -> Option<[u8; N]> {
        self.reader.seek(SeekFrom::Start(offset)).ok()?;
        let mut bytes = [0u8; N];
        self.reader.read_exact(&mut bytes).ok()?;
        Some(bytes)
    }

    fn u32_at(&mut self, offset: u64) -> Option<u64> {
        self.read_at(offset).map(|b| u64::from(u32::from_be_bytes(b)))
    }

    /// The fixed fields of an audio sample entry before its child boxes: 28 bytes, and 16 or 36
    /// more in QuickTime's versions 1 and 2.
    fn audio_entry_fields(&mut self, payload: u64, end: u64) -> Option<u64> {
        let fields = match u16::from_be_bytes(self.read_at(payload + 8)?) {
            0 => 28,
            1 => 44,
            2 => 64,
            _ => return None,
        };
        (payload + fields <= end).then_some(fields)
    }

    /// Whether a table's entry count (the last of its `fixed` bytes) fits in its box.
    fn table_fits(&mut self, kind: &[u8; 4], payload: u64, end: u64, fixed: u64, entry: u64) -> Option<()> {
        if end - payload < fixed {
            return None;
        }
        // `stsz` with a constant sample size (its first field) has no table at all.
        if kind == b"stsz" && self.u32_at(payload + 4)? != 0 {
            return Some(());
        }
        let entries = self.u32_at(payload + fixed - 4)?;
        (entries.checked_mul(entry)? <= end - payload - fixed).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
    }

    /// A box of `kind` around `payload`.
    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = u32::try_from(payload.len() + 8).unwrap().to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    fn written(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `ftyp`, then `moov/udta/meta/ilst/©nam/data` holding `data`.
    fn tagged(data: &[u8]) -> Vec<u8> {
        let title = mp4_box(b"\xa9nam", data);
        let meta = [vec![0; 4], mp4_box(b"ilst", &title)].concat();
        let moov = mp4_box(b"moov", &mp4_box(b"udta", &mp4_box(b"meta", &meta)));
        [mp4_box(b"ftyp", b"M4A \0\0\0\0M4A isom"), moov].concat()
    }

    #[test]
    fn every_mp4_fixture_holds() {
        for name in [
            "audio_only.mp4",
            "cover_art.m4a",
            "fps60_h264.mp4",
            "hdr_hlg_hevc.mp4",
            "portrait_h264.mp4",
            "rot90_h264.mp4",
            "rot90_hevc.mp4",
            "silent_video.mp4",
            "vfr_h264.mp4",
        ] {
            assert!(sizes_hold(&fixture(name)), "{name}");
        }
    }

    #[test]
    fn a_box_reaching_past_its_parent_or_the_file_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let text = [&[0, 0, 0, 1, 0, 0, 0, 0][..], b"Hello"].concat();
        assert!(sizes_hold(&written(
            &dir,
            "fits.m4a",
            &tagged(&mp4_box(b"data", &text))
        )));
        // A `data` box claiming 90 GB through a 64-bit size, inside parents of a few bytes.
        let huge = [
            &[0, 0, 0, 1][..],
            b"data",
            &90_194_313_208u64.to_be_bytes(),
            &text,
        ]
        .concat();
        assert!(!sizes_hold(&written(&dir, "huge.m4a", &tagged(&huge))));
        // The file cut short: `moov` says more than is there.
        let whole = tagged(&mp4_box(b"data", &text));
        assert!(!sizes_hold(&written(&dir, "cut.m4a", &whole[..whole.len() - 3])));
        assert!(!sizes_hold(&fixture("truncated.mp4")));
    }

    #[test]
    fn a_table_declaring_more_entries_than_its_box_holds_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let stbl = |count: u32, entries: usize| {
            let stts = [&[0u8; 4][..], &count.to_be_bytes(), &vec![0; 8 * entries]].concat();
            let stbl = mp4_box(b"stbl", &mp4_box(b"stts", &stts));
            let moov = mp4_box(
                b"moov",
                &mp4_box(b"trak", &mp4_box(b"mdia", &mp4_box(b"minf", &stbl))),
            );
            [mp4_box(b"ftyp", b"isom\0\0\0\0isom"), moov].concat()
        };
        assert!(sizes_hold(&written(&dir, "two.mp4", &stbl(2, 2))));
        assert!(!sizes_hold(&written(&dir, "lying.mp4", &stbl(u32::MAX, 2))));
    }

    /// Found by fuzzing `probe`: a 1.6 KB M4A whose metadata made symphonia ask for 90 GB, which
    /// aborted the worker (and so the job came out `worker-crashed`, not with libav's reading).
    #[test]
    fn the_declared_duration_of_a_file_with_a_runaway_box_comes_from_libav_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(
            &dir,
            "runaway.m4a",
            include_bytes!("../../fuzz/regressions/probe/m4a-moov-past-the-end.m4a"),
        );
        assert!(!sizes_hold(&path));
        assert_eq!(
            super::super::duration::header_duration_ms(&path, "mov,mp4,m4a,3gp,3g2,mj2"),
            None
        );
    }
}
