//! Lets the engine see DPDK mbufs as [`Frame`]s and a received burst as [`Frames`].

use dpdk_bindings::mbuf::Mbuf;
use fnat_engine::{Frame, Frames, PortIndex};

/// A single-segment mbuf seen as a frame (the engine drops multi-segment ones unread).
pub struct MbufFrame<'a>(pub &'a mut Mbuf);

impl Frame for MbufFrame<'_> {
    #[inline]
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        self.0.set_data_len(len)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        self.0.prepend(n).is_some()
    }
}

/// A received burst of mbufs handed to the engine.
pub struct MbufBurst<'a> {
    pub mbufs: &'a mut [Mbuf],
    /// For a burst from a redirect ring (frames of every port): the engine's `PortIndex` of
    /// each DPDK port id, to find each frame's port from the id its sender stamped. `None`
    /// for a burst from one port's queue.
    pub index_of_port_id: Option<&'a [PortIndex]>,
}

impl Frames for MbufBurst<'_> {
    type Frame<'b>
        = MbufFrame<'b>
    where
        Self: 'b;

    #[inline]
    fn len(&self) -> usize {
        self.mbufs.len()
    }
    #[inline]
    fn data(&self, i: usize) -> &[u8] {
        self.mbufs.get(i).map_or(&[], |m| m.data())
    }
    #[inline]
    fn frame_mut(&mut self, i: usize) -> Option<MbufFrame<'_>> {
        self.mbufs.get_mut(i).map(MbufFrame)
    }
    #[inline]
    fn rx_port(&self, i: usize) -> Option<PortIndex> {
        let index = self.index_of_port_id?;
        let id = self.mbufs.get(i)?.port();
        Some(index.get(usize::from(id)).copied().unwrap_or(0))
    }
    #[inline]
    fn is_whole(&self, i: usize) -> bool {
        self.mbufs.get(i).is_some_and(|m| m.nb_segs() <= 1)
    }
}
