//! WAV files (RIFF/WAVE, 16-bit PCM): the one reader and writer of the project, here
//! because the files are kept state that more than one service meets at (the phone
//! system plays an attendant's greeting the admin pages took as an upload). The box
//! uses it for prompts, greetings and the recordings in voicemail emails (8 kHz mono,
//! [`read_wav`] and [`write_wav`]); the test kit uses it for whatever a test phone plays
//! or records ([`parse`] and [`to_bytes`], any rate and channel count).

use thiserror::Error;

/// The phone's sample rate: every prompt, greeting and recording the box keeps.
pub const RATE: u32 = 8000;

/// Why bytes are not a WAV file this module reads.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WavError {
    #[error("WAV: not a RIFF/WAVE file")]
    NotWave,
    #[error("WAV: fmt chunk too short ({0} bytes)")]
    ShortFormat(usize),
    #[error("WAV: only 16-bit PCM is supported (format tag {tag}, {bits} bits)")]
    NotPcm16 { tag: u16, bits: u16 },
    #[error("WAV: bad fmt chunk ({channels} channels, {rate} Hz)")]
    BadFormat { channels: u16, rate: u32 },
    #[error("WAV: data chunk before fmt chunk")]
    DataBeforeFormat,
    #[error("WAV: no data chunk")]
    NoData,
    #[error("WAV: not the phone format (16-bit PCM, 8 kHz, mono): {channels} channels, {rate} Hz")]
    NotPhoneFormat { channels: u16, rate: u32 },
}

/// A WAV file's audio: its rate and channel count as the file said, and its samples
/// mixed down to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub rate: u32,
    /// Channels in the file (the samples are their mean).
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// A little-endian u16 at `at`, if the bytes reach that far.
fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

/// A little-endian u32 at `at`, if the bytes reach that far.
fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

