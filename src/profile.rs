//! Typed transcoding profiles.
//!
//! In: TOML text (`profiles/NAME.toml`), from the set built into the binary and, optionally, a
//! `profiles_dir` that adds or overrides profiles by name. Out: [`Profile`] values whose settings
//! are plain enums and numbers, validated without touching libav, each with a [`Profile::id`]
//! that is a hash of its canonical settings (changing a setting changes the id, so old and new
//! outputs never share a key). Fails with [`ProfileError`]: every problem of every file, listed
//! together. Blocking file I/O only when a directory is given.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// The kind of a piece of media, as found by probing its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
    Image,
    Other,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Other => "other",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The profiles shipped inside the binary: (name, TOML text).
const BUILT_IN: &[(&str, &str)] = &[
    ("voice", include_str!("../profiles/voice.toml")),
    ("music", include_str!("../profiles/music.toml")),
    ("video-720p", include_str!("../profiles/video-720p.toml")),
    ("video-480p", include_str!("../profiles/video-480p.toml")),
    ("image", include_str!("../profiles/image.toml")),
];

#[derive(Debug, thiserror::Error)]
#[error("invalid profiles:\n  - {}", .problems.join("\n  - "))]
pub struct ProfileError {
    pub problems: Vec<String>,
}

/// A validated profile. Which settings it has follows from its kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Hex digest of the canonical settings (not of the name or description).
    pub id: String,
    pub settings: Settings,
}

/// Everything that shapes an output; hashed into the profile id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub kind: MediaKind,
    pub audio: Option<AudioSettings>,
    pub video: Option<VideoSettings>,
    pub image: Option<ImageSettings>,
    pub loudness: Option<Loudness>,
    pub thumbnail: Option<ThumbnailSettings>,
    pub limits: Limits,
    pub verify: VerifySettings,
    pub retention_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    /// MPEG-1/2 Layer III through libmp3lame, in an MP3 file with a Xing/LAME header.
    Mp3,
    /// AAC-LC through FFmpeg's native encoder (the audio track of MP4 outputs).
    Aac,
}

