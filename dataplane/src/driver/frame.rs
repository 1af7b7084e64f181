//! Lets the engine see a DPDK mbuf as a [`Frame`].

use dpdk_bindings::mbuf::Mbuf;
use fnat_engine::Frame;

/// A single-segment mbuf seen as a frame (multi-segment mbufs are dropped before the engine).
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
}