/// Parses a RIFF/WAVE file holding 16-bit PCM: format 1, or WAVE_FORMAT_EXTENSIBLE with
/// the PCM subformat. Several channels are averaged into one. Unknown chunks are skipped.
/// A `data` chunk whose size is 0, 0xFFFFFFFF or beyond the end of the file (a file still
/// being written, whose header is not final yet) runs to the end of the file.
pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut fmt: Option<(u16, u32)> = None;
    let mut at: usize = 12;
    while let (Some(id), Some(size)) = (
        at.checked_add(4).and_then(|end| bytes.get(at..end)),
        le32(bytes, at.saturating_add(4)),
    ) {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let body = at.saturating_add(8);
        let rest = bytes.get(body..).unwrap_or_default();
        match id {
            b"fmt " => {
                let short = WavError::ShortFormat(size);
                if size < 16 || rest.len() < 16 {
                    return Err(short);
                }
                let (Some(mut tag), Some(channels), Some(rate), Some(bits)) =
                    (le16(rest, 0), le16(rest, 2), le32(rest, 4), le16(rest, 14))
                else {
                    return Err(short);
                };
                if tag == 0xFFFE
                    && size >= 40
                    && let Some(sub) = le16(rest, 24)
                {
                    // WAVE_FORMAT_EXTENSIBLE: the subformat GUID starts with the tag.
                    tag = sub;
                }
                if tag != 1 || bits != 16 {
                    return Err(WavError::NotPcm16 { tag, bits });
                }
                if channels == 0 || rate == 0 {
                    return Err(WavError::BadFormat { channels, rate });
                }
                fmt = Some((channels, rate));
            }
            b"data" => {
                let (channels, rate) = fmt.ok_or(WavError::DataBeforeFormat)?;
                let data = if size == 0 || size == 0xFFFF_FFFF {
                    rest
                } else {
                    rest.get(..size).unwrap_or(rest)
                };
                let frame = 2 * usize::from(channels);
                let samples = data
                    .chunks_exact(frame)
                    .map(|f| {
                        let sum: i32 = f
                            .chunks_exact(2)
                            .map(|s| match s {
                                [lo, hi] => i32::from(i16::from_le_bytes([*lo, *hi])),
                                _ => 0,
                            })
                            .sum();
                        // The mean of i16 values fits an i16.
                        (sum / i32::from(channels)) as i16
                    })
                    .collect();
                return Ok(Wav {
                    rate,
                    channels,
                    samples,
                });
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::NoData)
}

/// The bytes of a mono 16-bit PCM WAV file at `rate`.
pub fn to_bytes(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.saturating_mul(2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The samples of a WAV file in the phone format (16-bit PCM, 8 kHz, mono); other rates
/// and channel counts are refused (the box does not resample).
pub fn read_wav(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    let wav = parse(bytes)?;
    if wav.rate != RATE || wav.channels != 1 {
        return Err(WavError::NotPhoneFormat {
            channels: wav.channels,
            rate: wav.rate,
        });
    }
    Ok(wav.samples)
}

/// The samples of any 16-bit PCM WAV file, in the phone format: channels mixed down and
/// the rate converted to 8 kHz (an uploaded greeting, espeak-ng's 22.05 kHz speech).
pub fn read_any_wav(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    let wav = parse(bytes)?;
    Ok(resample(&wav.samples, wav.rate, RATE))
}

/// Taps on each side of a resampled sample.
const TAPS: i64 = 16;

/// `samples` at `from` Hz, as they sound at `to` Hz: band-limited interpolation (a
/// Hann-windowed sinc, cut off below the lower rate's Nyquist frequency, so going down
/// leaves no aliases).
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || from == 0 || to == 0 || samples.is_empty() {
        return samples.to_vec();
    }
    let (from_f, to_f) = (f64::from(from), f64::from(to));
    let step = from_f / to_f;
    // The cut-off, as a share of the input's rate: a little under half the lower rate.
    let cutoff = 0.45 * from_f.min(to_f) / from_f;
    // Going down, the filter is wider in input samples.
    let reach = (TAPS as f64 * (0.5 / cutoff).max(1.0)).ceil() as i64;
    let len = (samples.len() as f64 / step).floor() as usize;
    let mut out = Vec::with_capacity(len);
    for n in 0..len {
        let t = n as f64 * step;
        let centre = t.floor() as i64;
        let mut acc = 0.0;
        for i in (centre - reach + 1)..=(centre + reach) {
            let Some(&s) = usize::try_from(i).ok().and_then(|i| samples.get(i)) else {
                continue;
            };
            let x = t - i as f64;
            let window = 0.5 + 0.5 * (std::f64::consts::PI * x / reach as f64).cos();
            let arg = std::f64::consts::PI * 2.0 * cutoff * x;
            let sinc = if arg.abs() < 1e-9 {
                1.0
            } else {
                arg.sin() / arg
            };
            acc += f64::from(s) * 2.0 * cutoff * sinc * window;
        }
        out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
    }
    out
}

/// A WAV file of `samples` in the phone format (plays in any mail client).
pub fn write_wav(samples: &[i16]) -> Vec<u8> {
    to_bytes(RATE, samples)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn phone_format_round_trip_and_refusals() {
        let samples: Vec<i16> = (0..800).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let wav = write_wav(&samples);
        assert_eq!(wav.len(), 44 + 1600);
        assert_eq!(read_wav(&wav).unwrap(), samples);
        let mut stereo = wav.clone();
        stereo[22] = 2;
        assert!(matches!(
            read_wav(&stereo),
            Err(WavError::NotPhoneFormat { channels: 2, .. })
        ));
        let mut wideband = wav.clone();
        wideband[24..28].copy_from_slice(&16000u32.to_le_bytes());
        assert!(read_wav(&wideband).is_err());
        assert_eq!(read_wav(b"RIFF\0\0\0\0WAVE"), Err(WavError::NoData));
        assert_eq!(read_wav(&wav[..30]), Err(WavError::ShortFormat(16)));
        let mut eight_bit = wav.clone();
        eight_bit[34] = 8;
        assert_eq!(
            read_wav(&eight_bit),
            Err(WavError::NotPcm16 { tag: 1, bits: 8 })
        );
    }

    #[test]
    fn any_rate_round_trip_and_lenient_header() {
        let samples = [0i16, 1, -1, 32767, -32768, 1234];
        let bytes = to_bytes(16000, &samples);
        assert_eq!(bytes.len(), 44 + 12);
        let wav = parse(&bytes).unwrap();
        assert_eq!((wav.rate, wav.channels), (16000, 1));
        assert_eq!(wav.samples, samples);
        // A header not yet finalised (data size 0, or past the end) reads to the end.
        let mut open = bytes.clone();
        open[40..44].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse(&open).unwrap().samples, samples);
        open[40..44].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(parse(&open).unwrap().samples, samples);
        // Stereo is mixed down; unknown chunks (odd-sized, padded) are skipped.
        let mut st = b"RIFF\0\0\0\0WAVELIST\x03\0\0\0abc\0fmt \x10\0\0\0".to_vec();
        st.extend_from_slice(&[1, 0, 2, 0]);
        st.extend_from_slice(&16000u32.to_le_bytes());
        st.extend_from_slice(&64000u32.to_le_bytes());
        st.extend_from_slice(&[4, 0, 16, 0]);
        st.extend_from_slice(b"data\x08\0\0\0");
        for s in [100i16, 300, -10, -30] {
            st.extend_from_slice(&s.to_le_bytes());
        }
        let wav = parse(&st).unwrap();
        assert_eq!(
            (wav.rate, wav.channels, wav.samples),
            (16000, 2, vec![200, -20])
        );
        assert_eq!(parse(b"RIFF....WAVE"), Err(WavError::NoData));
        assert_eq!(parse(b"not a wav file at all"), Err(WavError::NotWave));
    }

    /// The strength of `hz` in `samples` at `rate` (a single-bin DFT, per sample).
    fn level(samples: &[i16], rate: u32, hz: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in samples.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate);
            re += f64::from(s) * a.cos();
            im += f64::from(s) * a.sin();
        }
        (re * re + im * im).sqrt() / samples.len() as f64
    }

    fn tone(hz: f64, rate: u32, seconds: f64) -> Vec<i16> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| {
                (10000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn speech_rates_become_the_phone_rate_without_aliases() {
        // espeak-ng speaks at 22050 Hz: a 1 kHz tone stays 1 kHz, a second stays a second.
        let out = resample(&tone(1000.0, 22050, 1.0), 22050, RATE);
        assert_eq!(out.len(), 8000);
        let kept = level(&out, RATE, 1000.0);
        assert!(kept > 4000.0, "the tone is kept: {kept}");
        // 6 kHz cannot be carried at 8 kHz: it must not fold back to 2 kHz.
        let out = resample(&tone(6000.0, 22050, 1.0), 22050, RATE);
        let folded = level(&out, RATE, 2000.0);
        assert!(folded < 100.0, "no alias: {folded}");
        // Up (an 8 kHz file played at 16 kHz) keeps the tone too; the same rate is a copy.
        let up = resample(&tone(440.0, 8000, 0.5), 8000, 16000);
        assert_eq!(up.len(), 8000);
        assert!(level(&up, 16000, 440.0) > 4000.0);
        let same = tone(440.0, 8000, 0.1);
        assert_eq!(resample(&same, 8000, 8000), same);
        // A stereo 44.1 kHz upload reads as 8 kHz mono.
        let bytes = to_bytes(44100, &tone(500.0, 44100, 0.5));
        assert_eq!(read_any_wav(&bytes).unwrap().len(), 4000);
        assert!(read_any_wav(b"not a wav").is_err());
    }

    #[test]
    fn extensible_format_with_the_pcm_subformat_is_read() {
        let mut x = b"RIFF\0\0\0\0WAVEfmt \x28\0\0\0".to_vec();
        x.extend_from_slice(&0xFFFEu16.to_le_bytes());
        x.extend_from_slice(&1u16.to_le_bytes());
        x.extend_from_slice(&8000u32.to_le_bytes());
        x.extend_from_slice(&16000u32.to_le_bytes());
        x.extend_from_slice(&[2, 0, 16, 0]);
        x.extend_from_slice(&[22, 0, 16, 0, 4, 0, 0, 0]); // cbSize, valid bits, mask
        x.extend_from_slice(&1u16.to_le_bytes()); // the PCM subformat GUID's start
        x.extend_from_slice(&[0; 14]);
        x.extend_from_slice(b"data\x04\0\0\0");
        x.extend_from_slice(&[7, 0, 0xF9, 0xFF]);
        assert_eq!(read_wav(&x).unwrap(), vec![7, -7]);
        // The same with a float subformat is refused.
        let at = 20 + 24;
        x[at] = 3;
        assert_eq!(parse(&x), Err(WavError::NotPcm16 { tag: 3, bits: 16 }));
    }
}
