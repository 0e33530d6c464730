//! Blob content as zstd frames, written while the content streams past and handed on in
//! chunks (to the uploader, [`super::transfer`]): nothing is held whole, nothing goes to a
//! temporary file.
//!
//! Each [`SEGMENT`] of content is one frame (docs/format.md allows a blob to be several
//! frames). Before a frame is written, its first block ([`BLOCK`], zstd's largest) is
//! compressed as a sample: when the sample shrinks, the frame is compressed at the blob's
//! level; when it does not (random data, media, already-compressed archives), the frame is
//! written as zstd *raw blocks*, which costs a copy and an XXH64 instead of a compressor
//! pass. Either way it is a standard zstd frame with its content checksum, which every
//! zstd reader (flowpack's of any version included) decodes; the blob stays named by the
//! SHA-256 of its content. A frame per segment keeps the decision local (a tar of text and
//! images is compressed where it pays), and at the fast levels flowpack uses (window of at
//! most 512 KiB at level 1) splitting at 8 MiB costs no measurable ratio.

use std::io;

use bytes::Bytes;
use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::CParameter;

/// Content bytes per frame.
pub const SEGMENT: usize = 8 << 20;
/// zstd's largest block, and the sample a frame's mode is chosen from.
pub const BLOCK: usize = 128 << 10;
/// Output is handed on in chunks of about this size.
pub const CHUNK: usize = 512 << 10;
/// A sample that compresses to more than this fraction (31/32) of its size is not worth
/// compressing: its frame is written raw.
const KEEP_NUM: usize = 31;
const KEEP_DEN: usize = 32;

/// zstd's frame magic number, little-endian.
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Frame header descriptor: no content size, not single-segment, content checksum, no
/// dictionary.
const FHD_CHECKSUM: u8 = 0b0000_0100;
/// Window descriptor: 2^(10 + 7) = 128 KiB, enough for raw blocks of [`BLOCK`].
const WINDOW_128K: u8 = 7 << 3;

enum Mode {
    /// Collecting the first block of a frame.
    Sampling,
    /// Writing raw blocks: the open block's header is at `header` in the output.
    Raw { hash: Xxh64, header: usize },
    /// Feeding the compressor.
    Zstd,
}

/// A writer of blob content that emits zstd frames in chunks of about [`CHUNK`] bytes
/// through `emit`. Call [`FrameWriter::finish`] at the end.
pub struct FrameWriter<E: FnMut(Bytes) -> io::Result<()>> {
    emit: E,
    level: i32,
    mode: Mode,
    /// Content bytes left in the current frame.
    left: usize,
    sample: Vec<u8>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    encoder: Option<Encoder<'static>>,
    /// Compressed bytes emitted.
    emitted: u64,
    /// Whether any frame was started (an empty blob is one empty raw frame).
    started: bool,
}

impl<E: FnMut(Bytes) -> io::Result<()>> FrameWriter<E> {
    /// A writer compressing at zstd `level` where it pays.
    pub fn new(level: i32, emit: E) -> Self {
        Self {
            emit,
            level,
            mode: Mode::Sampling,
            left: SEGMENT,
            sample: Vec::with_capacity(BLOCK),
            scratch: Vec::new(),
            out: Vec::with_capacity(CHUNK + BLOCK + 64),
            encoder: None,
            emitted: 0,
            started: false,
        }
    }

    /// Ends the last frame and emits what is left; returns the compressed size.
    pub fn finish(mut self) -> io::Result<u64> {
        if matches!(self.mode, Mode::Sampling) && (!self.sample.is_empty() || !self.started) {
            self.choose()?;
        }
        if !matches!(self.mode, Mode::Sampling) {
            self.end_frame()?;
        }
        self.flush_out()?;
        Ok(self.emitted)
    }

    /// Compresses the sample; starts the frame in the mode it calls for, with the sample.
    fn choose(&mut self) -> io::Result<()> {
        self.started = true;
        let sample = std::mem::take(&mut self.sample);
        let compresses = !sample.is_empty() && {
            self.scratch
                .resize(zstd::zstd_safe::compress_bound(sample.len()), 0);
            let n = zstd::bulk::compress_to_buffer(&sample, &mut self.scratch, self.level)?;
            n * KEEP_DEN < sample.len() * KEEP_NUM
        };
        if compresses {
            match &mut self.encoder {
                Some(enc) => enc.reinit()?,
                None => {
                    let mut enc = Encoder::new(self.level)?;
                    enc.set_parameter(CParameter::ChecksumFlag(true))?;
                    self.encoder = Some(enc);
                }
            }
            self.mode = Mode::Zstd;
            self.compress(&sample)?;
        } else {
            self.out.extend_from_slice(&MAGIC);
            self.out.extend_from_slice(&[FHD_CHECKSUM, WINDOW_128K]);
            let header = self.out.len();
            self.out.extend_from_slice(&[0; 3]);
            self.mode = Mode::Raw {
                hash: Xxh64::new(),
                header,
            };
            self.raw(&sample)?;
        }
        self.sample = sample;
        self.sample.clear();
        Ok(())
    }

