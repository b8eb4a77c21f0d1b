//! Music on hold: what a caller on hold hears from the box. A WAV uploaded on the Phone
//! Routing page wins, then the file named by `phone.music_on_hold`, then a tune built in
//! (a music-box arpeggio, so a caller can tell they are still connected). A WAV of any
//! rate or channel count is resampled to 8 kHz mono; one that cannot be read is logged
//! and the next in line plays instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use officebox_store::wav;
use tracing::warn;

use crate::media::RATE;

/// Where the music comes from, for the calls of one config.
#[derive(Debug, Clone)]
pub struct Source {
    pub data_dir: PathBuf,
    /// `phone.music_on_hold`'s file (relative to the data directory unless absolute);
    /// `None`: the built-in tune.
    pub file: Option<PathBuf>,
}

impl Source {
    /// The samples to play (blocking: reads a file).
    pub fn samples(&self) -> Arc<Vec<i16>> {
        let uploaded = officebox_store::music_on_hold_path(&self.data_dir);
        let configured = self.file.as_ref().map(|f| {
            if f.is_absolute() {
                f.clone()
            } else {
                self.data_dir.join(f)
            }
        });
        for path in [Some(uploaded.clone()), configured].into_iter().flatten() {
            match read(&path) {
                Ok(samples) => return Arc::new(samples),
                // No upload is the usual case: nothing to say.
                Err(_) if path == uploaded && !path.exists() => {}
                Err(error) => {
                    warn!(message = "phone: music on hold unreadable, playing the next", path = %path.display(), %error);
                }
            }
        }
        tune()
    }
}

/// A WAV file's samples at 8 kHz (none: an error).
fn read(path: &Path) -> Result<Vec<i16>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let samples = wav::read_any_wav(&bytes).map_err(|e| e.to_string())?;
    if samples.is_empty() {
        return Err("no audio in it".into());
    }
    Ok(samples)
}

/// The built-in tune, made once.
pub fn tune() -> Arc<Vec<i16>> {
    static TUNE: std::sync::OnceLock<Arc<Vec<i16>>> = std::sync::OnceLock::new();
    Arc::clone(TUNE.get_or_init(|| Arc::new(built_in())))
}

/// The built-in tune: a music-box arpeggio over C, F, G and C major, a quarter second a
/// note, each struck and fading (with its octave, softer), 6 seconds a round.
pub fn built_in() -> Vec<i16> {
    const NOTES: [f64; 24] = [
        261.63, 329.63, 392.00, 523.25, 392.00, 329.63, // C
        349.23, 440.00, 523.25, 698.46, 523.25, 440.00, // F
        392.00, 493.88, 587.33, 783.99, 587.33, 493.88, // G
        261.63, 329.63, 392.00, 523.25, 392.00, 0.0, // C, and a rest
    ];
    let rate = f64::from(RATE);
    let per_note = RATE as usize / 4;
    let tau = 2.0 * std::f64::consts::PI;
    NOTES
        .iter()
        .flat_map(|&f| {
            (0..per_note).map(move |i| {
                if f == 0.0 {
                    return 0;
                }
                let t = i as f64 / rate;
                let tone = (tau * f * t).sin() * (-6.0 * t).exp()
                    + 0.3 * (tau * 2.0 * f * t).sin() * (-9.0 * t).exp();
                (5000.0 * tone) as i16
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_tune_is_six_seconds_of_audible_notes_within_range() {
        let tune = built_in();
        assert_eq!(tune.len(), 6 * RATE as usize);
        let loud = tune.iter().filter(|s| s.unsigned_abs() > 1000).count();
        assert!(loud > tune.len() / 10, "{loud}");
        assert!(tune.iter().all(|s| s.unsigned_abs() < 7000));
    }

    #[test]
    fn an_upload_wins_then_the_file_then_the_tune_and_a_bad_file_is_passed_over() {
        let dir = std::env::temp_dir().join(format!("obx-music-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("configured.wav");
        std::fs::write(&file, wav::to_bytes(16_000, &[1000; 1600])).unwrap();
        let source = Source {
            data_dir: dir.clone(),
            file: Some(PathBuf::from("configured.wav")),
        };
        // The configured file, resampled from 16 kHz.
        assert_eq!(source.samples().len(), 800);
        let uploaded = officebox_store::music_on_hold_path(&dir);
        std::fs::create_dir_all(uploaded.parent().unwrap()).unwrap();
        std::fs::write(&uploaded, wav::to_bytes(8000, &[500; 80])).unwrap();
        assert_eq!(source.samples().len(), 80);
        // A broken upload and no file: the tune.
        std::fs::write(&uploaded, b"not a wav").unwrap();
        let source = Source {
            data_dir: dir.clone(),
            file: None,
        };
        assert_eq!(source.samples().len(), built_in().len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
