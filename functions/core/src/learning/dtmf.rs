//! The keys pressed into a call, heard as DTMF tones on the stream's outbound track.
//!
//! Keys are learned from the tones rather than from VAPI's tool calls: the tones are on the same audio clock as
//! the prompts (VAPI's `secondsFromStart` counts from its own conversation), and they cover a replay's
//! `<Play digits>` too. A Goertzel filter per DTMF frequency runs over 20 ms blocks; a block holds a key when
//! one row and one column tone carry most of its energy, within a twist limit, and a key is reported once
//! it has lasted two blocks (40 ms), so speech-like single tones and glitches never press anything.

use std::collections::VecDeque;

const SAMPLE_RATE: f32 = 8000.0;
/// Samples per analysis block: 20 ms, one Twilio frame.
const BLOCK: usize = 160;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];
/// Each tone's mean power must reach this (an amplitude of ~400 of 32,767, about -38 dBFS).
const MIN_TONE_POWER: f32 = 400.0 * 400.0 / 2.0;
/// The two tones must carry this share of the block's energy (noise and speech spread theirs).
const MIN_TONE_SHARE: f32 = 0.7;
/// The strongest row (column) must exceed the others by this power ratio (~6 dB).
const MIN_PEAK_RATIO: f32 = 4.0;
/// Row and column powers may differ by this ratio at most (8 dB of twist either way).
const MAX_TWIST: f32 = 6.3;
/// Blocks a key must last before it counts.
const MIN_BLOCKS: u8 = 2;

/// One key press, at its onset on the audio clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPress {
    pub at_ms: u64,
    pub key: char,
}

/// G.711 µ-law to 16-bit linear PCM.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    // At most 32,124: always fits.
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// A streaming detector for one track.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    block: Vec<f32>,
    /// The audio-clock time of the block's first sample.
    block_start_ms: u64,
    /// Where the next frame should start if it continues the block.
    next_ms: u64,
    /// The key seen in the last blocks, its onset and for how many blocks.
    candidate: Option<(char, u64, u8)>,
    /// The key already reported and still held.
    held: Option<char>,
    ready: VecDeque<KeyPress>,
}

impl DtmfDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one frame of µ-law starting at `timestamp_ms`; returns a key press whose onset was found. Frames
    /// should come in order; a frame that does not continue the previous one starts a new block.
    pub fn push(&mut self, timestamp_ms: u64, frame: &[u8]) -> Option<KeyPress> {
        if timestamp_ms != self.next_ms || self.block.is_empty() {
            self.block.clear();
            self.block_start_ms = timestamp_ms;
        }
        for (i, byte) in frame.iter().enumerate() {
            if self.block.is_empty() {
                self.block_start_ms = timestamp_ms.saturating_add(i as u64 / 8);
            }
            self.block.push(f32::from(ulaw_to_linear(*byte)));
            if self.block.len() == BLOCK {
                let key = block_key(&self.block);
                self.block.clear();
                self.step(key, self.block_start_ms);
            }
        }
        self.next_ms = timestamp_ms.saturating_add(frame.len() as u64 / 8);
        self.ready.pop_front()
    }

    fn step(&mut self, key: Option<char>, block_ms: u64) {
        let Some(key) = key else {
            self.candidate = None;
            self.held = None;
            return;
        };
        if self.held == Some(key) {
            return;
        }
        self.held = None;
        let (onset, blocks) = match self.candidate {
            Some((k, onset, n)) if k == key => (onset, n.saturating_add(1)),
            _ => (block_ms, 1),
        };
        self.candidate = Some((key, onset, blocks));
        if blocks >= MIN_BLOCKS {
            self.ready.push_back(KeyPress { at_ms: onset, key });
            self.held = Some(key);
            self.candidate = None;
        }
    }
}

