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
    /// Grows the frame by `n` bytes at its start (into the buffer's headroom: DPDK's
    /// `rte_pktmbuf_prepend`), for an outer header; the new bytes are unspecified. Returns
    /// false (and changes nothing) when there is no room.
    fn prepend(&mut self, n: usize) -> bool;
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
    fn prepend(&mut self, n: usize) -> bool {
        self.splice(0..0, std::iter::repeat_n(0, n));
        true
    }
}

impl<F: Frame + ?Sized> Frame for &mut F {
    fn data(&self) -> &[u8] {
        (**self).data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        (**self).data_mut()
    }
    fn set_len(&mut self, len: usize) -> bool {
        (**self).set_len(len)
    }
    fn prepend(&mut self, n: usize) -> bool {
        (**self).prepend(n)
    }
}

/// A burst of frames, as the driver received them: what [`crate::Worker::process_burst`]
/// takes. Implemented for slices of [`Frame`]s (tests) and by the driver for its mbuf bursts.
pub trait Frames {
    /// One frame of the burst, borrowed for processing.
    type Frame<'a>: Frame
    where
        Self: 'a;
    /// How many frames the burst holds.
    fn len(&self) -> usize;
    /// True when the burst holds no frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes of frame `i` (empty beyond the burst).
    fn data(&self, i: usize) -> &[u8];
    /// Frame `i`, writable (`None` beyond the burst).
    fn frame_mut(&mut self, i: usize) -> Option<Self::Frame<'_>>;
    /// The port frame `i` came in by, when the burst is not from one port (a ring that
    /// other workers fill); `None`: the port the burst was handed in with.
    fn rx_port(&self, _i: usize) -> Option<crate::PortIndex> {
        None
    }
    /// False when frame `i` does not lie in one buffer (a multi-segment mbuf): it is dropped
    /// as `multi_segment` without being looked at.
    fn is_whole(&self, _i: usize) -> bool {
        true
    }
}

impl<F: Frame> Frames for [F] {
    type Frame<'a>
        = &'a mut F
    where
        F: 'a;
    fn len(&self) -> usize {
        <[F]>::len(self)
    }
    fn data(&self, i: usize) -> &[u8] {
        self.get(i).map_or(&[], |f| f.data())
    }
    fn frame_mut(&mut self, i: usize) -> Option<&mut F> {
        self.get_mut(i)
    }
}

impl<F: Frame, const N: usize> Frames for [F; N] {
    type Frame<'a>
        = &'a mut F
    where
        F: 'a;
    fn len(&self) -> usize {
        N
    }
    fn data(&self, i: usize) -> &[u8] {
        self.as_slice().data(i)
    }
    fn frame_mut(&mut self, i: usize) -> Option<&mut F> {
        self.get_mut(i)
    }
}
