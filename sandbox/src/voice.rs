//! The sandbox's voice: a tone code its clinics speak and its STT stand-in
//! hears. The sandbox has no speech recognizer, so text is sent as one pure
//! tone per character, which [`Transcriber`] decodes from the audio alone.
//! Audio that was not forwarded, is the wrong track, or arrives out of order
//! decodes to nothing or to garbage, which is what the tests of the Worker's
//! listener rely on.
//!
//! All audio is G.711 µ-law, 8 kHz, mono. Production code never uses this.

/// Samples per second.
pub const SAMPLE_RATE: u64 = 8000;
/// Samples per character: 60 ms.
pub const SYMBOL_SAMPLES: usize = 480;
/// The characters that can be spoken; the k-th is a sine of `(24 + 2k)` cycles per symbol.
pub const ALPHABET: &str = " abcdefghijklmnopqrstuvwxyz0123456789.,?!'-:;&/áéíóúñü¿¡";
/// An utterance ends once this much silence follows it: 600 ms.
pub const UTTERANCE_GAP_SAMPLES: u64 = 4800;

/// µ-law byte of digital silence.
pub const SILENCE: u8 = 0xFF;

const SPEECH_AMPLITUDE: f64 = 0.3;
const DTMF_AMPLITUDE: f64 = 0.25;
const MUSIC_AMPLITUDE: f64 = 0.1;
const FULL_SCALE: f64 = 32767.0;
/// A sample quieter than this (fraction of full scale) is silence.
const SILENT_LEVEL: f64 = 0.01;
/// A symbol quieter than this RMS carries no character.
const MIN_SYMBOL_RMS: f64 = 0.05;
/// Share of a symbol's energy its strongest alphabet tone must hold to be
/// read: a clean tone holds ~0.99 after µ-law, a DTMF pair or a chord at most ~0.6.
const MIN_TONE_SHARE: f64 = 0.8;

/// G.711 µ-law encoding of a 16-bit linear sample.
pub fn mulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let value = i32::from(sample);
    let sign = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let exponent = (31 - magnitude.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// G.711 µ-law decoding to a 16-bit linear sample.
pub fn mulaw_decode(byte: u8) -> i16 {
    const BIAS: i32 = 0x84;
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

fn encode(x: f64) -> u8 {
    mulaw_encode((x.clamp(-1.0, 1.0) * FULL_SCALE).round() as i16)
}

fn samples_for_ms(ms: u64) -> usize {
    (ms * SAMPLE_RATE / 1000) as usize
}

/// Index of `c` in [`ALPHABET`].
fn symbol_index(c: char) -> Option<usize> {
    ALPHABET.chars().position(|a| a == c)
}

/// Cycles per symbol (the Goertzel bin over 480 samples) of the k-th character.
fn symbol_bin(k: usize) -> usize {
    24 + 2 * k
}

/// The characters of `text` that are spoken: lowercased, those outside the alphabet skipped.
fn spoken(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.chars().flat_map(char::to_lowercase).filter_map(symbol_index)
}

/// `text` as it will be heard: lowercased, characters outside the alphabet dropped.
pub fn normalize(text: &str) -> String {
    spoken(text).filter_map(|k| ALPHABET.chars().nth(k)).collect()
}

/// How long `speak(text)` lasts, in ms.
pub fn speech_ms(text: &str) -> u64 {
    spoken(text).count() as u64 * SYMBOL_SAMPLES as u64 * 1000 / SAMPLE_RATE
}

/// `text` in the tone code: 60 ms per character. Each symbol is a cosine
/// sampled half a sample off its peak, so its first and last samples are
/// never near zero: an utterance's first and last non-silent samples are
/// exactly its ends, and the decoder aligns on the first.
pub fn speak(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for k in spoken(text) {
        let bin = symbol_bin(k) as f64;
        out.extend((0..SYMBOL_SAMPLES).map(|n| {
            let phase = 2.0 * std::f64::consts::PI * bin * (n as f64 + 0.5) / SYMBOL_SAMPLES as f64;
            encode(SPEECH_AMPLITUDE * phase.cos())
        }));
    }
    out
}

/// `ms` of digital silence.
pub fn silence(ms: u64) -> Vec<u8> {
    vec![SILENCE; samples_for_ms(ms)]
}

/// Sum of sines at `freqs`, each at `amplitude`, for `ms`.
fn tones(freqs: &[f64], amplitude: f64, ms: u64) -> impl Iterator<Item = u8> + '_ {
    (0..samples_for_ms(ms)).map(move |n| {
        let t = n as f64 / SAMPLE_RATE as f64;
        encode(freqs.iter().map(|f| amplitude * (2.0 * std::f64::consts::PI * f * t).sin()).sum())
    })
}

/// The row and column frequencies of a DTMF key.
pub fn dtmf_pair(key: char) -> Option<(f64, f64)> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    KEYS.iter().enumerate().find_map(|(r, row)| row.chars().position(|k| k == key).map(|c| (ROWS[r], COLS[c])))
}

