//! The audio score, on plain sample buffers: delay alignment, level compensation, SNR and
//! log-spectral distance.
//!
//! In: two mono signals at one sample rate — the decoded source (reference) and the decoded
//! output. Out: [`AudioScore`]. Pure computation (FFT through `realfft`), no I/O, cannot fail:
//! a silent reference gives no score (`None`), not an error.
//!
//! Why each step: an encoder may shift the signal in time (MP3's encoder delay when a decoder
//! ignores the gapless trim, resampler latency), so the output is first aligned to the
//! reference by the peak of their cross-correlation. A profile may change the level on
//! purpose (loudness normalisation, whose gain also drifts slowly over a note), so the output's
//! level is matched to the reference's block by block (a least-squares gain per
//! [`GAIN_BLOCK_SECONDS`]) before anything is compared: what remains is what the codec lost or
//! added, not the level change the profile asked for.

use realfft::num_complex::Complex;
use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

/// Longest delay looked for between the output and the reference.
pub const MAX_LAG_SECONDS: f64 = 0.5;
/// Length of the blocks over which the output's level is matched to the reference.
pub const GAIN_BLOCK_SECONDS: f64 = 0.4;
/// Only this much of each signal is cross-correlated to find the delay (it is constant).
const ALIGN_WINDOW_SECONDS: f64 = 30.0;
/// Spectral frames for the log-spectral distance: ~21 ms at 48 kHz, half overlapping.
const FRAME: usize = 1024;
const HOP: usize = FRAME / 2;
/// Frames quieter than this, relative to the loudest frame, are left out of the distance
/// (pauses between words would otherwise weigh as much as the words).
const ACTIVE_FRAME_DB: f64 = -50.0;
/// Spectral power floor relative to the reference's mean power per bin: differences below it
/// are inaudible and would otherwise dominate the log.
const SPECTRAL_FLOOR_DB: f64 = -60.0;

/// How close a decoded output is to its decoded source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AudioScore {
    /// Signal-to-noise ratio in dB after alignment and level matching (higher is better).
    pub snr_db: f64,
    /// Mean log-spectral distance in dB over active frames (0 = same spectra; lower is better).
    pub lsd_db: f64,
    /// Samples the output lags behind the reference (negative: it leads).
    pub delay_samples: i64,
}

/// Scores `output` against `reference`, both mono at `rate` Hz. `None` when either is empty
/// or the reference is silent.
pub fn score(reference: &[f32], output: &[f32], rate: u32) -> Option<AudioScore> {
    if reference.is_empty() || output.is_empty() || energy(reference) == 0.0 {
        return None;
    }
    let max_lag = (MAX_LAG_SECONDS * f64::from(rate)) as usize;
    let window = (ALIGN_WINDOW_SECONDS * f64::from(rate)) as usize;
    let delay = find_delay(
        &reference[..reference.len().min(window)],
        &output[..output.len().min(window)],
        max_lag,
    );
    let (x, y) = aligned(reference, output, delay);
    let block = ((GAIN_BLOCK_SECONDS * f64::from(rate)) as usize).max(1);
    let y = level_matched(x, y, block);
    Some(AudioScore {
        snr_db: snr_db(x, &y),
        lsd_db: log_spectral_distance(x, &y),
        delay_samples: delay,
    })
}

fn energy(s: &[f32]) -> f64 {
    s.iter().map(|v| f64::from(*v) * f64::from(*v)).sum()
}

