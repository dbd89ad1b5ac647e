//! `--target-ssim`: the highest CRF (the smallest output) whose SSIM still reaches a target, on
//! samples of the input, in the manner of ab-av1's crf-search (SSIM instead of VMAF, which
//! Debian's FFmpeg lacks).
//!
//! In: a video input, its probe, a video profile and [`SearchSettings`]. Out: [`CrfChoice`] —
//! the CRF to put in the profile, its SSIM and bitrate on the samples, the next CRF up (which
//! misses the target) and every point tried. The search works on whole CRF steps (x264 takes
//! fractions, profiles do not): the answer `c` reaches the target and `c + 1` does not, unless
//! `c` is the top of the range. Fails with [`BenchError::Unreachable`] when even the lowest CRF
//! misses the target, or with a media or quality error. Blocking, CPU-heavy: each point tried
//! encodes and scores every sample.
//!
//! How the next CRF is chosen: from the profile's own CRF, steps up (while the target is met)
//! or down (while it is missed), [`STEP`] then doubling, until it is bracketed; then interpolation
//! between the two bracketing points, linear in `ln(1 − SSIM)` (which is close to linear in
//! CRF), always strictly inside the bracket, so every point narrows it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{sample, video_quality, BenchError};
use crate::media::{self, Probe};
use crate::profile::Profile;

/// First CRF step while the target is not yet bracketed: +6 CRF roughly halves x264's bitrate.
pub const STEP: u8 = 6;

#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub target: f64,
    pub min_crf: u8,
    pub max_crf: u8,
    /// Samples taken from a long input.
    pub samples: usize,
    /// Length of each sample, seconds (each ends on the next keyframe after it).
    pub sample_seconds: f64,
}

/// One CRF tried on all samples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub crf: u8,
    /// Frame-weighted mean SSIM over the samples.
    pub ssim: f64,
    pub psnr_db: f64,
    pub bytes: u64,
    pub bitrate_kbps: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrfChoice {
    pub input: String,
    pub profile: String,
    pub profile_crf: u8,
    pub profile_id: String,
    pub target_ssim: f64,
    /// The CRF to use, and the id the profile has with it.
    pub crf: u8,
    pub new_profile_id: String,
    pub ssim: f64,
    pub bitrate_kbps: f64,
    /// The point just above (`crf + 1`, missing the target), if `crf` is not the top.
    pub next: Option<Evaluation>,
    pub samples: usize,
    /// Total length of the samples' outputs, seconds.
    pub sample_seconds: f64,
    /// Every point tried, in order.
    pub evaluations: Vec<Evaluation>,
}

/// Where the search ended: the highest CRF that met the target and the lowest that missed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bracket {
    pub pass: Option<u8>,
    pub fail: Option<u8>,
}

/// Searches `min..=max` from `start` for the highest CRF whose score (from `eval`, higher is
/// better and falling with CRF) reaches `target`.
pub fn search<E>(
    target: f64,
    min: u8,
    max: u8,
    start: u8,
    mut eval: impl FnMut(u8) -> Result<f64, E>,
) -> Result<Bracket, E> {
    let mut pass: Option<(u8, f64)> = None;
    let mut fail: Option<(u8, f64)> = None;
    let mut crf = start.clamp(min, max);
    // Steps double while the target is not bracketed: few points even from a far start.
    let mut step = STEP;
    loop {
        let score = eval(crf)?;
        if score >= target {
            if pass.is_none_or(|(c, _)| crf > c) {
                pass = Some((crf, score));
            }
        } else if fail.is_none_or(|(c, _)| crf < c) {
            fail = Some((crf, score));
        }
        crf = match (pass, fail) {
            (Some((p, sp)), Some((f, sf))) => {
                if f <= p + 1 {
                    break;
                }
                interpolate(target, (p, sp), (f, sf))
            }
            (Some((p, _)), None) if p < max => p.saturating_add(step).min(max),
            (None, Some((f, _))) if f > min => f.saturating_sub(step).max(min),
            _ => break,
        };
        step = step.saturating_mul(2);
    }
    Ok(Bracket {
        pass: pass.map(|(c, _)| c),
        fail: fail.map(|(c, _)| c),
    })
}