/// Constant bitrate, or LAME's variable-bitrate quality scale (0 best … 9 smallest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    BitrateKbps(u32),
    VbrQuality(u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSettings {
    pub codec: AudioCodec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vbr_quality: Option<u8>,
    /// MP3 only: LAME's algorithm quality (`-q`), 0 (best, slowest) … 9 (fastest); LAME's own
    /// default (3) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lame_quality: Option<u8>,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// At most this many channels: 1 (mono) or 2 (stereo); more are downmixed.
    pub channels: u16,
}

impl AudioSettings {
    pub fn rate(&self) -> Rate {
        match (self.bitrate_kbps, self.vbr_quality) {
            (_, Some(q)) => Rate::VbrQuality(q),
            (Some(b), None) => Rate::BitrateKbps(b),
            (None, None) => Rate::BitrateKbps(128),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    H264,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum X264Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl X264Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
            X264Preset::Faster => "faster",
            X264Preset::Fast => "fast",
            X264Preset::Medium => "medium",
            X264Preset::Slow => "slow",
            X264Preset::Slower => "slower",
            X264Preset::Veryslow => "veryslow",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl H264Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoSettings {
    pub codec: VideoCodec,
    /// x264 constant rate factor: 0 (lossless) … 51 (worst).
    pub crf: u8,
    pub preset: X264Preset,
    #[serde(default = "default_h264_profile")]
    pub h264_profile: H264Profile,
    /// Bound on the longer side of the upright picture, in pixels.
    pub long_edge: u32,
    /// Bound on the shorter side of the upright picture, in pixels.
    pub short_edge: u32,
    /// Frames per second above this are dropped to this rate.
    pub max_fps: u32,
}

fn default_h264_profile() -> H264Profile {
    H264Profile::High
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Webp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    pub format: ImageFormat,
    /// JPEG quality 1–100 (WebP output is lossless in the `image` crate and ignores it).
    pub quality: u8,
    pub long_edge: u32,
}

/// EBU R128 loudness normalisation (FFmpeg's `loudnorm`, single pass).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loudness {
    /// Integrated loudness target, LUFS (−70 … −5).
    pub integrated_lufs: f64,
    /// Maximum true peak, dBTP (−9 … 0).
    pub true_peak_db: f64,
    /// Loudness range target, LU (1 … 50).
    pub range_lu: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailSettings {
    /// Video and image thumbnails: bound on the long edge, aspect kept (a portrait video gets
    /// a portrait thumbnail). Audio waveforms: the picture's width, with `height`.
    pub width: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// JPEG quality for video and image thumbnails.
    #[serde(default = "default_thumb_quality")]
    pub quality: u8,
}

fn default_thumb_quality() -> u8 {
    80
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    #[serde(default = "default_max_duration", with = "humantime_serde")]
    pub max_duration: Duration,
    #[serde(default = "default_max_dimension")]
    pub max_width: u32,
    #[serde(default = "default_max_dimension")]
    pub max_height: u32,
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: default_max_bytes(),
            max_duration: default_max_duration(),
            max_width: default_max_dimension(),
            max_height: default_max_dimension(),
            max_streams: default_max_streams(),
        }
    }
}

fn default_max_bytes() -> ByteSize {
    ByteSize::gb(2)
}
fn default_max_duration() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_max_dimension() -> u32 {
    8192
}
fn default_max_streams() -> u32 {
    32
}

/// How closely the verified output must match the decoded source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySettings {
    /// Absolute duration tolerance.
    #[serde(default = "default_tolerance", with = "humantime_serde")]
    pub duration_tolerance: Duration,
    /// Relative tolerance, in percent of the source duration; the larger of the two applies.
    #[serde(default = "default_tolerance_percent")]
    pub duration_tolerance_percent: f64,
    /// Decode errors tolerated in the source before the file is refused as corrupt.
    #[serde(default)]
    pub max_decode_errors: u32,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            duration_tolerance: default_tolerance(),
            duration_tolerance_percent: default_tolerance_percent(),
            max_decode_errors: 0,
        }
    }
}

fn default_tolerance() -> Duration {
    Duration::from_millis(150)
}
fn default_tolerance_percent() -> f64 {
    1.0
}

impl VerifySettings {
    /// The tolerance that applies to a source of `source_ms`.
    pub fn tolerance_ms(&self, source_ms: u64) -> u64 {
        let relative = (source_ms as f64 * self.duration_tolerance_percent / 100.0) as u64;
        (self.duration_tolerance.as_millis() as u64).max(relative)
    }
}

/// The file format of `profiles/NAME.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    kind: MediaKind,
    #[serde(default)]
    description: String,
    audio: Option<AudioSettings>,
    video: Option<VideoSettings>,
    image: Option<ImageSettings>,
    loudness: Option<Loudness>,
    thumbnail: Option<ThumbnailSettings>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    verify: VerifySettings,
    retention_days: Option<u32>,
}

impl Profile {
    /// Parses and validates one profile; `problems` receives every problem found.
    pub fn parse(name: &str, text: &str, problems: &mut Vec<String>) -> Option<Profile> {
        let file: ProfileFile = match toml::from_str(text) {
            Ok(file) => file,
            Err(e) => {
                problems.push(format!("profile {name}: {}", e.message().trim()));
                return None;
            }
        };
        let before = problems.len();
        let mut problem = |msg: String| problems.push(format!("profile {name}: {msg}"));
        let settings = Settings {
            kind: file.kind,
            audio: file.audio,
            video: file.video,
            image: file.image,
            loudness: file.loudness,
            thumbnail: file.thumbnail,
            limits: file.limits,
            verify: file.verify,
            retention_days: file.retention_days,
        };
        validate(&settings, &mut problem);
        if problems.len() > before {
            return None;
        }
        Some(Profile {
            name: name.to_string(),
            description: file.description,
            id: settings_id(&settings),
            settings,
        })
    }

    pub fn kind(&self) -> MediaKind {
        self.settings.kind
    }

