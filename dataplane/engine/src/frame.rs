//! The one thing the engine needs from a packet buffer: its bytes, and a way to change its length.

/// A frame the engine can read, rewrite in place, and shorten or lengthen within its buffer.
///
/// The driver implements this for DPDK mbufs; tests use `Vec<u8>`.
pub trait Frame {
    /// The frame's bytes, starting at the Ethernet header.
    fn data(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Sets the frame length, keeping the start. Returns false (and changes nothing) when the
    /// buffer cannot hold `len` bytes.
    fn set_len(&mut self, len: usize) -> bool;
}

impl Frame for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }
    fn set_len(&mut self, len: usize) -> bool {
        self.resize(len, 0);
        true
    }
}
