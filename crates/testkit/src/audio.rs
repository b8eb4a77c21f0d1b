//! Audio for phone tests: WAV files in the phone format (8 kHz, mono, 16-bit PCM), test
//! signals (tone sequences, silence, speech from espeak-ng), and checks of what a phone
//! recorded: [`similarity`] (does the recording contain the reference?) and [`is_silent`].
//!
//! WAV files are read and written by the box's own code ([`officebox_voice::wav`]: RIFF,
//! PCM 16-bit; other channel counts are mixed down on reading); sox and espeak-ng are
//! only needed by [`speak_wav`] and [`to_phone_wav`].
//!
//! ```no_run
//! use officebox_testkit::audio;
//! # fn main() -> std::io::Result<()> {
//! # let dir = officebox_testkit::scratch_dir("audio")?;
//! let reference = dir.path().join("tones.wav");
//! audio::make_tone_wav(&reference, 3.0)?;
//! // ... a phone plays `reference` and another records `heard.wav` ...
//! # let heard = reference.clone();
//! let score = audio::similarity(&reference, &heard)?;
//! assert!(score > 0.8, "similarity {score:.3}");
//! # Ok(())
//! # }
//! ```

use std::f64::consts::PI;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use officebox_voice::wav;

use crate::cmd::run_checked;

/// The sample rate of the phone format (G.711's).
pub const PHONE_RATE: u32 = 8000;
/// [`is_silent`]'s threshold: RMS below this fraction of full scale (about -50 dBFS).
/// G.711 silence decodes to 0 (μ-law) or ±8 (A-law, -72 dBFS).
pub const SILENCE_RMS: f64 = 0.003;
/// A clean `PATH` for sox and espeak-ng.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Windows of the recording quieter than this (RMS, fraction of full scale, -60 dBFS)
/// count as silence and match nothing.
const WINDOW_FLOOR_RMS: f64 = 0.001;
/// [`similarity`] matches the reference in pieces of this many seconds ...
const CHUNK_SECONDS: f64 = 0.5;
/// ... each of which may sit this many seconds off the best overall alignment (a jitter
/// buffer dropping or inserting a packet shifts the rest of the recording by 20 ms).
const SLIP_SECONDS: f64 = 0.1;

/// Other alignments of the whole reference than the best are tried only if they score
/// at least this (see `candidate_lags`).
const RUNNER_UP_MIN: f64 = 0.25;
/// A candidate alignment scoring this well is taken without looking at the others.
const GOOD_ENOUGH: f64 = 0.9;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Mono 16-bit audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Wav {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }

    /// RMS as a fraction of full scale (0.0 = digital silence, 1.0 = full-scale square).
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len() as f64).sqrt() / 32768.0
    }
}

/// Parses a RIFF/WAVE file holding 16-bit PCM (format 1, or WAVE_FORMAT_EXTENSIBLE with
/// the PCM subformat) with the box's own reader, [`officebox_voice::wav::parse`]: several
/// channels are averaged into one, and a `data` chunk whose size is 0, 0xFFFFFFFF or
/// beyond the end of the file (a file still being written) runs to the end of the file.
pub fn parse_wav(bytes: &[u8]) -> io::Result<Wav> {
    match wav::parse(bytes) {
        Ok(w) => Ok(Wav {
            rate: w.rate,
            samples: w.samples,
        }),
        Err(e @ wav::WavError::NotPcm16 { .. }) => {
            Err(invalid(format!("{e}; convert with audio::to_phone_wav")))
        }
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// Reads a 16-bit PCM WAV file (see [`parse_wav`]); errors name the file.
pub fn read_wav(path: &Path) -> io::Result<Wav> {
    let bytes = fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))?;
    parse_wav(&bytes).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// The bytes of a mono 16-bit PCM WAV file (the box's own writer,
/// [`officebox_voice::wav::to_bytes`]).
pub fn wav_bytes(rate: u32, samples: &[i16]) -> Vec<u8> {
    wav::to_bytes(rate, samples)
}

/// Writes a mono 16-bit PCM WAV file.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) -> io::Result<()> {
    fs::write(path, wav_bytes(rate, samples))
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

fn check_seconds(seconds: f64) -> io::Result<usize> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("audio length must be between 0 and 3600 seconds, not {seconds}"),
        ));
    }
    Ok((seconds * f64::from(PHONE_RATE)).round() as usize)
}