/// The lag `d` (|d| ≤ `max_lag`) that maximises Σ x[n]·y[n+d]: how many samples `y` is late.
pub fn find_delay(x: &[f32], y: &[f32], max_lag: usize) -> i64 {
    let n = (x.len() + y.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let forward = planner.plan_fft_forward(n);
    let inverse = planner.plan_fft_inverse(n);
    let spectrum = |s: &[f32]| {
        let mut buf = vec![0.0f32; n];
        buf[..s.len()].copy_from_slice(s);
        let mut out = forward.make_output_vec();
        forward
            .process(&mut buf, &mut out)
            .expect("buffer sizes match the plan");
        out
    };
    let (sx, sy) = (spectrum(x), spectrum(y));
    // Correlation = IFFT(conj(X)·Y): index d holds Σ x[n]·y[n+d] (negative d wrap around).
    let mut product: Vec<Complex<f32>> = sx.iter().zip(&sy).map(|(a, b)| a.conj() * b).collect();
    // The imaginary parts of the DC and Nyquist bins must be zero for a real inverse.
    product[0].im = 0.0;
    let last = product.len() - 1;
    product[last].im = 0.0;
    let mut corr = vec![0.0f32; n];
    inverse
        .process(&mut product, &mut corr)
        .expect("buffer sizes match the plan");
    let max_lag = max_lag.min(n / 2 - 1) as i64;
    (-max_lag..=max_lag)
        .max_by(|a, b| {
            let at = |d: i64| corr[d.rem_euclid(n as i64) as usize];
            at(*a).total_cmp(&at(*b))
        })
        .unwrap_or(0)
}

/// The overlapping parts of `x` and of `y` shifted back by `delay`.
fn aligned<'a>(x: &'a [f32], y: &'a [f32], delay: i64) -> (&'a [f32], &'a [f32]) {
    let (x, y) = if delay >= 0 {
        (x, &y[(delay as usize).min(y.len())..])
    } else {
        (&x[((-delay) as usize).min(x.len())..], y)
    };
    let len = x.len().min(y.len());
    (&x[..len], &y[..len])
}

/// `y` scaled, block by block, by the least-squares gain that best matches it to `x`.
fn level_matched(x: &[f32], y: &[f32], block: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(y.len());
    for (bx, by) in x.chunks(block).zip(y.chunks(block)) {
        let cross: f64 = bx
            .iter()
            .zip(by)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let power = energy(by);
        let gain = if power > 0.0 {
            (cross / power).max(0.0)
        } else {
            0.0
        };
        out.extend(by.iter().map(|v| (f64::from(*v) * gain) as f32));
    }
    out
}

/// 10·log10(Σx² / Σ(x−y)²), capped at 120 dB for identical signals.
pub fn snr_db(x: &[f32], y: &[f32]) -> f64 {
    let noise: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum();
    let signal = energy(x);
    if noise <= signal * 1e-12 {
        return 120.0;
    }
    10.0 * (signal / noise).log10()
}