/// The CRF strictly between `pass` and `fail` where `ln(1 − score)` reaches the target's.
fn interpolate(target: f64, (p, sp): (u8, f64), (f, sf): (u8, f64)) -> u8 {
    let g = |s: f64| (1.0 - s).max(1e-9).ln();
    let span = g(sf) - g(sp);
    let t = if span.abs() < 1e-12 {
        0.5
    } else {
        ((g(target) - g(sp)) / span).clamp(0.0, 1.0)
    };
    let guess = (f64::from(p) + t * f64::from(f - p)).round() as u8;
    guess.clamp(p + 1, f - 1)
}

/// Finds the CRF for `profile` on samples of `input`.
pub fn find(
    input: &Path,
    probe: &Probe,
    profile: &Profile,
    settings: &SearchSettings,
    work_root: &Path,
) -> Result<CrfChoice, BenchError> {
    let video = profile
        .settings
        .video
        .as_ref()
        .ok_or_else(|| BenchError::NotVideo {
            profile: profile.name.clone(),
            kind: profile.kind(),
        })?;
    let dir = tempfile::Builder::new()
        .prefix("crf-search-")
        .tempdir_in(work_root)
        .map_err(|e| BenchError::Write {
            path: work_root.to_path_buf(),
            source: e,
        })?;
    let samples = sample::cut_samples(
        input,
        probe,
        settings.samples,
        settings.sample_seconds,
        dir.path(),
    )?;
    let sample_probes: Vec<(PathBuf, Probe)> = samples
        .into_iter()
        .map(|s| {
            let p = media::probe(&s).map_err(|e| BenchError::Media {
                input: s.clone(),
                source: e,
            })?;
            Ok((s, p))
        })
        .collect::<Result<_, BenchError>>()?;

    let mut evaluations: Vec<Evaluation> = Vec::new();
    let mut seconds = 0.0;
    let bracket = search(
        settings.target,
        settings.min_crf,
        settings.max_crf,
        video.crf,
        |crf| {
            let (evaluation, total) = evaluate(profile, crf, &sample_probes, dir.path())?;
            seconds = total;
            let ssim = evaluation.ssim;
            evaluations.push(evaluation);
            Ok::<f64, BenchError>(ssim)
        },
    )?;
    let at = |crf: u8| evaluations.iter().find(|e| e.crf == crf).cloned();
    let Some(chosen) = bracket.pass.and_then(at) else {
        let lowest = bracket
            .fail
            .and_then(at)
            .expect("a search that met nothing missed something");
        return Err(BenchError::Unreachable {
            input: input.to_path_buf(),
            profile: profile.name.clone(),
            target: settings.target,
            crf: lowest.crf,
            ssim: lowest.ssim,
        });
    };
    Ok(CrfChoice {
        input: input.display().to_string(),
        profile: profile.name.clone(),
        profile_crf: video.crf,
        profile_id: profile.id.clone(),
        target_ssim: settings.target,
        crf: chosen.crf,
        new_profile_id: with_crf(profile, chosen.crf)?.id,
        ssim: chosen.ssim,
        bitrate_kbps: chosen.bitrate_kbps,
        next: bracket.fail.and_then(at),
        samples: sample_probes.len(),
        sample_seconds: seconds,
        evaluations,
    })
}

/// `profile` with another CRF, and the id that goes with it.
pub fn with_crf(profile: &Profile, crf: u8) -> Result<Profile, BenchError> {
    let mut settings = profile.settings.clone();
    if let Some(v) = settings.video.as_mut() {
        v.crf = crf;
    }
    profile.with_settings(settings).map_err(|e| BenchError::Profile {
        profile: profile.name.clone(),
        detail: e.to_string(),
    })
}