/// Tones played one after another, each `(frequency in Hz, seconds)`, at half full scale
/// with 5 ms fades (no clicks), as an 8 kHz phone-format WAV file.
pub fn make_tones_wav(path: &Path, tones: &[(f64, f64)]) -> io::Result<()> {
    let rate = f64::from(PHONE_RATE);
    let mut samples = Vec::new();
    for &(freq, seconds) in tones {
        let n = check_seconds(seconds)?;
        if !(freq.is_finite() && freq > 0.0 && freq < rate / 2.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tone frequency must be between 0 and 4000 Hz, not {freq}"),
            ));
        }
        let fade = (0.005 * rate).max(1.0);
        for i in 0..n {
            let edge = (i.min(n - 1 - i) as f64 / fade).min(1.0);
            let v = 0.5 * edge * (2.0 * PI * freq * i as f64 / rate).sin();
            samples.push((v * 32767.0).round() as i16);
        }
    }
    write_wav(path, PHONE_RATE, &samples)
}

/// Frequencies [`make_tone_wav`] picks from.
const TONE_STEPS: [f64; 12] = [
    330.0, 440.0, 550.0, 660.0, 770.0, 880.0, 990.0, 1100.0, 1210.0, 1320.0, 1430.0, 1540.0,
];
/// Length of each tone in [`make_tone_wav`].
const TONE_STEP_SECONDS: f64 = 0.25;

/// A `seconds`-long sequence of quarter-second tones between 330 and 1540 Hz (see
/// [`make_tones_wav`]), as an 8 kHz phone-format WAV file. The frequencies follow a fixed
/// pseudo-random order without repeats of one period, so unlike a steady tone (or a
/// repeating melody) the file lines up with a recording of itself at one lag only. The
/// same length always gives the same file.
pub fn make_tone_wav(path: &Path, seconds: f64) -> io::Result<()> {
    let total = check_seconds(seconds)?;
    let step = (TONE_STEP_SECONDS * f64::from(PHONE_RATE)) as usize;
    let mut tones = Vec::new();
    let mut done = 0;
    let mut previous = usize::MAX;
    let mut k: u64 = 0;
    while done < total {
        let n = step.min(total - done);
        // splitmix64 of the step number picks the frequency; never the same twice in a row.
        k += 1;
        let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let mut i = (x % TONE_STEPS.len() as u64) as usize;
        if i == previous {
            i = (i + 1) % TONE_STEPS.len();
        }
        previous = i;
        tones.push((TONE_STEPS[i], n as f64 / f64::from(PHONE_RATE)));
        done += n;
    }
    make_tones_wav(path, &tones)
}

/// `seconds` of digital silence as an 8 kHz phone-format WAV file.
pub fn make_silence_wav(path: &Path, seconds: f64) -> io::Result<()> {
    write_wav(path, PHONE_RATE, &vec![0; check_seconds(seconds)?])
}

/// Converts any audio file sox reads into the phone format (8 kHz, mono, 16-bit signed
/// PCM WAV). Needs sox.
pub fn to_phone_wav(input: &Path, output: &Path) -> io::Result<()> {
    let rate = PHONE_RATE.to_string();
    run_checked(
        Command::new("sox")
            .arg(input)
            .args(["-r", &rate, "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(output)
            .env_clear()
            .env("PATH", PATH),
    )
    .map(drop)
}

/// `text` spoken by espeak-ng (its default English voice), normalised to -3 dBFS and
/// converted with sox into the phone format. Needs espeak-ng and sox.
pub fn speak_wav(path: &Path, text: &str) -> io::Result<()> {
    if text.trim().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "speak_wav: nothing to say",
        ));
    }
    let dir = tempfile::Builder::new().prefix("obx-speak-").tempdir()?;
    let text_file = dir.path().join("text.txt");
    let raw = dir.path().join("espeak.wav");
    fs::write(&text_file, text)?;
    // The text comes from a file, so it can never be taken for an option.
    run_checked(
        Command::new("espeak-ng")
            .arg("-w")
            .arg(&raw)
            .arg("-f")
            .arg(&text_file)
            .env_clear()
            .env("PATH", PATH),
    )?;
    let rate = PHONE_RATE.to_string();
    run_checked(
        Command::new("sox")
            .arg(&raw)
            .args(["-r", &rate, "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(path)
            .args(["norm", "-3"])
            .env_clear()
            .env("PATH", PATH),
    )
    .map(drop)
}

/// RMS of a WAV file as a fraction of full scale.
pub fn rms(path: &Path) -> io::Result<f64> {
    Ok(read_wav(path)?.rms())
}

/// Whether a WAV file is silent: RMS below [`SILENCE_RMS`] (about -50 dBFS). An empty
/// file is silent.
pub fn is_silent(path: &Path) -> io::Result<bool> {
    Ok(rms(path)? < SILENCE_RMS)
}

/// How a recording compares with a reference; see [`compare`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioMatch {
    /// The score [`similarity`] returns, 0.0 to 1.0.
    pub score: f64,
    /// Normalised cross-correlation of the whole reference at its best lag, 0.0 to 1.0
    /// (as high as `score` unless the recording slipped somewhere).
    pub whole: f64,
    /// Where the reference starts in the recording, in seconds (negative: its beginning
    /// is missing).
    pub lag_seconds: f64,
    /// RMS of the recording, fraction of full scale.
    pub recorded_rms: f64,
}