    /// This profile with other settings: validated like a profile file, with the id of the new
    /// settings (so its outputs never share keys with the original's).
    pub fn with_settings(&self, settings: Settings) -> Result<Profile, ProfileError> {
        let mut problems = Vec::new();
        validate(&settings, &mut |msg: String| {
            problems.push(format!("profile {}: {msg}", self.name))
        });
        if !problems.is_empty() {
            return Err(ProfileError { problems });
        }
        Ok(Profile {
            name: self.name.clone(),
            description: self.description.clone(),
            id: settings_id(&settings),
            settings,
        })
    }
}

fn settings_id(settings: &Settings) -> String {
    let canonical = serde_json::to_vec(settings).expect("settings serialize");
    blake3::hash(&canonical).to_hex()[..16].to_string()
}

fn validate(s: &Settings, problem: &mut impl FnMut(String)) {
    match s.kind {
        MediaKind::Audio => {
            match &s.audio {
                Some(a) if a.codec != AudioCodec::Mp3 => {
                    problem("audio profiles encode MP3: set [audio] codec = \"mp3\"".into())
                }
                Some(a) => validate_audio(a, problem),
                None => problem("kind = \"audio\" needs an [audio] table".into()),
            }
            if s.video.is_some() || s.image.is_some() {
                problem("an audio profile takes no [video] or [image] table".into());
            }
        }
        MediaKind::Video => {
            match &s.video {
                Some(v) => validate_video(v, problem),
                None => problem("kind = \"video\" needs a [video] table".into()),
            }
            match &s.audio {
                Some(a) if a.codec != AudioCodec::Aac => {
                    problem("the audio track of an MP4 is AAC: set [audio] codec = \"aac\"".into())
                }
                Some(a) => validate_audio(a, problem),
                None => problem("kind = \"video\" needs an [audio] table for its sound".into()),
            }
            if s.image.is_some() {
                problem("a video profile takes no [image] table".into());
            }
        }
        MediaKind::Image => {
            match &s.image {
                Some(i) => {
                    if !(1..=100).contains(&i.quality) {
                        problem(format!("image.quality must be 1–100, not {}", i.quality));
                    }
                    if !(16..=16384).contains(&i.long_edge) {
                        problem(format!("image.long_edge must be 16–16384, not {}", i.long_edge));
                    }
                }
                None => problem("kind = \"image\" needs an [image] table".into()),
            }
            if s.audio.is_some() || s.video.is_some() || s.loudness.is_some() {
                problem("an image profile takes no [audio], [video] or [loudness] table".into());
            }
        }
        MediaKind::Other => problem("kind must be audio, video or image".into()),
    }
    if let Some(l) = &s.loudness {
        if !(-70.0..=-5.0).contains(&l.integrated_lufs) {
            problem(format!(
                "loudness.integrated_lufs must be −70…−5, not {}",
                l.integrated_lufs
            ));
        }
        if !(-9.0..=0.0).contains(&l.true_peak_db) {
            problem(format!(
                "loudness.true_peak_db must be −9…0, not {}",
                l.true_peak_db
            ));
        }
        if !(1.0..=50.0).contains(&l.range_lu) {
            problem(format!("loudness.range_lu must be 1…50, not {}", l.range_lu));
        }
    }
    if let Some(t) = &s.thumbnail {
        if !(16..=4096).contains(&t.width) {
            problem(format!("thumbnail.width must be 16–4096, not {}", t.width));
        }
        if let Some(h) = t.height {
            if !(8..=4096).contains(&h) {
                problem(format!("thumbnail.height must be 8–4096, not {h}"));
            }
        }
        if !(1..=100).contains(&t.quality) {
            problem(format!("thumbnail.quality must be 1–100, not {}", t.quality));
        }
    }
    if s.retention_days
        .is_some_and(|d| d > crate::ingest::manifest::MAX_RETENTION_DAYS)
    {
        problem("retention_days must be at most 36500".into());
    }
    let v = &s.verify;
    if !(0.0..=50.0).contains(&v.duration_tolerance_percent) {
        problem("verify.duration_tolerance_percent must be 0–50".into());
    }
    if s.limits.max_width == 0 || s.limits.max_height == 0 || s.limits.max_streams == 0 {
        problem("limits must be positive".into());
    }
}