/// Key tones as `<Play digits>` sends them: 100 ms per key, `w` 500 ms and
/// `W` 1 s of silence; other characters are skipped.
pub fn dtmf(digits: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for key in digits.chars() {
        match key {
            'w' => out.extend(silence(500)),
            'W' => out.extend(silence(1000)),
            _ => {
                if let Some((row, col)) = dtmf_pair(key) {
                    out.extend(tones(&[row, col], DTMF_AMPLITUDE, 100));
                }
            }
        }
    }
    out
}

/// `ms` of hold music: a loop of triads, 500 ms each. A chord never holds
/// most of a symbol's energy in one alphabet tone, so music transcribes to nothing.
pub fn music(ms: u64) -> Vec<u8> {
    const CHORD_MS: u64 = 500;
    const CHORDS: [[f64; 3]; 4] = [
        [261.63, 329.63, 392.00], // C
        [220.00, 261.63, 329.63], // Am
        [174.61, 220.00, 261.63], // F
        [196.00, 246.94, 293.66], // G
    ];
    let mut out = Vec::with_capacity(samples_for_ms(ms));
    let mut left = ms;
    for chord in CHORDS.iter().cycle() {
        if left == 0 {
            break;
        }
        let len = left.min(CHORD_MS);
        out.extend(tones(chord, MUSIC_AMPLITUDE, len));
        left -= len;
    }
    out
}

/// One stretch of sound followed by at least 600 ms of silence (or the end),
/// with the text decoded from it. Samples count from the first byte pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// The first non-silent sample.
    pub start_sample: u64,
    /// One past the last non-silent sample.
    pub end_sample: u64,
    pub text: String,
    /// The first sample of each character of `text` (each lasts 480 samples).
    pub char_starts: Vec<u64>,
}

/// Streaming decoder of the tone code. Symbols are 480-sample windows aligned
/// on an utterance's first non-silent sample, and again after any whole
/// symbol of silence (so speech that follows other sound needs a 60 ms pause
/// to be read); each is read with the Goertzel algorithm at every alphabet
/// tone and decodes to a character only if one tone clearly dominates it.
#[derive(Debug, Clone, Default)]
pub struct Transcriber {
    /// Samples pushed so far.
    position: u64,
    current: Option<InProgress>,
}

#[derive(Debug, Clone)]
struct InProgress {
    start_sample: u64,
    last_loud: u64,
    /// Silent samples since the last loud one.
    silent_run: u64,
    symbol: Vec<f64>,
    /// First sample of the window being filled.
    symbol_start: u64,
    text: String,
    char_starts: Vec<u64>,
}

impl Transcriber {
    pub fn new() -> Transcriber {
        Transcriber::default()
    }

    /// Samples received so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The first sample of the utterance under way, once it has produced text.
    pub fn speaking_since(&self) -> Option<u64> {
        self.current.as_ref().filter(|c| !c.text.is_empty()).map(|c| c.start_sample)
    }

    /// Decodes `mulaw`; returns the utterances it completed, with text.
    pub fn push(&mut self, mulaw: &[u8]) -> Vec<Utterance> {
        let mut done = Vec::new();
        for &byte in mulaw {
            let x = f64::from(mulaw_decode(byte)) / FULL_SCALE;
            let loud = x.abs() > SILENT_LEVEL;
            let at = self.position;
            self.position += 1;
            let current = match (&mut self.current, loud) {
                (None, false) => continue,
                (None, true) => self.current.insert(InProgress {
                    start_sample: at,
                    last_loud: at,
                    silent_run: 0,
                    symbol: Vec::with_capacity(SYMBOL_SAMPLES),
                    symbol_start: at,
                    text: String::new(),
                    char_starts: Vec::new(),
                }),
                (Some(c), _) => c,
            };
            if loud {
                // After a whole symbol of silence the partial window holds only
                // silence: realign on this sample.
                if current.silent_run >= SYMBOL_SAMPLES as u64 {
                    current.symbol.clear();
                }
                current.last_loud = at;
                current.silent_run = 0;
            } else {
                current.silent_run += 1;
            }
            if current.symbol.is_empty() {
                current.symbol_start = at;
            }
            current.symbol.push(x);
            if current.symbol.len() == SYMBOL_SAMPLES {
                current.read();
            }
            if current.silent_run >= UTTERANCE_GAP_SAMPLES {
                done.extend(self.current.take().and_then(InProgress::finish));
            }
        }
        done
    }