/// How well `recorded` reproduces `reference`, from 0.0 (not at all) to 1.0 (a possibly
/// delayed, scaled copy); see [`compare`]. Both must have the same sample rate.
///
/// A G.711 round trip of a clean signal scores about 0.99; unrelated speech or silence
/// scores below about 0.2.
pub fn similarity(reference: &Path, recorded: &Path) -> io::Result<f64> {
    Ok(compare(reference, recorded)?.score)
}

/// Compares a recording with the reference it should contain.
///
/// First the whole reference is slid along the recording (normalised cross-correlation,
/// by FFT, at every lag): at each lag the dot product is divided by the norms of the
/// reference and of the stretch of recording it covers, so silence or other sound before
/// and after the reference costs nothing, but a missing part does. Then, around the best
/// lag, each half second of the reference finds its own best lag within ±0.1 s, so a
/// recording that slipped (a jitter buffer dropping or adding a packet) still matches;
/// the score is the mean of those pieces' correlations weighted by their energy (quiet
/// pieces of the reference count little, silent ones not at all). Correlation magnitudes
/// are used, so an inverted copy matches too. Stretches of recording quieter than
/// -60 dBFS match nothing.
///
/// Fails if the sample rates differ or the reference is silent.
pub fn compare(reference: &Path, recorded: &Path) -> io::Result<AudioMatch> {
    let r = read_wav(reference)?;
    let x = read_wav(recorded)?;
    if r.rate != x.rate {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {} Hz but {} is {} Hz; convert with audio::to_phone_wav",
                reference.display(),
                r.rate,
                recorded.display(),
                x.rate
            ),
        ));
    }
    compare_samples(r.rate, &r.samples, &x.samples).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "comparing {} with {}: {e}",
                reference.display(),
                recorded.display()
            ),
        )
    })
}

fn centred(samples: &[i16]) -> Vec<f64> {
    let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len().max(1) as f64;
    samples.iter().map(|&s| f64::from(s) - mean).collect()
}

/// Prefix sums of squares: `p[j] - p[i]` is the energy of `x[i..j]`.
fn energy_prefix(x: &[f64]) -> Vec<f64> {
    let mut p = Vec::with_capacity(x.len() + 1);
    let mut sum = 0.0;
    p.push(0.0);
    for v in x {
        sum += v * v;
        p.push(sum);
    }
    p
}

/// Energy of `x[start..start+len]` with everything outside `x` counting as zero, and
/// how many samples of that range lie inside `x`.
fn window_energy(prefix: &[f64], start: i64, len: usize) -> (f64, usize) {
    let n = prefix.len() as i64 - 1;
    let a = start.clamp(0, n);
    let b = (start + len as i64).clamp(0, n);
    (
        (prefix[b as usize] - prefix[a as usize]).max(0.0),
        (b - a) as usize,
    )
}