/// Encodes every sample at `crf` and scores it. Returns the point and the samples' seconds.
fn evaluate(
    profile: &Profile,
    crf: u8,
    samples: &[(PathBuf, Probe)],
    dir: &Path,
) -> Result<(Evaluation, f64), BenchError> {
    let candidate = with_crf(profile, crf)?;
    let max_fps = candidate.settings.video.as_ref().map(|v| v.max_fps);
    let (mut frames, mut ssim, mut mse, mut bytes, mut seconds) = (0u64, 0.0, 0.0, 0u64, 0.0);
    for (i, (path, probe)) in samples.iter().enumerate() {
        let work = dir.join(format!("crf{crf}-{i}"));
        std::fs::create_dir_all(&work).map_err(|e| BenchError::Write {
            path: work.clone(),
            source: e,
        })?;
        let rendition = media::render(path, probe, &candidate, &work).map_err(|e| BenchError::Media {
            input: path.clone(),
            source: e,
        })?;
        let score = video_quality::measure(path, probe, max_fps, &rendition.path)?;
        frames += score.frames;
        ssim += score.ssim * score.frames as f64;
        mse += 255.0f64.powi(2) / 10f64.powf(score.psnr_db / 10.0) * score.frames as f64;
        bytes += rendition.bytes;
        seconds += rendition.duration_ms.unwrap_or(0) as f64 / 1000.0;
        let _ = std::fs::remove_dir_all(&work);
    }
    let frames_f = frames.max(1) as f64;
    let mse = mse / frames_f;
    let evaluation = Evaluation {
        crf,
        ssim: ssim / frames_f,
        psnr_db: if mse > 0.0 {
            (10.0 * (255.0f64.powi(2) / mse).log10()).min(video_quality::PSNR_CAP_DB)
        } else {
            video_quality::PSNR_CAP_DB
        },
        bytes,
        bitrate_kbps: if seconds > 0.0 {
            bytes as f64 * 8.0 / seconds / 1000.0
        } else {
            0.0
        },
    };
    Ok((evaluation, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SSIM-like: 1 − 0.002·e^(0.12·crf), falling with CRF.
    fn model(crf: u8) -> f64 {
        1.0 - 0.002 * (0.12 * f64::from(crf)).exp()
    }

    fn run(target: f64, start: u8, f: fn(u8) -> f64) -> (Bracket, Vec<u8>) {
        let mut tried = vec![];
        let bracket = search(target, 10, 51, start, |c| {
            tried.push(c);
            Ok::<_, ()>(f(c))
        })
        .unwrap();
        (bracket, tried)
    }

    #[test]
    fn finds_the_last_crf_that_meets_the_target_from_either_side() {
        for target in [0.99, 0.97, 0.95, 0.9, 0.8] {
            for start in [10, 26, 40, 51] {
                let (b, tried) = run(target, start, model);
                let c = b.pass.unwrap();
                assert!(model(c) >= target, "target {target} start {start}: {c}");
                assert_eq!(b.fail, Some(c + 1), "target {target} start {start}: {tried:?}");
                assert!(tried.len() <= 8, "target {target} start {start}: {tried:?}");
                let mut unique = tried.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), tried.len(), "no point tried twice: {tried:?}");
            }
        }
    }

    #[test]
    fn the_ends_of_the_range() {
        let (b, tried) = run(0.05, 26, model);
        assert_eq!((b.pass, b.fail), (Some(51), None));
        assert_eq!(tried, vec![26, 32, 44, 51]);
        let (b, tried) = run(0.9999, 26, model);
        assert_eq!((b.pass, b.fail), (None, Some(10)));
        assert_eq!(tried, vec![26, 20, 10]);
    }

    #[test]
    fn a_noisy_curve_still_ends_with_adjacent_points() {
        let bumpy = |c: u8| model(c) + if c.is_multiple_of(3) { 0.004 } else { 0.0 };
        for target in [0.97, 0.95] {
            let (b, tried) = run(target, 26, bumpy);
            let c = b.pass.unwrap();
            assert_eq!(b.fail, Some(c + 1), "{tried:?}");
            assert!(bumpy(c) >= target && bumpy(c + 1) < target);
        }
    }
}