/// Sample rates libmp3lame accepts (MPEG-1, MPEG-2 and MPEG-2.5).
const MP3_RATES: &[u32] = &[8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
/// Sample rates worth offering for AAC-LC in MP4.
const AAC_RATES: &[u32] = &[16000, 22050, 24000, 32000, 44100, 48000];

fn validate_audio(a: &AudioSettings, problem: &mut impl FnMut(String)) {
    let rates = match a.codec {
        AudioCodec::Mp3 => MP3_RATES,
        AudioCodec::Aac => AAC_RATES,
    };
    if !rates.contains(&a.sample_rate) {
        problem(format!(
            "audio.sample_rate {} is not one of {rates:?} for {:?}",
            a.sample_rate, a.codec
        ));
    }
    if !(1..=2).contains(&a.channels) {
        problem(format!("audio.channels must be 1 or 2, not {}", a.channels));
    }
    match (a.bitrate_kbps, a.vbr_quality) {
        (Some(_), Some(_)) => problem("set audio.bitrate_kbps or audio.vbr_quality, not both".into()),
        (None, None) => problem("set audio.bitrate_kbps (or vbr_quality for MP3)".into()),
        (Some(b), None) if !(8..=320).contains(&b) => {
            problem(format!("audio.bitrate_kbps must be 8–320, not {b}"))
        }
        (None, Some(q)) if a.codec != AudioCodec::Mp3 || q > 9 => {
            problem("audio.vbr_quality is for MP3 only and must be 0–9".into())
        }
        _ => {}
    }
    if let Some(q) = a.lame_quality {
        if a.codec != AudioCodec::Mp3 || q > 9 {
            problem(format!(
                "audio.lame_quality is for MP3 only and must be 0–9, not {q}"
            ));
        }
    }
}

fn validate_video(v: &VideoSettings, problem: &mut impl FnMut(String)) {
    if v.crf > 51 {
        problem(format!("video.crf must be 0–51, not {}", v.crf));
    }
    if !(16..=8192).contains(&v.long_edge) || !(16..=8192).contains(&v.short_edge) {
        problem("video.long_edge and video.short_edge must be 16–8192".into());
    }
    if v.short_edge > v.long_edge {
        problem("video.short_edge must not exceed video.long_edge".into());
    }
    if !(1..=240).contains(&v.max_fps) {
        problem(format!("video.max_fps must be 1–240, not {}", v.max_fps));
    }
}

/// All profiles by name: the built-in set, then `dir` (if any) adding or overriding by name.
#[derive(Debug, Clone)]
pub struct ProfileSet {
    profiles: BTreeMap<String, Profile>,
}

impl ProfileSet {
    pub fn built_in() -> ProfileSet {
        Self::load(None).expect("built-in profiles are valid")
    }

    pub fn load(dir: Option<&Path>) -> Result<ProfileSet, ProfileError> {
        let mut problems = Vec::new();
        let mut profiles = BTreeMap::new();
        for (name, text) in BUILT_IN {
            if let Some(p) = Profile::parse(name, text, &mut problems) {
                profiles.insert(name.to_string(), p);
            }
        }
        if let Some(dir) = dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                    paths.sort();
                    for path in paths
                        .iter()
                        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    {
                        let name = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
                        match std::fs::read_to_string(path) {
                            Ok(text) => {
                                if let Some(p) = Profile::parse(&name, &text, &mut problems) {
                                    profiles.insert(name, p);
                                }
                            }
                            Err(e) => problems.push(format!("{}: {e}", path.display())),
                        }
                    }
                }
                Err(e) => problems.push(format!("profiles_dir {}: {e}", dir.display())),
            }
        }
        if problems.is_empty() {
            Ok(ProfileSet { profiles })
        } else {
            Err(ProfileError { problems })
        }
    }

    /// A set of already validated profiles (as a worker receives them).
    pub fn from_profiles(profiles: Vec<Profile>) -> ProfileSet {
        ProfileSet {
            profiles: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_are_valid_and_distinct() {
        let set = ProfileSet::built_in();
        let names: Vec<_> = set.iter().map(|p| p.name.as_str()).collect();
        for want in ["voice", "music", "video-720p", "video-480p", "image"] {
            assert!(names.contains(&want), "missing {want}");
        }
        let mut ids: Vec<_> = set.iter().map(|p| p.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), names.len(), "profile ids collide");
    }

    #[test]
    fn id_follows_settings_not_description() {
        let base = include_str!("../profiles/voice.toml");
        let mut problems = vec![];
        let a = Profile::parse("voice", base, &mut problems).unwrap();
        let described = base.replacen("description = \"", "description = \"Other words. ", 1);
        let b = Profile::parse("voice", &described, &mut problems).unwrap();
        let retuned = base.replacen("bitrate_kbps = 32", "bitrate_kbps = 40", 1);
        let c = Profile::parse("voice", &retuned, &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn changed_settings_get_the_id_a_file_with_them_would_have() {
        let set = ProfileSet::built_in();
        let base = set.get("video-720p").unwrap();
        let mut settings = base.settings.clone();
        settings.video.as_mut().unwrap().crf = 30;
        let changed = base.with_settings(settings.clone()).unwrap();
        let text = include_str!("../profiles/video-720p.toml").replacen("crf = 26", "crf = 30", 1);
        let mut problems = vec![];
        let parsed = Profile::parse("video-720p", &text, &mut problems).unwrap();
        assert_eq!(changed.id, parsed.id);
        assert_ne!(changed.id, base.id);
        settings.video.as_mut().unwrap().crf = 60;
        let err = base.with_settings(settings).unwrap_err();
        assert!(err.problems[0].contains("video.crf must be 0–51"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
kind = "audio"
[audio]
codec = "aac"
bitrate_kbps = 999
sample_rate = 12345
channels = 6
"#;
        let mut problems = vec![];
        assert!(Profile::parse("bad", text, &mut problems).is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        let text = text.replace("\"aac\"", "\"mp3\"");
        problems.clear();
        assert!(Profile::parse("bad", &text, &mut problems).is_none());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("sample_rate 12345")));
    }

    #[test]
    fn lame_quality_is_checked_and_part_of_the_id() {
        let base = include_str!("../profiles/voice.toml");
        let mut problems = vec![];
        let tuned = base.replacen("channels = 1", "channels = 1\nlame_quality = 7", 1);
        let a = Profile::parse("voice", base, &mut problems).unwrap();
        let b = Profile::parse("voice", &tuned, &mut problems).unwrap();
        assert_ne!(a.id, b.id);
        assert!(problems.is_empty());
        let bad = include_str!("../profiles/video-720p.toml").replacen(
            "channels = 2",
            "channels = 2\nlame_quality = 2",
            1,
        );
        assert!(Profile::parse("v", &bad, &mut problems).is_none());
        assert!(
            problems[0].contains("lame_quality is for MP3 only"),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let mut problems = vec![];
        let text =
            "kind = \"image\"\nbitrate = 3\n[image]\nformat = \"jpeg\"\nquality = 80\nlong_edge = 100\n";
        assert!(Profile::parse("x", text, &mut problems).is_none());
        assert!(problems[0].contains("unknown field `bitrate`"), "{problems:?}");
    }

    #[test]
    fn a_directory_overrides_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            include_str!("../profiles/voice.toml").replacen("bitrate_kbps = 32", "bitrate_kbps = 24", 1);
        std::fs::write(dir.path().join("voice.toml"), text).unwrap();
        std::fs::write(
            dir.path().join("voice-hq.toml"),
            include_str!("../profiles/music.toml"),
        )
        .unwrap();
        let set = ProfileSet::load(Some(dir.path())).unwrap();
        assert_eq!(
            set.get("voice")
                .unwrap()
                .settings
                .audio
                .as_ref()
                .unwrap()
                .bitrate_kbps,
            Some(24)
        );
        assert!(set.get("voice-hq").is_some());
        assert_ne!(
            set.get("voice").unwrap().id,
            ProfileSet::built_in().get("voice").unwrap().id
        );
    }
}