/// Normalised correlation of `piece` (energy `piece_energy`) against the recording at
/// `lag` (where `piece[0]` falls), given the raw dot product.
fn ncc(dot: f64, piece_energy: f64, prefix: &[f64], lag: i64, len: usize) -> f64 {
    let (energy, covered) = window_energy(prefix, lag, len);
    let floor = (WINDOW_FLOOR_RMS * 32768.0).powi(2) * covered as f64;
    if covered == 0 || energy <= floor || piece_energy <= 0.0 {
        return 0.0;
    }
    (dot.abs() / (piece_energy * energy).sqrt()).min(1.0)
}

/// Normalised correlation of `piece` against `x` at every lag (position of `piece[0]`
/// in `x`) within `lo..=hi` where the two overlap: (lag, score) pairs, in lag order.
fn ncc_lags(piece: &[f64], x: &[f64], prefix: &[f64], lo: i64, hi: i64) -> Vec<(i64, f64)> {
    let piece_energy: f64 = piece.iter().map(|v| v * v).sum();
    // Only the part of `x` that the lags can reach.
    let from = lo.clamp(0, x.len() as i64) as usize;
    let to = (hi + piece.len() as i64).clamp(0, x.len() as i64) as usize;
    if from >= to {
        return Vec::new();
    }
    let dots = cross_correlate(piece, &x[from..to]);
    // dots[k] is the dot product at lag (k - (piece.len() - 1)) within x[from..to].
    dots.iter()
        .enumerate()
        .map(|(k, &dot)| (k as i64 - (piece.len() as i64 - 1) + from as i64, dot))
        .filter(|&(lag, _)| lag >= lo && lag <= hi)
        .map(|(lag, dot)| (lag, ncc(dot, piece_energy, prefix, lag, piece.len())))
        .collect()
}

/// Best normalised correlation of `piece` against `x` for lags within `lo..=hi`.
fn best_score(piece: &[f64], x: &[f64], prefix: &[f64], lo: i64, hi: i64) -> f64 {
    ncc_lags(piece, x, prefix, lo, hi)
        .into_iter()
        .map(|(_, score)| score)
        .fold(0.0, f64::max)
}

/// Up to `n` lags with the highest scores, each the best within `spacing` of itself;
/// after the best, only lags scoring at least half as well and at least
/// [`RUNNER_UP_MIN`]: the alignments worth a closer look. (Unrelated audio correlates
/// weakly everywhere; trying more of its alignments would only raise its score.)
fn candidate_lags(scores: &[(i64, f64)], n: usize, spacing: i64) -> Vec<(i64, f64)> {
    let mut sorted: Vec<(i64, f64)> = scores.iter().copied().filter(|s| s.1 > 0.0).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut picked: Vec<(i64, f64)> = Vec::new();
    for (lag, score) in sorted {
        if picked.len() == n
            || picked
                .first()
                .is_some_and(|best| score < (best.1 / 2.0).max(RUNNER_UP_MIN))
        {
            break;
        }
        if picked.iter().all(|p| (p.0 - lag).abs() > spacing) {
            picked.push((lag, score));
        }
    }
    picked
}

fn compare_samples(rate: u32, reference: &[i16], recorded: &[i16]) -> io::Result<AudioMatch> {
    let r = centred(reference);
    let x = centred(recorded);
    let ref_energy: f64 = r.iter().map(|v| v * v).sum();
    let ref_floor = (WINDOW_FLOOR_RMS * 32768.0).powi(2) * r.len() as f64;
    if r.is_empty() || ref_energy <= ref_floor {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the reference is silent; nothing to look for",
        ));
    }
    let recorded_rms = Wav {
        rate,
        samples: recorded.to_vec(),
    }
    .rms();
    let none = AudioMatch {
        score: 0.0,
        whole: 0.0,
        lag_seconds: 0.0,
        recorded_rms,
    };
    if x.is_empty() {
        return Ok(none);
    }
    let prefix = energy_prefix(&x);
    let n = r.len() as i64;
    let chunk = ((CHUNK_SECONDS * f64::from(rate)) as usize).max(1);
    let slip = (SLIP_SECONDS * f64::from(rate)) as i64;
    let scores = ncc_lags(&r, &x, &prefix, -(n - 1), x.len() as i64 - 1);
    // The best alignment of the whole, and a few runners-up: when the recording slipped
    // or lost a part, the right alignment need not be the best for the whole.
    let candidates = candidate_lags(&scores, 4, slip);
    let Some(&(_, whole)) = candidates.first() else {
        return Ok(none);
    };
    let pieces: Vec<(usize, f64)> = (0..r.len())
        .step_by(chunk)
        .map(|start| {
            let end = (start + chunk).min(r.len());
            (start, r[start..end].iter().map(|v| v * v).sum())
        })
        .collect();
    let loudest = pieces.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut best = none;
    for &(lag, _) in &candidates {
        let (mut weighted, mut weights) = (0.0, 0.0);
        for &(start, energy) in &pieces {
            // Pieces much quieter than the loudest say little (and silent ones nothing).
            if energy < loudest * 1e-3 {
                continue;
            }
            let piece = &r[start..(start + chunk).min(r.len())];
            let at = lag + start as i64;
            weighted += energy * best_score(piece, &x, &prefix, at - slip, at + slip);
            weights += energy;
        }
        let score = if weights > 0.0 {
            weighted / weights
        } else {
            whole
        };
        if score > best.score {
            best = AudioMatch {
                score,
                whole,
                lag_seconds: lag as f64 / f64::from(rate),
                recorded_rms,
            };
        }
        if best.score >= GOOD_ENOUGH {
            break;
        }
    }
    Ok(best)
}

