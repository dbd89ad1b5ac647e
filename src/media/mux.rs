//! The output side of a transcode: the muxer, and the verification that sees each packet on
//! its way in.
//!
//! In: an open output context; encoded packets from the tracks. Out: the packets written,
//! interleaved, and — when a [`StreamCheck`] is attached — a copy of each handed to it. Fails
//! with libav's error when the muxer cannot write. Blocking (file writes).

use std::ops::{Deref, DerefMut};

use ffmpeg::format;
use ffmpeg_next as ffmpeg;

use super::stream_check::{Decoded, StreamCheck};
use super::{libav, MediaError};

pub struct Mux {
    octx: format::context::Output,
    check: Option<StreamCheck>,
}

impl Mux {
    pub fn new(octx: format::context::Output) -> Mux {
        Mux { octx, check: None }
    }

    /// From now on, every packet written is also decoded beside the transcode. Call after the
    /// header is written (the streams' parameters are final then).
    pub fn check_streams(&mut self) -> Result<(), MediaError> {
        self.check = Some(StreamCheck::start(self.octx.streams())?);
        Ok(())
    }

    /// Writes one packet of the stream it names (the muxer takes its data; `packet` is left
    /// empty).
    pub fn write(&mut self, packet: &ffmpeg::Packet) -> Result<(), ffmpeg::Error> {
        if let Some(check) = self.check.as_mut() {
            check.send(packet);
        }
        packet.write_interleaved(&mut self.octx)
    }

    /// Writes the trailer and closes the file (`what` names it in errors), then waits for the
    /// stream check, if any, and returns what it decoded.
    pub fn finish(self, what: &str) -> Result<Option<Decoded>, MediaError> {
        let Mux { mut octx, check } = self;
        octx.write_trailer()
            .map_err(|e| MediaError::encode(what, libav::describe(e)))?;
        drop(octx);
        check.map(StreamCheck::finish).transpose()
    }
}

impl Deref for Mux {
    type Target = format::context::Output;

    fn deref(&self) -> &Self::Target {
        &self.octx
    }
}

impl DerefMut for Mux {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.octx
    }
}