    fn compress(&mut self, mut input: &[u8]) -> io::Result<()> {
        while !input.is_empty() {
            let mut src = InBuffer::around(input);
            self.out.reserve(BLOCK);
            let pos = self.out.len();
            let enc = self
                .encoder
                .as_mut()
                .expect("compressing mode has an encoder");
            let mut dst = OutBuffer::around_pos(&mut self.out, pos);
            enc.run(&mut src, &mut dst)?;
            input = &input[src.pos..];
            if self.out.len() >= CHUNK {
                self.flush_out()?;
            }
        }
        Ok(())
    }

    /// Appends content to the open raw block, closing full blocks as more arrives; output is
    /// handed on at block boundaries, so an open block never has to be carried over.
    fn raw(&mut self, mut input: &[u8]) -> io::Result<()> {
        let Mode::Raw { hash, .. } = &mut self.mode else {
            unreachable!("raw mode")
        };
        hash.update(input);
        while !input.is_empty() {
            let header = self.raw_header();
            let in_block = self.out.len() - header - 3;
            if in_block == BLOCK {
                write_block_header(&mut self.out, header, BLOCK, false);
                let next = self.out.len();
                self.out.extend_from_slice(&[0; 3]);
                if let Mode::Raw { header, .. } = &mut self.mode {
                    *header = next;
                }
                if self.out.len() >= CHUNK {
                    self.flush_out()?;
                }
                continue;
            }
            let n = input.len().min(BLOCK - in_block);
            self.out.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        Ok(())
    }

    fn raw_header(&self) -> usize {
        match self.mode {
            Mode::Raw { header, .. } => header,
            _ => unreachable!("raw mode"),
        }
    }

    fn end_frame(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.mode, Mode::Sampling) {
            Mode::Sampling => {}
            Mode::Raw { hash, header } => {
                let len = self.out.len() - header - 3;
                write_block_header(&mut self.out, header, len, true);
                let sum = hash.digest() as u32;
                self.out.extend_from_slice(&sum.to_le_bytes());
            }
            Mode::Zstd => {
                let enc = self
                    .encoder
                    .as_mut()
                    .expect("compressing mode has an encoder");
                loop {
                    self.out.reserve(BLOCK);
                    let pos = self.out.len();
                    let mut dst = OutBuffer::around_pos(&mut self.out, pos);
                    let left = enc.finish(&mut dst, true)?;
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        self.left = SEGMENT;
        Ok(())
    }

    /// Emits the output buffered so far, but an open raw block (its header is not final).
    fn flush_out(&mut self) -> io::Result<()> {
        let keep_from = match &mut self.mode {
            Mode::Raw { header, .. } => *header,
            _ => self.out.len(),
        };
        if keep_from == 0 {
            return Ok(());
        }
        let mut next = Vec::with_capacity(CHUNK + BLOCK + 64);
        next.extend_from_slice(&self.out[keep_from..]);
        self.out.truncate(keep_from);
        let chunk = std::mem::replace(&mut self.out, next);
        if let Mode::Raw { header, .. } = &mut self.mode {
            *header = 0;
        }
        self.emitted += chunk.len() as u64;
        (self.emit)(Bytes::from(chunk))
    }
}

impl<E: FnMut(Bytes) -> io::Result<()>> io::Write for FrameWriter<E> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.left == 0 {
                self.end_frame()?;
            }
            // At most a chunk at a time: the output buffer stays about a chunk.
            let n = rest.len().min(self.left).min(CHUNK);
            let (now, later) = rest.split_at(n);
            match self.mode {
                Mode::Sampling => {
                    let take = now.len().min(BLOCK - self.sample.len());
                    self.sample.extend_from_slice(&now[..take]);
                    self.left -= take;
                    rest = &rest[take..];
                    if self.sample.len() == BLOCK || self.left == 0 {
                        self.choose()?;
                    }
                    continue;
                }
                Mode::Raw { .. } => self.raw(now)?,
                Mode::Zstd => self.compress(now)?,
            }
            self.left -= n;
            rest = later;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn write_block_header(out: &mut [u8], at: usize, len: usize, last: bool) {
    // Block_Type 0 (raw) in bits 1-2; Last_Block in bit 0; Block_Size in bits 3-23.
    let h = ((len as u32) << 3) | u32::from(last);
    out[at..at + 3].copy_from_slice(&h.to_le_bytes()[..3]);
}

/// XXH64 with seed 0, streaming: the content checksum of a zstd frame is its low 32 bits.
pub struct Xxh64 {
    v: [u64; 4],
    buf: [u8; 32],
    buffered: usize,
    total: u64,
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn u64_at(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

impl Default for Xxh64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Xxh64 {
    /// A fresh hash (seed 0).
    pub fn new() -> Self {
        Self {
            v: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            buf: [0; 32],
            buffered: 0,
            total: 0,
        }
    }

    fn stripe(v: &mut [u64; 4], s: &[u8]) {
        v[0] = round(v[0], u64_at(&s[0..]));
        v[1] = round(v[1], u64_at(&s[8..]));
        v[2] = round(v[2], u64_at(&s[16..]));
        v[3] = round(v[3], u64_at(&s[24..]));
    }

    /// Feeds `input`.
    pub fn update(&mut self, mut input: &[u8]) {
        self.total += input.len() as u64;
        if self.buffered > 0 {
            let n = input.len().min(32 - self.buffered);
            self.buf[self.buffered..self.buffered + n].copy_from_slice(&input[..n]);
            self.buffered += n;
            input = &input[n..];
            if self.buffered < 32 {
                return;
            }
            let buf = self.buf;
            Self::stripe(&mut self.v, &buf);
            self.buffered = 0;
        }
        let mut stripes = input.chunks_exact(32);
        for s in &mut stripes {
            Self::stripe(&mut self.v, s);
        }
        let rest = stripes.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    /// The hash of everything fed.
    pub fn digest(&self) -> u64 {
        let v = self.v;
        let mut h = if self.total >= 32 {
            let mut h = v[0]
                .rotate_left(1)
                .wrapping_add(v[1].rotate_left(7))
                .wrapping_add(v[2].rotate_left(12))
                .wrapping_add(v[3].rotate_left(18));
            for x in v {
                h = merge(h, x);
            }
            h
        } else {
            P5
        };
        h = h.wrapping_add(self.total);
        let mut rest = &self.buf[..self.buffered];
        while rest.len() >= 8 {
            h ^= round(0, u64_at(rest));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            let k = u64::from(u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")));
            h ^= k.wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = &rest[4..];
        }
        for &b in rest {
            h ^= u64::from(b).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^= h >> 32;
        h
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(P1) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn frames(content: &[u8], pieces: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = FrameWriter::new(1, |b: Bytes| {
            out.extend_from_slice(&b);
            Ok(())
        });
        for piece in content.chunks(pieces.max(1)) {
            w.write_all(piece).unwrap();
        }
        let n = w.finish().unwrap();
        assert_eq!(n as usize, out.len());
        out
    }

    fn decode(stored: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        zstd::Decoder::new(stored)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn xxh64_matches_the_reference() {
        // XXH64 of "" and of "abc" with seed 0, from the reference implementation.
        assert_eq!(Xxh64::new().digest(), 0xEF46_DB37_51D8_E999);
        let mut h = Xxh64::new();
        h.update(b"abc");
        assert_eq!(h.digest(), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn incompressible_content_is_raw_blocks_that_zstd_decodes_and_checks() {
        // Lengths around the block, stripe and frame edges, fed in odd pieces: zstd's own
        // decoder checks every frame's XXH64, so a wrong checksum fails here.
        for len in [
            0,
            1,
            31,
            32,
            33,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 5,
            SEGMENT + 7,
        ] {
            let content = noise(len, len as u64 + 1);
            let stored = frames(&content, 100_003);
            assert_eq!(decode(&stored), content, "length {len}");
            // Raw blocks: 3 bytes per block, 6 of frame header, 4 of checksum per frame.
            assert!(stored.len() <= len + len / BLOCK * 3 + 13 * (len / SEGMENT + 1));
        }
        let mut bad = frames(&noise(1000, 9), 7);
        let at = bad.len() - 2;
        bad[at] ^= 1; // the checksum
        assert!(
            zstd::Decoder::new(&bad[..])
                .unwrap()
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn mixed_content_is_compressed_where_it_pays() {
        // Text, then noise, then text: three frames, the middle one raw.
        let text: Vec<u8> = b"flowpack stores blobs as zstd frames. "
            .iter()
            .copied()
            .cycle()
            .take(SEGMENT)
            .collect();
        let mut content = text.clone();
        content.extend(noise(SEGMENT, 3));
        content.extend(&text);
        let stored = frames(&content, 65_536);
        assert_eq!(decode(&stored), content);
        assert!(stored.len() < SEGMENT + SEGMENT / 10, "{}", stored.len());
    }
}