/// Full linear cross-correlation: `out[k] = Σ a[i]·b[i + k - (a.len() - 1)]`, for
/// `k` in `0..a.len() + b.len() - 1`, by FFT.
fn cross_correlate(a: &[f64], b: &[f64]) -> Vec<f64> {
    let len = a.len() + b.len() - 1;
    let size = len.next_power_of_two();
    // Correlation is convolution with `a` reversed.
    let mut fa: Vec<(f64, f64)> = vec![(0.0, 0.0); size];
    let mut fb: Vec<(f64, f64)> = vec![(0.0, 0.0); size];
    for (i, &v) in a.iter().rev().enumerate() {
        fa[i].0 = v;
    }
    for (i, &v) in b.iter().enumerate() {
        fb[i].0 = v;
    }
    fft(&mut fa, false);
    fft(&mut fb, false);
    for (p, q) in fa.iter_mut().zip(&fb) {
        *p = (p.0 * q.0 - p.1 * q.1, p.0 * q.1 + p.1 * q.0);
    }
    fft(&mut fa, true);
    fa.truncate(len);
    fa.into_iter().map(|(re, _)| re / size as f64).collect()
}

/// In-place iterative radix-2 FFT (unscaled; `inverse` flips the sign of the exponent).
/// `data.len()` must be a power of two.
fn fft(data: &mut [(f64, f64)], inverse: bool) {
    let n = data.len();
    if n < 2 {
        return;
    }
    // Bit-reversal permutation.
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            data.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let angle = sign * 2.0 * PI / len as f64;
        let half = len / 2;
        // Twiddles for this stage, computed directly (no accumulated rounding).
        let twiddles: Vec<(f64, f64)> = (0..half)
            .map(|k| ((angle * k as f64).cos(), (angle * k as f64).sin()))
            .collect();
        for start in (0..n).step_by(len) {
            for (k, &(wr, wi)) in twiddles.iter().enumerate() {
                let (ur, ui) = data[start + k];
                let (vr, vi) = data[start + k + half];
                let (tr, ti) = (vr * wr - vi * wi, vr * wi + vi * wr);
                data[start + k] = (ur + tr, ui + ti);
                data[start + k + half] = (ur - tr, ui - ti);
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 μ-law round trip of one sample (encode then decode), as a phone call does.
    fn ulaw(s: i16) -> i16 {
        const BIAS: i32 = 0x84;
        let mut v = i32::from(s);
        let sign = if v < 0 { 0x80 } else { 0 };
        v = v.abs().min(32635) + BIAS;
        let mut exp = 7;
        while exp > 0 && v & (0x80 << exp) == 0 {
            exp -= 1;
        }
        let mant = (v >> (exp + 3)) & 0x0F;
        let byte = !(sign | (exp << 4) | mant) & 0xFF;
        // Decode.
        let b = !byte & 0xFF;
        let (e, m) = ((b >> 4) & 7, b & 0x0F);
        let mag = (((m << 3) + BIAS) << e) - BIAS;
        (if b & 0x80 != 0 { -mag } else { mag }) as i16
    }

    fn tones(seconds: f64) -> Vec<i16> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        make_tone_wav(&p, seconds).unwrap();
        read_wav(&p).unwrap().samples
    }

    /// Deterministic noise (xorshift), scaled to `amp`.
    fn noise(n: usize, amp: f64, seed: u64) -> Vec<i16> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s % 65536) as f64 / 32768.0 - 1.0) * amp
            })
            .map(|v| (v * 32767.0) as i16)
            .collect()
    }

    #[test]
    fn fft_cross_correlation_matches_direct_sum() {
        let a = [1.0, -2.0, 3.0];
        let b = [0.5, 4.0, -1.0, 2.0, 0.0];
        let got = cross_correlate(&a, &b);
        assert_eq!(got.len(), a.len() + b.len() - 1);
        for (k, g) in got.iter().enumerate() {
            let lag = k as i64 - (a.len() as i64 - 1);
            let want: f64 = (0..a.len() as i64)
                .filter(|i| (0..b.len() as i64).contains(&(i + lag)))
                .map(|i| a[i as usize] * b[(i + lag) as usize])
                .sum();
            assert!((g - want).abs() < 1e-9, "k={k}: {g} vs {want}");
        }
    }

    #[test]
    fn ulaw_helper_is_close() {
        for s in [0i16, 1, -1, 100, -100, 1000, 8000, -8000, 32000, -32768] {
            let d = ulaw(s);
            let err = (i32::from(s) - i32::from(d)).abs();
            assert!(err <= (i32::from(s).abs() / 16).max(8), "{s} -> {d}");
        }
    }

    /// The format itself (headers not yet finalised, stereo, odd chunks) is tested where
    /// it is read and written, in `officebox_voice::wav`; here, that the kit goes through it.
    #[test]
    fn wav_files_go_through_the_one_codec() {
        let samples = [0i16, 1, -1, 32767, -32768, 1234];
        let wav = parse_wav(&wav_bytes(8000, &samples)).unwrap();
        assert_eq!((wav.rate, wav.samples.as_slice()), (8000, &samples[..]));
        assert!(parse_wav(b"not a wav file at all").is_err());
    }

    #[test]
    fn delayed_ulaw_copy_matches() {
        let r = tones(3.0);
        let mut x = vec![0i16; 1234];
        x.extend(r.iter().map(|&s| ulaw(s)));
        x.extend(vec![0i16; 4000]);
        let m = compare_samples(8000, &r, &x).unwrap();
        assert!(m.score > 0.98, "{m:?}");
        assert!(m.whole > 0.98, "{m:?}");
        assert!((m.lag_seconds - 1234.0 / 8000.0).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn slipped_and_truncated_copies_still_match() {
        let r = tones(4.0);
        // 20 ms lost in the middle, the first 100 ms missing, quieter.
        let mut x: Vec<i16> = r[800..16000].iter().map(|&s| s / 3).collect();
        x.extend(r[16160..].iter().map(|&s| s / 3));
        let m = compare_samples(8000, &r, &x).unwrap();
        assert!(m.score > 0.9, "{m:?}");
        assert!(m.whole < m.score, "{m:?}");
        assert!(m.lag_seconds < 0.0, "{m:?}");
    }

    #[test]
    fn unrelated_audio_and_silence_do_not_match() {
        let r = tones(3.0);
        let other = noise(24000, 0.3, 7);
        let m = compare_samples(8000, &r, &other).unwrap();
        assert!(m.score < 0.2, "{m:?}");
        let silent = vec![0i16; 24000];
        assert_eq!(compare_samples(8000, &r, &silent).unwrap().score, 0.0);
        // A-law silence decodes to a small constant.
        assert_eq!(
            compare_samples(8000, &r, &[8i16; 24000]).unwrap().score,
            0.0
        );
        assert_eq!(compare_samples(8000, &r, &[]).unwrap().score, 0.0);
        assert!(compare_samples(8000, &silent, &r).is_err());
    }

    #[test]
    fn tone_file_has_the_asked_length_and_level() {
        let r = tones(2.1);
        assert_eq!(r.len(), 16800);
        let wav = Wav {
            rate: 8000,
            samples: r,
        };
        assert!(
            (wav.rms() - 0.5 / 2f64.sqrt()).abs() < 0.01,
            "{}",
            wav.rms()
        );
        assert!(check_seconds(0.0).is_err());
        assert!(check_seconds(f64::NAN).is_err());
    }
}