    /// Ends the utterance under way (the audio stopped): reads its last,
    /// partial symbol as if padded with silence.
    pub fn finish(&mut self) -> Option<Utterance> {
        let mut current = self.current.take()?;
        if current.symbol.len() as u64 > current.silent_run {
            current.symbol.resize(SYMBOL_SAMPLES, 0.0);
            current.read();
        }
        current.finish()
    }
}

impl InProgress {
    /// Reads the full window and starts the next.
    fn read(&mut self) {
        if let Some(c) = read_symbol(&self.symbol) {
            self.text.push(c);
            self.char_starts.push(self.symbol_start);
        }
        self.symbol.clear();
    }

    fn finish(self) -> Option<Utterance> {
        (!self.text.is_empty()).then(|| Utterance {
            start_sample: self.start_sample,
            end_sample: self.last_loud + 1,
            text: self.text,
            char_starts: self.char_starts,
        })
    }
}

/// Power of `samples` at `bin` cycles per window (Goertzel).
fn goertzel(samples: &[f64], bin: usize) -> f64 {
    let w = 2.0 * std::f64::consts::PI * bin as f64 / samples.len() as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The character one symbol carries, if a single alphabet tone holds most of its energy.
fn read_symbol(samples: &[f64]) -> Option<char> {
    let n = samples.len() as f64;
    let energy: f64 = samples.iter().map(|x| x * x).sum();
    if energy / n < MIN_SYMBOL_RMS * MIN_SYMBOL_RMS {
        return None;
    }
    // A tone of exactly `bin` cycles has |X|² = (A·N/2)² and energy A²·N/2:
    // its share 2|X|²/(N·energy) is 1.
    let (k, power) = (0..ALPHABET.chars().count())
        .map(|k| (k, goertzel(samples, symbol_bin(k))))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let share = 2.0 * power / (n * energy);
    if share >= MIN_TONE_SHARE {
        ALPHABET.chars().nth(k)
    } else {
        None
    }
}

/// Transcribes a whole recording: every utterance, the last flushed.
pub fn transcribe(mulaw: &[u8]) -> Vec<Utterance> {
    let mut t = Transcriber::new();
    let mut all = t.push(mulaw);
    all.extend(t.finish());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(audio: &[u8]) -> Vec<String> {
        transcribe(audio).into_iter().map(|u| u.text).collect()
    }

    #[test]
    fn alphabet_fits_below_nyquist() {
        let count = ALPHABET.chars().count();
        assert_eq!(count, 56);
        let top_hz = symbol_bin(count - 1) as f64 * SAMPLE_RATE as f64 / SYMBOL_SAMPLES as f64;
        assert!(top_hz < 3400.0, "{top_hz}");
    }

    #[test]
    fn mulaw_matches_g711() {
        assert_eq!(mulaw_encode(0), 0xFF);
        assert_eq!(mulaw_decode(0xFF), 0);
        assert_eq!(mulaw_decode(0x7F), 0);
        assert_eq!(mulaw_encode(i16::MAX), 0x80);
        assert_eq!(mulaw_encode(i16::MIN), 0x00);
        assert_eq!(mulaw_decode(0x80), 32124);
        assert_eq!(mulaw_decode(0x00), -32124);
        // Every code decodes to a value that encodes back to it (both zeros to 0xFF).
        for byte in 0..=255u8 {
            let back = mulaw_encode(mulaw_decode(byte));
            assert!(back == byte || (byte == 0x7F && back == 0xFF), "{byte:#x} -> {back:#x}");
        }
        // Quantization error grows with the segment, staying under 1/16 of the value.
        for x in [100i16, 1000, 5000, 20000, -20000] {
            let y = mulaw_decode(mulaw_encode(x));
            assert!((i32::from(x) - i32::from(y)).abs() <= i32::from(x).abs() / 16 + 4, "{x} -> {y}");
        }
    }

    #[test]
    fn sentences_round_trip() {
        for sentence in [
            "Thank you for calling North Clinic. For appointments, press 1; for billing, press 2.",
            "Please leave a message after the tone!",
            "Para español, oprima el dos. ¿Cómo está? ¡Adiós, señor Núñez! Pingüino, qué tal",
            "Hours: 9-5, mon/fri & sat; it's 10:30",
        ] {
            let audio = speak(sentence);
            assert_eq!(audio.len(), normalize(sentence).chars().count() * SYMBOL_SAMPLES);
            assert_eq!(texts(&audio), [sentence.to_lowercase()]);
        }
        // Characters outside the alphabet are not spoken.
        assert_eq!(normalize("Call #5 (now) — ok"), "call 5 now  ok");
        assert_eq!(texts(&speak("Call #5 (now) — ok")), ["call 5 now  ok"]);
        assert_eq!(speech_ms("abc"), 180);
    }

    #[test]
    fn utterance_times_are_exact_samples() {
        let mut audio = silence(1000);
        audio.extend(speak("hello"));
        audio.extend(silence(700));
        audio.extend(speak("for billing press 2"));
        audio.extend(silence(250)); // less than a gap: the same utterance
        audio.extend(speak("bye"));
        audio.extend(silence(601));
        audio.extend(speak("x"));
        let mut t = Transcriber::new();
        let mut got = Vec::new();
        // Pushed in 20 ms frames, as a stream.
        for frame in audio.chunks(160) {
            got.extend(t.push(frame));
        }
        assert_eq!(t.position(), audio.len() as u64);
        assert_eq!(t.speaking_since(), Some(8000 + 2400 + 5600 + 19 * 480 + 2000 + 3 * 480 + 4808));
        got.extend(t.finish());
        let second = 8000 + 2400 + 5600;
        let third = second + 19 * 480 + 2000 + 3 * 480 + 4808;
        let starts = |from: u64, n: u64| (0..n).map(move |i| from + i * 480);
        assert_eq!(
            got,
            [
                Utterance {
                    start_sample: 8000,
                    end_sample: 8000 + 2400,
                    text: "hello".into(),
                    char_starts: starts(8000, 5).collect()
                },
                // A gap of 250 ms is not a symbol multiple: the decoder realigns on the next tone.
                Utterance {
                    start_sample: second,
                    end_sample: third - 4808,
                    text: "for billing press 2bye".into(),
                    char_starts: starts(second, 19).chain(starts(second + 19 * 480 + 2000, 3)).collect()
                },
                Utterance { start_sample: third, end_sample: third + 480, text: "x".into(), char_starts: vec![third] },
            ]
        );
        // Emitted once 600 ms of silence followed, not before.
        let mut t = Transcriber::new();
        assert!(t.push(&speak("hi")).is_empty());
        assert!(t.push(&silence(599)).is_empty());
        assert_eq!(t.push(&silence(1)).len(), 1);
        assert_eq!(t.finish(), None);
    }

    #[test]
    fn reordered_frames_are_garbled() {
        let sentence = "thank you for calling, for appointments press 1";
        let audio = speak(sentence);
        let frames: Vec<&[u8]> = audio.chunks(160).collect();
        // Swapping neighbouring 20 ms frames.
        let swapped: Vec<u8> =
            frames.chunks(2).flat_map(|pair| pair.iter().rev().flat_map(|f| f.iter().copied())).collect();
        // A fixed shuffle (multiplicative permutation of the frame indices).
        let n = frames.len();
        let shuffled: Vec<u8> = (0..n).flat_map(|i| frames[(i * 7 + 3) % n].iter().copied()).collect();
        assert!(!n.is_multiple_of(7), "7 must be coprime with {n}");
        for garbled in [swapped, shuffled] {
            let heard = texts(&garbled).join(" ");
            assert_ne!(heard, sentence);
            assert!(heard.len() < sentence.len() / 2, "{heard:?}");
        }
    }

    #[test]
    fn tones_music_noise_and_silence_say_nothing() {
        assert!(texts(&dtmf("123A456B789C*0#D")).is_empty());
        assert!(texts(&dtmf("1w2W3")).is_empty());
        assert!(texts(&music(10_000)).is_empty());
        assert!(texts(&silence(3000)).is_empty());
        // Deterministic noise.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..16_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 56) as u8
            })
            .collect();
        assert!(texts(&noise).is_empty());
        // The words around them still come through.
        let mut audio = music(2000);
        audio.extend(silence(100));
        audio.extend(speak("hi"));
        audio.extend(silence(1000));
        audio.extend(dtmf("12"));
        audio.extend(silence(1000));
        assert_eq!(texts(&audio), ["hi"]);
    }

    #[test]
    fn durations() {
        assert_eq!(silence(20).len(), 160);
        assert_eq!(dtmf("1w2W#").len(), 8 * (100 + 500 + 100 + 1000 + 100));
        assert_eq!(dtmf_pair('5'), Some((770.0, 1336.0)));
        assert_eq!(dtmf_pair('x'), None);
        assert_eq!(music(1250).len(), 10_000);
    }
}