/// Mean over active frames of the RMS difference, in dB, between the power spectra of `x` and
/// `y` (Hann-windowed frames of [`FRAME`] samples).
pub fn log_spectral_distance(x: &[f32], y: &[f32]) -> f64 {
    let len = x.len().min(y.len());
    if len < FRAME {
        return 0.0;
    }
    let mut planner = RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(FRAME);
    let window: Vec<f64> = (0..FRAME)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / FRAME as f64).cos())
        .collect();
    let mut input = vec![0.0f64; FRAME];
    let mut out = fft.make_output_vec();
    let mut power = |s: &[f32]| -> Vec<f64> {
        for ((dst, src), w) in input.iter_mut().zip(s).zip(&window) {
            *dst = f64::from(*src) * w;
        }
        fft.process(&mut input, &mut out)
            .expect("buffer sizes match the plan");
        out.iter().map(|c| c.norm_sqr()).collect()
    };
    let starts: Vec<usize> = (0..=len - FRAME).step_by(HOP).collect();
    let spectra: Vec<(Vec<f64>, Vec<f64>)> = starts
        .iter()
        .map(|&s| (power(&x[s..s + FRAME]), power(&y[s..s + FRAME])))
        .collect();
    let frame_energy: Vec<f64> = spectra.iter().map(|(px, _)| px.iter().sum()).collect();
    let loudest = frame_energy.iter().cloned().fold(0.0, f64::max);
    if loudest <= 0.0 {
        return 0.0;
    }
    let bins = spectra[0].0.len() as f64;
    let active_floor = loudest * 10f64.powf(ACTIVE_FRAME_DB / 10.0);
    let active: Vec<usize> = (0..spectra.len())
        .filter(|&i| frame_energy[i] >= active_floor)
        .collect();
    let mean_bin_power = active.iter().map(|&i| frame_energy[i]).sum::<f64>() / active.len() as f64 / bins;
    let floor = mean_bin_power * 10f64.powf(SPECTRAL_FLOOR_DB / 10.0);
    let total: f64 = active
        .iter()
        .map(|&i| {
            let (px, py) = &spectra[i];
            let mean_sq = px
                .iter()
                .zip(py)
                .map(|(a, b)| {
                    let d = 10.0 * ((a + floor) / (b + floor)).log10();
                    d * d
                })
                .sum::<f64>()
                / bins;
            mean_sq.sqrt()
        })
        .sum();
    total / active.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic speech-like test signal: a few harmonics under a syllable envelope.
    fn voice_like(rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let envelope = (std::f64::consts::PI * 3.0 * t).sin().abs();
                let tone: f64 = [(180.0, 1.0), (360.0, 0.5), (900.0, 0.3), (2500.0, 0.1)]
                    .iter()
                    .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum();
                (0.3 * envelope * tone) as f32
            })
            .collect()
    }

    /// Reproducible noise in −1…1 (xorshift).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s as f64 / u64::MAX as f64 * 2.0 - 1.0) as f32
            })
            .collect()
    }

    #[test]
    fn the_delay_is_found_either_way() {
        let x = voice_like(16000, 2.0);
        for delay in [0i64, 37, 1105, -250] {
            let y: Vec<f32> = if delay >= 0 {
                std::iter::repeat_n(0.0, delay as usize)
                    .chain(x.iter().cloned())
                    .collect()
            } else {
                x[(-delay) as usize..].to_vec()
            };
            assert_eq!(find_delay(&x, &y, 8000), delay);
        }
    }

    #[test]
    fn identical_signals_score_perfectly_whatever_the_level_and_delay() {
        let x = voice_like(16000, 2.0);
        let y: Vec<f32> = std::iter::repeat_n(0.0, 500)
            .chain(x.iter().map(|v| v * 0.5))
            .collect();
        let s = score(&x, &y, 16000).unwrap();
        assert_eq!(s.delay_samples, 500);
        assert!(s.snr_db > 100.0, "{s:?}");
        assert!(s.lsd_db < 0.01, "{s:?}");
    }

    #[test]
    fn snr_follows_the_noise_level() {
        let x = voice_like(16000, 3.0);
        let n = noise(x.len(), 7);
        let rms = (energy(&x) / x.len() as f64).sqrt();
        let scores: Vec<AudioScore> = [0.01, 0.1]
            .iter()
            .map(|rel| {
                // Noise at `rel` of the signal's RMS: SNR ≈ −20·log10(rel) − 10·log10(1/3)
                // (uniform noise in −1…1 has power 1/3).
                let y: Vec<f32> = x
                    .iter()
                    .zip(&n)
                    .map(|(a, b)| a + (f64::from(*b) * rel * rms * 3f64.sqrt()) as f32)
                    .collect();
                score(&x, &y, 16000).unwrap()
            })
            .collect();
        assert!((scores[0].snr_db - 40.0).abs() < 1.5, "{scores:?}");
        assert!((scores[1].snr_db - 20.0).abs() < 1.5, "{scores:?}");
        assert!(scores[0].lsd_db < scores[1].lsd_db, "{scores:?}");
    }

    #[test]
    fn losing_the_high_band_raises_the_spectral_distance() {
        let x = voice_like(16000, 2.0);
        // Drop the 2.5 kHz harmonic: the same signal without its top partial.
        let y: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = i as f64 / 16000.0;
                let envelope = (std::f64::consts::PI * 3.0 * t).sin().abs();
                v - (0.3 * envelope * 0.1 * (2.0 * std::f64::consts::PI * 2500.0 * t).sin()) as f32
            })
            .collect();
        let s = score(&x, &y, 16000).unwrap();
        assert!(s.lsd_db > 1.0, "{s:?}");
        assert!(s.snr_db < 30.0, "{s:?}");
    }

    #[test]
    fn silence_has_no_score() {
        assert!(score(&[0.0; 4000], &[0.1; 4000], 16000).is_none());
        assert!(score(&[], &[0.1; 4000], 16000).is_none());
    }
}