/// Mean power of the tone at `freq` in `samples` (Goertzel), in the units of the samples' mean square.
fn tone_power(samples: &[f32], freq: f32) -> f32 {
    let coefficient = 2.0 * (2.0 * std::f32::consts::PI * freq / SAMPLE_RATE).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for x in samples {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = samples.len() as f32;
    2.0 * (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (n * n)
}

/// The index and power of the strongest of `freqs`, if it stands out from the others.
fn peak(samples: &[f32], freqs: &[f32; 4]) -> Option<(usize, f32)> {
    let powers = freqs.map(|f| tone_power(samples, f));
    let (index, best) = powers.iter().copied().enumerate().fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let distinct = powers.iter().enumerate().all(|(i, p)| i == index || best >= MIN_PEAK_RATIO * p);
    (best >= MIN_TONE_POWER && distinct).then_some((index, best))
}

/// The key a block holds, if any.
fn block_key(samples: &[f32]) -> Option<char> {
    let (row, row_power) = peak(samples, &ROWS)?;
    let (column, column_power) = peak(samples, &COLUMNS)?;
    let energy = samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32;
    let twist_ok = row_power <= MAX_TWIST * column_power && column_power <= MAX_TWIST * row_power;
    (twist_ok && row_power + column_power >= MIN_TONE_SHARE * energy).then(|| KEYS[row][column])
}

/// Test-only audio: sines to µ-law, for this detector's tests and the listener's.
#[cfg(test)]
pub(crate) mod synth {
    use super::*;

    pub fn linear_to_ulaw(sample: i16) -> u8 {
        let mut s = i32::from(sample);
        let sign = if s < 0 {
            s = -s;
            0x80
        } else {
            0
        };
        s = s.min(32_635) + 0x84;
        let exponent = (31 - (s as u32).leading_zeros() as i32 - 7).clamp(0, 7);
        let mantissa = (s >> (exponent + 3)) & 0x0F;
        !((sign | (exponent << 4) | mantissa) as u8)
    }

    /// `ms` of the sum of sines (frequency, amplitude as a share of full scale), from sample `offset`.
    pub fn tones(tones: &[(f32, f32)], ms: u64) -> Vec<u8> {
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE;
                let v: f32 = tones.iter().map(|(f, a)| a * 32_767.0 * (2.0 * std::f32::consts::PI * f * t).sin()).sum();
                linear_to_ulaw(v.clamp(-32_767.0, 32_767.0) as i16)
            })
            .collect()
    }

    pub fn key(key: char, ms: u64) -> Vec<u8> {
        let (r, c) = (0..16).map(|i| (i / 4, i % 4)).find(|(r, c)| KEYS[*r][*c] == key).unwrap();
        tones(&[(ROWS[r], 0.25), (COLUMNS[c], 0.25)], ms)
    }

    pub fn silence(ms: u64) -> Vec<u8> {
        vec![0xFF; (ms * 8) as usize]
    }

    /// Deterministic white-ish noise (xorshift), `amplitude` as a share of full scale.
    pub fn noise(ms: u64, amplitude: f32, seed: u32) -> Vec<u8> {
        let mut x = seed.max(1);
        (0..ms * 8)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let v = (x as f32 / u32::MAX as f32 * 2.0 - 1.0) * amplitude * 32_767.0;
                linear_to_ulaw(v as i16)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::synth::*;
    use super::*;

    /// Feeds `audio` in 160-byte frames from `start_ms` and collects the presses.
    fn detect(audio: &[u8], start_ms: u64) -> Vec<KeyPress> {
        let mut d = DtmfDetector::new();
        let mut out = Vec::new();
        for (i, frame) in audio.chunks(160).enumerate() {
            out.extend(d.push(start_ms + i as u64 * 20, frame));
        }
        out
    }

    fn keys(presses: &[KeyPress]) -> String {
        presses.iter().map(|p| p.key).collect()
    }

    #[test]
    fn mulaw_decodes_the_standard_points() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        for s in [-30_000i16, -1000, -5, 0, 7, 1000, 30_000] {
            let back = ulaw_to_linear(linear_to_ulaw(s));
            assert!((i32::from(back) - i32::from(s)).abs() <= i32::from(s).abs() / 16 + 8, "{s} -> {back}");
        }
    }

    #[test]
    fn every_key_is_heard_once_at_its_onset() {
        for key in "0123456789*#ABCD".chars() {
            let mut audio = silence(200);
            audio.extend(key_tone(key));
            audio.extend(silence(200));
            let presses = detect(&audio, 1000);
            assert_eq!(keys(&presses), key.to_string());
            assert!((1200..=1220).contains(&presses[0].at_ms), "{key} at {}", presses[0].at_ms);
        }
    }

    fn key_tone(k: char) -> Vec<u8> {
        key(k, 100)
    }

    #[test]
    fn presses_apart_by_40_ms_are_two_keys_wherever_the_frames_fall() {
        for lead in [0u64, 3, 7, 10, 13, 17] {
            let mut audio = silence(lead);
            audio.extend(key('5', 100));
            audio.extend(silence(40));
            audio.extend(key('5', 100));
            audio.extend(silence(40));
            audio.extend(key('9', 60));
            audio.extend(silence(100));
            assert_eq!(keys(&detect(&audio, 0)), "559", "lead {lead} ms");
        }
    }

    #[test]
    fn a_long_press_is_one_key() {
        let mut audio = key('#', 1500);
        audio.extend(silence(100));
        assert_eq!(keys(&detect(&audio, 0)), "#");
    }

    #[test]
    fn single_tones_silence_and_noise_press_nothing() {
        for f in [350.0, 440.0, 697.0, 700.0, 941.0, 1209.0, 1336.0, 1633.0, 2000.0] {
            assert!(detect(&tones(&[(f, 0.4)], 500), 0).is_empty(), "{f} Hz");
        }
        // The sandbox's voice: one sine per 60 ms character, some near DTMF rows and columns.
        let mut speechlike = Vec::new();
        for f in [700.0, 1333.3, 766.7, 1200.0, 933.3, 1466.7, 850.0, 1633.3] {
            speechlike.extend(tones(&[(f, 0.3)], 60));
        }
        assert!(detect(&speechlike, 0).is_empty());
        // A chord that is not a DTMF pair, and a row tone drowned in noise.
        assert!(detect(&tones(&[(500.0, 0.25), (1100.0, 0.25)], 300), 0).is_empty());
        let noisy: Vec<u8> = tones(&[(697.0, 0.05), (1209.0, 0.05)], 300)
            .iter()
            .zip(noise(300, 0.3, 7))
            .map(|(a, b)| linear_to_ulaw(ulaw_to_linear(*a).saturating_add(ulaw_to_linear(b))))
            .collect();
        assert!(detect(&noisy, 0).is_empty());
        assert!(detect(&silence(1000), 0).is_empty());
        assert!(detect(&noise(1000, 0.5, 42), 0).is_empty());
    }

    #[test]
    fn a_key_through_moderate_noise_is_still_heard() {
        let noisy: Vec<u8> = key('7', 100)
            .iter()
            .zip(noise(100, 0.03, 9))
            .map(|(a, b)| linear_to_ulaw(ulaw_to_linear(*a).saturating_add(ulaw_to_linear(b))))
            .collect();
        assert_eq!(keys(&detect(&noisy, 0)), "7");
    }

    #[test]
    fn frames_of_any_size_and_gaps_are_safe() {
        let mut d = DtmfDetector::new();
        let audio = key('3', 100);
        let mut found = Vec::new();
        for (i, frame) in audio.chunks(37).enumerate() {
            found.extend(d.push(i as u64 * 37 / 8, frame));
        }
        // 37-byte frames do not land on whole ms; the block restarts but never panics.
        assert!(found.len() <= 1);
        assert_eq!(d.push(5000, &[]), None);
        assert_eq!(d.push(u64::MAX - 1, &[0xFF; 160]), None);
    }
}
