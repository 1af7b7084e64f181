//! The per-worker session table: a pre-sized arena of sessions indexed under two keys.
//!
//! Each session is found by the tuple of the packets that reach the balancer for it:
//! the client side key (proto, client ip:port → vip:vport) and the real-server side key
//! (proto, rs ip:port → lip:lport). Both keys live in one open-addressing index (linear probing,
//! backward-shift deletion, so no tombstones) sized for a load factor of at most 1/2 when the
//! arena is full. Everything is allocated at construction; when the arena is full `insert`
//! fails while lookups and removals keep working.
//!
//! Memory: a [`Session`] is 64 bytes; the index costs 4 entries × 8 bytes = 32 bytes per
//! session slot; the timer wheel adds 16 bytes per slot (its links: the deadline is in the
//! session): 112 bytes per session in all.

use super::tcp::{ConnState, Direction};
use super::timer::{Deadlines, NO_DEADLINE};
use crate::packet::{Tuple, TupleDelta};
use crate::rules::{Method, Tunnel, TunnelKind};

/// Index of a session in its worker's arena.
pub type SessionId = u32;

/// Which of its two keys found a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client side key: the packet travels client → RS.
    Client = 0,
    /// The real-server side key: the packet travels RS → client.
    Real = 1,
}

/// One full-NAT session. `proto == 0` marks a free arena slot.
///
/// Everything a packet of an established session reads or writes is in this one line: its
/// keys, its slots, its state, its packet counts and its deadline. Byte counts are kept per
/// service and per real server only (nothing reads them per session).
///
/// Aligned to a cache line so that a packet's session is one line, not two: the allocator
/// hands a large `Vec` an address 16 bytes past a page start (glibc's chunk header), which
/// made every 64-byte session straddle two lines (two misses per packet at large tables).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Session {
    pub client_ip: u32,
    pub vip: u32,
    pub rs_ip: u32,
    pub lip: u32,
    pub client_port: u16,
    pub vport: u16,
    pub rs_port: u16,
    pub lport: u16,
    /// Stable id of the service (survives rule snapshots).
    pub service_id: u32,
    /// Stable id of the real server.
    pub rs_id: u32,
    /// The worker's slot for the local address (its port pool) of a full-NAT session;
    /// [`SLOT_FOREIGN`] for a full-NAT session whose local address is a peer's; from
    /// [`METHOD_SLOTS`] up, the forwarding method of a session without a local address (see
    /// [`Session::method`]).
    pub lip_slot: u16,
    /// The worker's slot for the service (its counters and scheduler).
    pub svc_slot: u16,
    /// Index of the real server in the service slot's real-server counters.
    pub rs_slot: u16,
    pub proto: u8,
    pub state: ConnState,
    /// Packets from the client (what session sync's threshold counts).
    pub packets_in: u32,
    /// Packets from the real server.
    pub packets_out: u32,
    /// When the session times out (ns, the worker's clock): kept here, not in the timer
    /// wheel, so that the refresh on every packet writes the line the packet already loaded.
    /// [`NO_DEADLINE`] while the wheel does not hold the session (see [`super::timer`]): a
    /// session is live at `now` exactly when `deadline > now`. The table sets it to
    /// [`NO_DEADLINE`] on insertion; only the wheel changes it.
    pub deadline: u64,
    /// The checksum changes of a client packet's rewrite, from the client key to the
    /// real-server key reversed (a reply's are their reverse): computed from the keys by the
    /// table on insertion, so that a packet's rewrite reads no old field of the packet and
    /// sums no word of it (see [`Session::rewrite`]).
    pub(crate) to_real: StoredDelta,
}

/// [`Session::to_real`]: follows from the session's keys (the table sets it on insertion), so
/// it never tells two sessions apart: sessions are equal when their other fields are.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoredDelta(pub(crate) TupleDelta);

impl PartialEq for StoredDelta {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StoredDelta {}

/// `lip_slot` values from here up are not local-address slots: they name the method of a
/// session that has no local address. A NAT session's `lip:lport` is its client's address
/// (its real-server key is what replies carry: RS:rport → client:cport); a TUN session's is the
/// outer source address and the GUE port; a DR session's is unused.
pub const METHOD_SLOTS: u16 = 0xFFF0;
/// A full-NAT session synced from an active peer whose local address is the peer's, not
/// ours: it holds no port of any pool here (the peer owns that port, and replies return to
/// the peer), so it never claims or frees one.
pub const SLOT_FOREIGN: u16 = METHOD_SLOTS - 1;
const SLOT_NAT: u16 = METHOD_SLOTS;
const SLOT_DR: u16 = METHOD_SLOTS + 1;
/// Then 2 values per tunnel kind (IPIP, GUE, GRE): without and with checksum.
const SLOT_TUN: u16 = METHOD_SLOTS + 2;

impl Session {
    /// The forwarding method of this session (a tunnel's port is `lport`). Always inlined:
    /// every forwarded packet asks, and the full-NAT answer is one comparison.
    #[inline(always)]
    pub fn method(&self) -> Method {
        match self.lip_slot {
            s if s < METHOD_SLOTS => Method::FullNat,
            SLOT_NAT => Method::Nat,
            SLOT_DR => Method::Dr,
            s => {
                let t = s.wrapping_sub(SLOT_TUN);
                Method::Tun(Tunnel {
                    kind: match t / 2 {
                        0 => TunnelKind::Ipip,
                        1 => TunnelKind::Gue,
                        _ => TunnelKind::Gre,
                    },
                    port: self.lport,
                    csum: t % 2 == 1,
                })
            }
        }
    }

    /// The `lip_slot` that names `method` (full NAT: its local-address slot, `slot`).
    pub fn method_slot(method: Method, slot: u16) -> u16 {
        match method {
            Method::FullNat => slot,
            Method::Nat => SLOT_NAT,
            Method::Dr => SLOT_DR,
            Method::Tun(t) => {
                let kind = match t.kind {
                    TunnelKind::Ipip => 0,
                    TunnelKind::Gue => 1,
                    TunnelKind::Gre => 2,
                };
                SLOT_TUN + kind * 2 + u16::from(t.csum)
            }
        }
    }

    /// True when the session holds a local port of its worker (full NAT, not foreign).
    #[inline]
    pub fn has_local_port(&self) -> bool {
        self.lip_slot < SLOT_FOREIGN
    }

    /// True for a full-NAT session whose local address is an active peer's (see
    /// [`SLOT_FOREIGN`]).
    #[inline]
    pub fn is_foreign(&self) -> bool {
        self.lip_slot == SLOT_FOREIGN
    }

    /// True when replies come back through fnatd (full NAT and NAT): the session is then
    /// indexed under its real-server key too. DR and TUN sessions have only the client key.
    #[inline]
    pub fn has_real_key(&self) -> bool {
        self.lip_slot <= SLOT_NAT
    }

    /// The key of packets from the client: client → vip.
    #[inline]
    pub fn client_key(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src_ip: self.client_ip,
            src_port: self.client_port,
            dst_ip: self.vip,
            dst_port: self.vport,
        }
    }

    /// The key of packets from the real server: rs → lip.
    #[inline]
    pub fn real_key(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src_ip: self.rs_ip,
            src_port: self.rs_port,
            dst_ip: self.lip,
            dst_port: self.lport,
        }
    }

    #[inline]
    pub fn key(&self, side: Side) -> Tuple {
        match side {
            Side::Client => self.client_key(),
            Side::Real => self.real_key(),
        }
    }

    /// The tuple a packet of this session travelling in `dir` leaves with (the other key,
    /// reversed: NAT's client address is its local address, so only the VIP end changes),
    /// and the checksum changes of its rewrite from the key it arrived with.
    #[inline(always)]
    pub fn rewrite(&self, dir: Direction) -> (Tuple, TupleDelta) {
        match dir {
            Direction::Input => (self.real_key().reverse(), self.to_real.0),
            Direction::Output => (self.client_key().reverse(), self.to_real.0.reversed()),
        }
    }

    /// [`Session::to_real`] as the keys give it.
    fn rewrite_delta(&self) -> TupleDelta {
        TupleDelta::between(&self.client_key(), &self.real_key().reverse())
    }

    /// True when `key` is this session's real-server key (`real`) or client key (else).
    #[inline]
    fn matches(&self, real: bool, key: &Tuple) -> bool {
        let (ip, port, dip, dport) = if real {
            (self.rs_ip, self.rs_port, self.lip, self.lport)
        } else {
            (self.client_ip, self.client_port, self.vip, self.vport)
        };
        ip == key.src_ip
            && dip == key.dst_ip
            && port == key.src_port
            && dport == key.dst_port
            && self.proto == key.proto
    }

    #[inline]
    pub fn is_live(&self) -> bool {
        self.proto != 0
    }
}

/// Why an insertion failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Every arena slot is taken.
    Full,
    /// One of the session's keys is already in the table.
    Exists,
    /// The session has protocol 0 (reserved for free slots).
    Invalid,
}

const EMPTY: u64 = u64::MAX;
/// Largest supported capacity (the index must stay below 2^32 entries).
pub const MAX_CAPACITY: usize = 1 << 28;

/// The session table of one worker.
pub struct SessionTable {
    sessions: Vec<Session>,
    free: Vec<u32>,
    /// Entries: high 32 bits = hash tag (also determines the home bucket), low 32 bits =
    /// `session << 1 | side`; `EMPTY` when unused.
    index: Index,
    seed: u64,
    prefetch: Prefetch,
    /// The hint for lines a lookup reads once (see [`SessionTable::set_prefetch_streaming`]).
    prefetch_streaming: Prefetch,
    /// Sessions whose real-server key is not in the index yet, with that key's tag (see
    /// [`SessionTable::insert_with`]'s `defer_real`); at most [`DEFERRED_MAX`].
    deferred: Vec<(SessionId, u32)>,
    /// How many of `deferred` had their index line hinted (see [`Self::prefetch_deferred`]).
    deferred_hinted: usize,
    /// Deferred keys [`SessionTable::settle`] found already indexed, not yet taken.
    deferred_clashes: u64,
}

/// How many real-server keys may wait for [`SessionTable::settle`]: a burst's new sessions.
pub const DEFERRED_MAX: usize = 64;

/// Where a key goes in the index: an empty entry, or not probed yet.
#[derive(Clone, Copy)]
enum Probe {
    At(usize),
    Deferred,
}

/// Eight index entries, aligned to a cache line: a lookup's probe from its home position
/// then stays within the one line its prefetch loaded, unless it starts at the line's end (a
/// plain `Vec<u64>` sits 16 bytes past a line start, so every line straddled two).
#[derive(Clone, Copy)]
#[repr(align(64))]
struct IndexLine([u64; 8]);

/// The open-addressing index: `len()` entries, in lines of eight.
struct Index(Vec<IndexLine>);

impl Index {
    /// At least `len` entries (rounded up to whole lines), all `EMPTY`.
    fn new(len: usize) -> Self {
        Index(vec![IndexLine([EMPTY; 8]); len.div_ceil(8)])
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() * 8
    }

    #[inline(always)]
    fn get(&self, pos: usize) -> Option<&u64> {
        self.0.get(pos / 8).map(|l| &l.0[pos % 8])
    }
}

impl std::ops::Index<usize> for Index {
    type Output = u64;
    #[inline(always)]
    fn index(&self, pos: usize) -> &u64 {
        &self.0[pos / 8].0[pos % 8]
    }
}

impl std::ops::IndexMut<usize> for Index {
    #[inline(always)]
    fn index_mut(&mut self, pos: usize) -> &mut u64 {
        &mut self.0[pos / 8].0[pos % 8]
    }
}

/// The index entry of session `id`'s key on `side`, whose hash tag is `tag`.
#[inline(always)]
fn index_entry(tag: u32, id: SessionId, side: Side) -> u64 {
    ((tag as u64) << 32) | u64::from((id << 1) | side as u32)
}

#[inline(always)]
fn hash(seed: u64, t: &Tuple) -> u32 {
    let a = ((t.src_ip as u64) << 32) | t.dst_ip as u64;
    let b = ((t.src_port as u64) << 32) | ((t.dst_port as u64) << 16) | t.proto as u64;
    let mut h = (a ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = (h.rotate_left(27) ^ b).wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^= h >> 29;
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32
}

/// How the engine asks the CPU to start loading the cache line at an address: a hint that
/// never faults, whatever the address, and changes nothing. The engine has no `unsafe` and so
/// no prefetch instruction of its own: fnatd hands it the CPU's
/// (`dpdk_bindings::cpu::prefetch0`, DPDK's `rte_prefetch0`, and for lines a lookup of a very
/// large table reads once, `prefetch_non_temporal`); tests and tools run without one
/// ([`no_prefetch`]), which changes no decision, only how long lookups of large tables wait.
pub type Prefetch = fn(*const u8);

/// The [`Prefetch`] that does nothing.
pub fn no_prefetch(_: *const u8) {}

impl SessionTable {
    /// Uses `prefetch` for the hints below (the default does nothing).
    pub fn set_prefetch(&mut self, prefetch: Prefetch) {
        self.prefetch = prefetch;
    }

    /// Uses `prefetch` for the lines a burst's lookups read once, when the burst asks for it
    /// ([`Self::lookup_prefetch`]): one that keeps them out of the outer caches, where the
    /// table is so much larger than the last-level cache that a line is seldom seen again
    /// before it would be evicted anyway (the default does nothing).
    pub fn set_prefetch_streaming(&mut self, prefetch: Prefetch) {
        self.prefetch_streaming = prefetch;
    }

    /// The prefetch hint this table uses (for other per-worker structures to use the same).
    #[inline]
    pub fn prefetch_hint(&self) -> Prefetch {
        self.prefetch
    }

    /// The hint a burst's lookups use ([`Self::prefetch_lookup`], [`Self::prefetch_session`]):
    /// the streaming one when `streaming`, else the one every other hint uses.
    #[inline]
    pub fn lookup_prefetch(&self, streaming: bool) -> Prefetch {
        match streaming {
            true => self.prefetch_streaming,
            false => self.prefetch,
        }
    }

    /// A table holding up to `capacity` sessions (clamped to [`MAX_CAPACITY`]). `seed` keys the
    /// hash (pick it at random in production so that flows cannot be crafted to collide).
    pub fn new(capacity: usize, seed: u64) -> Self {
        let capacity = capacity.min(MAX_CAPACITY);
        let index_len = (capacity * 4).max(8);
        SessionTable {
            sessions: vec![Session::default(); capacity],
            free: (0..capacity as u32).rev().collect(),
            index: Index::new(index_len),
            seed,
            prefetch: no_prefetch,
            prefetch_streaming: no_prefetch,
            deferred: Vec::with_capacity(DEFERRED_MAX),
            deferred_hinted: 0,
            deferred_clashes: 0,
        }
    }

    /// Replaces this table by an empty one of `capacity` sessions keyed by `seed`, keeping its
    /// prefetch hint (fnatd sets that once, at start: a rules update that changes the
    /// capacity must not lose it).
    pub fn renew(&mut self, capacity: usize, seed: u64) {
        let (prefetch, streaming) = (self.prefetch, self.prefetch_streaming);
        *self = SessionTable::new(capacity, seed);
        self.prefetch = prefetch;
        self.prefetch_streaming = streaming;
    }

    pub fn capacity(&self) -> usize {
        self.sessions.len()
    }

    pub fn len(&self) -> usize {
        self.sessions.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((tag as u64 * self.index.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next_pos(&self, pos: usize) -> usize {
        if pos + 1 == self.index.len() {
            0
        } else {
            pos + 1
        }
    }

    /// The position of index entry `entry` (a live session's key: each is there once).
    #[inline]
    fn position_of(&self, entry: u64) -> Option<usize> {
        let len = self.index.len();
        let mut pos = self.home((entry >> 32) as u32);
        for _ in 0..len {
            let e = *self.index.get(pos)?;
            if e == entry {
                return Some(pos);
            }
            if e == EMPTY {
                return None;
            }
            pos = self.next_pos(pos);
        }
        None
    }

    /// The position of `key`'s entry in the index (its hash `tag`), the entry's session
    /// reference (`session << 1 | side`) and the session: what the probe read, so that no
    /// caller reads the entry or the session again.
    ///
    /// The probe walks a line at a time: the entries of the home position's line from there,
    /// then the next lines' (wrapping), each line fetched (and bounds-checked) once.
    #[inline(always)]
    fn find_entry(&self, key: &Tuple, tag: u32) -> Option<(usize, u32, &Session)> {
        let lines = &self.index.0;
        let home = self.home(tag);
        let (mut line, mut slot) = (home / 8, home % 8);
        // Every line once, and the home line's entries before `slot` last.
        for _ in 0..=lines.len() {
            let entries = &lines.get(line)?.0;
            while slot < entries.len() {
                let e = entries[slot];
                if e == EMPTY {
                    return None;
                }
                if (e >> 32) as u32 == tag {
                    let r = e as u32;
                    if let Some(s) = self.sessions.get((r >> 1) as usize) {
                        if s.matches(r & 1 != 0, key) {
                            return Some((line * 8 + slot, r, s));
                        }
                    }
                }
                slot += 1;
            }
            slot = 0;
            line += 1;
            if line == lines.len() {
                line = 0;
            }
        }
        None
    }

    /// The hash tag of `key` (what [`Self::prefetch_index`] and [`Self::prefetch_session`]
    /// take).
    #[inline]
    pub fn tag(&self, key: &Tuple) -> u32 {
        hash(self.seed, key)
    }

    /// Starts loading the index cache line where a key with hash `tag` is looked up first.
    /// A hint only: never faults, changes nothing.
    #[inline]
    pub fn prefetch_index(&self, tag: u32) {
        self.prefetch_lookup(tag, self.prefetch);
    }

    /// [`Self::prefetch_index`] with the hint `prefetch` (from [`Self::lookup_prefetch`]), for a
    /// burst's lookups.
    #[inline]
    pub fn prefetch_lookup(&self, tag: u32, prefetch: Prefetch) {
        if let Some(e) = self.index.get(self.home(tag)) {
            prefetch((e as *const u64).cast());
        }
    }

    /// Starts loading the session a key with hash `tag` most likely finds (the first index
    /// entry from its home position with that tag, within the rest of the home line, or the
    /// next 4 entries if fewer), and returns its id. A hint only: the lookup itself checks the
    /// whole key. `prefetch` is the hint to use (see [`Self::lookup_prefetch`]).
    #[inline]
    pub fn prefetch_session(&self, tag: u32, prefetch: Prefetch) -> Option<(SessionId, Side)> {
        let len = self.index.len();
        let mut pos = self.home(tag);
        // The home line is loaded already (stage 1 touched it): reading to its end costs no
        // memory access, and an entry found there saves the lookup a dependent miss.
        for _ in 0..(8 - pos % 8).max(4) {
            let e = *self.index.get(pos)?;
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == tag {
                let r = e as u32;
                let s = self.sessions.get((r >> 1) as usize)?;
                prefetch((s as *const Session).cast());
                let side = if r & 1 == 0 { Side::Client } else { Side::Real };
                return Some((r >> 1, side));
            }
            pos += 1;
            if pos == len {
                pos = 0;
            }
        }
        None
    }

    /// The session a [`Self::prefetch_session`] candidate points to, when `key` is still its
    /// key on that side (frames processed since the hint may have changed the table; keys
    /// are unique in it, so a match is the lookup's answer).
    #[inline(always)]
    pub fn confirm(&self, (id, side): (SessionId, Side), key: &Tuple) -> Option<&Session> {
        let s = self.sessions.get(id as usize)?;
        (s.is_live() && s.matches(side == Side::Real, key)).then_some(s)
    }

    /// Starts loading session `id` (a hint, e.g. before ending a batch of expired sessions).
    #[inline]
    pub fn prefetch_slot(&self, id: SessionId) {
        if let Some(s) = self.sessions.get(id as usize) {
            (self.prefetch)((s as *const Session).cast());
        }
    }

    /// Starts loading the index lines that removing session `id` reads (a hint: call it once
    /// the session itself is in cache, see [`Self::prefetch_slot`]): where each key is looked
    /// up first, and the line after when that position is one of the line's last two
    /// entries, as the removal's backward shift then reads the next line's first entries.
    #[inline]
    pub fn prefetch_keys(&self, id: SessionId) {
        if let Some(s) = self.sessions.get(id as usize).filter(|s| s.is_live()) {
            self.prefetch_removal(hash(self.seed, &s.client_key()));
            if s.has_real_key() {
                self.prefetch_removal(hash(self.seed, &s.real_key()));
            }
        }
    }

    /// [`Self::prefetch_index`], and the next line when the home is near its line's end.
    #[inline]
    fn prefetch_removal(&self, tag: u32) {
        self.prefetch_index(tag);
        let home = self.home(tag);
        if home % 8 >= 6 {
            let lines = &self.index.0;
            if let Some(next) = lines.get(home / 8 + 1).or(lines.first()) {
                (self.prefetch)((next as *const IndexLine).cast());
            }
        }
    }

    /// The session whose client or real-server key is `key`, and which of the two matched.
    #[inline(always)]
    pub fn lookup(&self, key: &Tuple) -> Option<(SessionId, Side)> {
        self.lookup_tagged(key, hash(self.seed, key))
    }

    /// [`Self::lookup`] with the key's hash already computed by [`Self::tag`] (the burst's
    /// prefetch stage did). The whole key is still compared, so a wrong tag only misses.
    #[inline(always)]
    pub fn lookup_tagged(&self, key: &Tuple, tag: u32) -> Option<(SessionId, Side)> {
        self.lookup_session(key, tag)
            .map(|(id, side, _)| (id, side))
    }

    /// [`Self::lookup_tagged`] with the session it found (live: its key matched).
    #[inline(always)]
    pub fn lookup_session(&self, key: &Tuple, tag: u32) -> Option<(SessionId, Side, &Session)> {
        let (_, r, s) = self.find_entry(key, tag)?;
        let side = if r & 1 == 0 { Side::Client } else { Side::Real };
        Some((r >> 1, side, s))
    }

    #[inline]
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(id as usize).filter(|s| s.is_live())
    }

    #[inline]
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(id as usize).filter(|s| s.is_live())
    }

    fn index_remove_at(&mut self, mut hole: usize) {
        let mut j = hole;
        for _ in 0..self.index.len() {
            j = self.next_pos(j);
            let e = self.index[j];
            if e == EMPTY {
                break;
            }
            let home = self.home((e >> 32) as u32);
            // The entry at j may move into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.index[hole] = e;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
    }

    /// Adds a session under both of its keys.
    pub fn insert(&mut self, session: Session) -> Result<SessionId, InsertError> {
        let ct = hash(self.seed, &session.client_key());
        self.insert_with(ct, false, |slot| *slot = session)
    }

    /// Adds the session `build` writes, straight into the free arena slot it will occupy (no
    /// session built elsewhere and copied in), under both of its keys; `ct` is its client
    /// key's hash tag, from [`Self::tag`] (a new connection's lookup that missed computed it:
    /// one hash of the client key per SYN). `build` is handed a free slot (all default) and
    /// sets every field it needs; the keys the table indexes are read back from the slot, so
    /// they cannot disagree with the session. On an error the slot is free again.
    ///
    /// With `defer_real`, the real-server key goes into the index at the next [`Self::settle`]
    /// (or removal), its index line loading meanwhile: its probe is the one cold line of a new
    /// connection (nothing could prefetch it, the key is known only once the real server and
    /// local port are chosen), and stalling on it was a third of a worker's time under a SYN
    /// flood. Only for a key no other session can hold (a full-NAT local address and port are
    /// one session's at a time), as its uniqueness is not checked until then; until then a
    /// lookup of it misses, which no packet of the same burst can notice (the real server has
    /// not seen the connection yet).
    #[inline]
    pub fn insert_with(
        &mut self,
        ct: u32,
        defer_real: bool,
        build: impl FnOnce(&mut Session),
    ) -> Result<SessionId, InsertError> {
        if defer_real && self.deferred.len() >= DEFERRED_MAX {
            self.settle();
        }
        let Some(&id) = self.free.last() else {
            // No room: a key already here is still an `Exists`, as when there is room.
            let mut s = Session::default();
            build(&mut s);
            return Err(match self.probe_keys(&s, ct, defer_real) {
                Ok(_) => InsertError::Full,
                Err(e) => e,
            });
        };
        let Some(slot) = self.sessions.get_mut(id as usize) else {
            return Err(InsertError::Full);
        };
        build(slot);
        // Not scheduled yet: a deadline would make the wheel take it as scheduled (see
        // [`Session::deadline`]).
        slot.deadline = NO_DEADLINE;
        slot.to_real = StoredDelta(slot.rewrite_delta());
        let s = &self.sessions[id as usize];
        debug_assert_eq!(ct, hash(self.seed, &s.client_key()));
        let (cpos, rpos) = match self.probe_keys(s, ct, defer_real) {
            Ok(p) => p,
            Err(e) => {
                self.sessions[id as usize] = Session::default();
                return Err(e);
            }
        };
        self.free.pop();
        self.index[cpos] = index_entry(ct, id, Side::Client);
        if let Some((Probe::Deferred, rt)) = rpos {
            self.deferred.push((id, rt));
        } else if let Some((Probe::At(mut rpos), rt)) = rpos {
            // The client key may have taken the entry the real key's probe ended at: the real
            // key then goes to the next empty one, as if it had been probed after the
            // insertion.
            for _ in 0..self.index.len() {
                if self.index[rpos] == EMPTY {
                    break;
                }
                rpos = self.next_pos(rpos);
            }
            self.index[rpos] = index_entry(rt, id, Side::Real);
        }
        Ok(id)
    }

    /// Where `s`'s keys go in the index (client key's tag `ct`): the empty entry each key's
    /// probe ended at, and the real-server key's tag (when it is indexed); an error when
    /// either key is already there (both are checked before anything is written). With
    /// `defer_real` the real-server key is not probed (see [`Self::insert_with`]).
    #[inline(always)]
    fn probe_keys(
        &self,
        s: &Session,
        ct: u32,
        defer_real: bool,
    ) -> Result<(usize, Option<(Probe, u32)>), InsertError> {
        if !s.is_live() {
            return Err(InsertError::Invalid);
        }
        let ck = s.client_key();
        if !s.has_real_key() {
            let cpos = self.probe_free(&ck, ct).ok_or(InsertError::Exists)?;
            return Ok((cpos, None));
        }
        let rk = s.real_key();
        if ck == rk {
            return Err(InsertError::Exists);
        }
        let rt = hash(self.seed, &rk);
        let cpos = self.probe_free(&ck, ct).ok_or(InsertError::Exists)?;
        if defer_real {
            return Ok((cpos, Some((Probe::Deferred, rt))));
        }
        let rpos = self.probe_free(&rk, rt).ok_or(InsertError::Exists)?;
        Ok((cpos, Some((Probe::At(rpos), rt))))
    }

    /// Puts the deferred real-server keys into the index (see [`Self::insert_with`]). A key
    /// found already there (another session's: only a client spoofing a local address as its
    /// source can make one) leaves its session reachable by its client key only, and is
    /// counted for [`Self::take_deferred_clashes`].
    pub fn settle(&mut self) {
        self.prefetch_deferred();
        for k in 0..self.deferred.len() {
            let (id, rt) = self.deferred[k];
            let Some(rk) = self.get(id).map(Session::real_key) else {
                continue;
            };
            match self.probe_free(&rk, rt) {
                Some(pos) => self.index[pos] = index_entry(rt, id, Side::Real),
                None => self.deferred_clashes += 1,
            }
        }
        self.deferred.clear();
        self.deferred_hinted = 0;
    }

    /// Starts loading the index lines of the real-server keys deferred since the last call
    /// (see [`Self::insert_with`]). The burst loop calls it every few frames rather than
    /// each insertion hinting its own: a prefetch that misses the TLB holds up retirement
    /// until its page walk is done, and hints issued together walk at the same time.
    #[inline]
    pub fn prefetch_deferred(&mut self) {
        for &(_, rt) in self.deferred.iter().skip(self.deferred_hinted) {
            self.prefetch_index(rt);
        }
        self.deferred_hinted = self.deferred.len();
    }

    /// How many deferred keys clashed since the last call.
    pub fn take_deferred_clashes(&mut self) -> u64 {
        std::mem::take(&mut self.deferred_clashes)
    }

    /// The empty index position where `key` (hash `tag`) would be inserted, or `None` when
    /// the key is already in the index (or, never at load ≤ 1/2, no entry is empty).
    #[inline]
    fn probe_free(&self, key: &Tuple, tag: u32) -> Option<usize> {
        let len = self.index.len();
        let mut pos = self.home(tag);
        for _ in 0..len {
            let e = *self.index.get(pos)?;
            if e == EMPTY {
                return Some(pos);
            }
            if (e >> 32) as u32 == tag {
                let r = e as u32;
                if let Some(s) = self.sessions.get((r >> 1) as usize) {
                    if s.matches(r & 1 != 0, key) {
                        return None;
                    }
                }
            }
            pos += 1;
            if pos == len {
                pos = 0;
            }
        }
        None
    }

    /// Removes a session and both of its keys; returns it.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        if !self.deferred.is_empty() {
            self.settle();
        }
        let s = *self.get(id)?;
        let sides = if s.has_real_key() { 2 } else { 1 };
        for side in [Side::Client, Side::Real].into_iter().take(sides) {
            // The entry is known to the bit (tag, id, side): the probe compares words and
            // reads no session on the way.
            let entry = index_entry(hash(self.seed, &s.key(side)), id, side);
            if let Some(pos) = self.position_of(entry) {
                self.index_remove_at(pos);
            }
        }
        self.sessions[id as usize] = Session::default();
        self.free.push(id);
        Some(s)
    }

    /// The session in arena slot `id` if live: for sweeps over the whole arena.
    pub fn slot(&self, id: usize) -> Option<&Session> {
        self.sessions.get(id).filter(|s| s.is_live())
    }
}

/// The wheel keeps each session's deadline in the session (see [`Session::deadline`]).
impl Deadlines for SessionTable {
    #[inline(always)]
    fn deadline_mut(&mut self, id: u32) -> Option<&mut u64> {
        self.get_mut(id).map(|s| &mut s.deadline)
    }
    #[inline]
    fn deadline(&self, id: u32) -> u64 {
        self.get(id).map_or(NO_DEADLINE, |s| s.deadline)
    }
    #[inline]
    fn prefetch_deadline(&self, id: u32) {
        self.prefetch_slot(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn session(i: u32) -> Session {
        Session {
            client_ip: 0x0a00_0000 + i,
            client_port: 1000 + (i % 50000) as u16,
            vip: 0xc0a8_0001,
            vport: 80,
            rs_ip: 0xac10_0000 + (i % 7),
            rs_port: 8080,
            lip: 0xc0a8_0101,
            lport: (i % 60000) as u16 + 1024,
            proto: 6,
            state: ConnState::SynRecv,
            ..Session::default()
        }
    }

    #[test]
    fn size() {
        assert_eq!(std::mem::size_of::<Session>(), 64);
    }

    #[test]
    fn every_session_is_one_cache_line() {
        for capacity in [16, 100_000] {
            let t = SessionTable::new(capacity, 1);
            assert_eq!(t.sessions.as_ptr() as usize % 64, 0, "capacity {capacity}");
            assert_eq!(t.index.0.as_ptr() as usize % 64, 0, "capacity {capacity}");
        }
    }

    #[test]
    fn both_keys_find_the_same_session() {
        let mut t = SessionTable::new(16, 1);
        let s = session(3);
        let id = t.insert(s).unwrap();
        assert_eq!(t.lookup(&s.client_key()), Some((id, Side::Client)));
        assert_eq!(t.lookup(&s.real_key()), Some((id, Side::Real)));
        assert_eq!(t.get(id), Some(&s));
        assert_eq!(t.insert(s), Err(InsertError::Exists));
        let mut other = session(4);
        other.lport = s.lport; // same real-side key as s
        other.rs_ip = s.rs_ip;
        assert_eq!(t.insert(other), Err(InsertError::Exists));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn full_table_refuses_inserts_but_lookups_work() {
        let cap = 100;
        let mut t = SessionTable::new(cap, 7);
        let ids: Vec<_> = (0..cap as u32)
            .map(|i| t.insert(session(i)).unwrap())
            .collect();
        assert!(t.is_full());
        assert_eq!(t.insert(session(1000)), Err(InsertError::Full));
        for (i, id) in ids.iter().enumerate() {
            let s = session(i as u32);
            assert_eq!(t.lookup(&s.client_key()), Some((*id, Side::Client)));
            assert_eq!(t.lookup(&s.real_key()), Some((*id, Side::Real)));
        }
        assert!(t.lookup(&session(1000).client_key()).is_none());
        // Removing one makes room for exactly one.
        t.remove(ids[5]).unwrap();
        assert!(t.insert(session(1000)).is_ok());
        assert_eq!(t.insert(session(1001)), Err(InsertError::Full));
    }

    /// `insert_with(.., defer_real = true, ..)` of session `s`.
    fn insert_deferred(t: &mut SessionTable, s: Session) -> Result<SessionId, InsertError> {
        let ct = t.tag(&s.client_key());
        t.insert_with(ct, true, |slot| *slot = s)
    }

    #[test]
    fn deferred_real_keys_are_indexed_at_settle_or_removal_and_clashes_counted() {
        let mut t = SessionTable::new(16, 7);
        let (a, b) = (session(1), session(2));
        let ia = insert_deferred(&mut t, a).unwrap();
        let ib = insert_deferred(&mut t, b).unwrap();
        // The client keys at once, the real-server keys once settled.
        assert_eq!(t.lookup(&a.client_key()), Some((ia, Side::Client)));
        assert!(t.lookup(&a.real_key()).is_none());
        t.settle();
        assert_eq!(t.lookup(&a.real_key()), Some((ia, Side::Real)));
        assert_eq!(t.lookup(&b.real_key()), Some((ib, Side::Real)));
        assert_eq!(t.take_deferred_clashes(), 0);

        // A removal first indexes what waits, so it frees both keys of the session it ends
        // and leaves the others' findable.
        let c = session(3);
        let ic = insert_deferred(&mut t, c).unwrap();
        let d = session(4);
        let id = insert_deferred(&mut t, d).unwrap();
        assert_eq!(t.remove(ic), Some(c));
        assert!(t.lookup(&c.real_key()).is_none());
        assert!(t.lookup(&c.client_key()).is_none());
        assert_eq!(t.lookup(&d.real_key()), Some((id, Side::Real)));

        // Another session with a's real-server key: no error at insertion (not checked yet);
        // at settle it stays reachable by its client key only and is counted, and a's key
        // still finds a.
        let mut e = session(5);
        (e.rs_ip, e.rs_port, e.lip, e.lport) = (a.rs_ip, a.rs_port, a.lip, a.lport);
        let ie = insert_deferred(&mut t, e).unwrap();
        t.settle();
        assert_eq!(t.take_deferred_clashes(), 1);
        assert_eq!(t.take_deferred_clashes(), 0);
        assert_eq!(t.lookup(&a.real_key()), Some((ia, Side::Real)));
        assert_eq!(t.lookup(&e.client_key()), Some((ie, Side::Client)));
        assert_eq!(t.remove(ie), Some(e));
        assert_eq!(t.lookup(&a.real_key()), Some((ia, Side::Real)));

        // More than a burst's worth waits no longer than DEFERRED_MAX insertions.
        let mut t = SessionTable::new(4 * DEFERRED_MAX, 9);
        let ids: Vec<_> = (0..=DEFERRED_MAX as u32)
            .map(|i| insert_deferred(&mut t, session(100 + i)).unwrap())
            .collect();
        assert_eq!(
            t.lookup(&session(100).real_key()),
            Some((ids[0], Side::Real))
        );
        assert!(t
            .lookup(&session(100 + DEFERRED_MAX as u32).real_key())
            .is_none());
    }

    thread_local! {
        static HINTED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    /// A [`Prefetch`] that records the cache lines it is handed.
    fn record_hint(addr: *const u8) {
        HINTED.with(|h| h.borrow_mut().push(addr as usize & !63));
    }

    fn take_hints() -> Vec<usize> {
        HINTED.with(|h| std::mem::take(&mut *h.borrow_mut()))
    }

    /// The address of the index line where a key with hash `tag` is looked up first.
    fn home_line(t: &SessionTable, tag: u32) -> usize {
        &t.index.0[t.home(tag) / 8] as *const IndexLine as usize
    }

    #[test]
    fn deferred_keys_lines_are_hinted_once_each_and_before_settling() {
        let mut t = SessionTable::new(64, 3);
        t.set_prefetch(record_hint);
        let (a, b, c) = (session(1), session(2), session(3));
        insert_deferred(&mut t, a).unwrap();
        insert_deferred(&mut t, b).unwrap();
        // Insertion hints nothing of the real-server key: the burst loop asks for a group.
        let real = |t: &SessionTable, s: &Session| home_line(t, t.tag(&s.real_key()));
        assert!(!take_hints().contains(&real(&t, &a)));
        t.prefetch_deferred();
        assert_eq!(take_hints(), vec![real(&t, &a), real(&t, &b)]);
        // Only what was deferred since the last call; settling hints the rest first.
        insert_deferred(&mut t, c).unwrap();
        take_hints();
        t.prefetch_deferred();
        assert_eq!(take_hints(), vec![real(&t, &c)]);
        t.prefetch_deferred();
        assert!(take_hints().is_empty());
        let d = session(4);
        insert_deferred(&mut t, d).unwrap();
        take_hints();
        t.settle();
        assert_eq!(take_hints(), vec![real(&t, &d)]);
        assert!(t.lookup(&d.real_key()).is_some());
    }

    #[test]
    fn removal_hints_the_next_index_line_when_its_key_starts_near_a_line_end() {
        let mut t = SessionTable::new(4096, 5);
        t.set_prefetch(record_hint);
        let (mut near_end, mut early) = (false, false);
        for i in 0..2000 {
            let s = session(i);
            let Ok(id) = t.insert(s) else { continue };
            take_hints();
            t.prefetch_keys(id);
            let hinted = take_hints();
            let mut want = Vec::new();
            for tag in [t.tag(&s.client_key()), t.tag(&s.real_key())] {
                let home = t.home(tag);
                want.push(home_line(&t, tag));
                if home % 8 >= 6 {
                    let next = (home / 8 + 1) % t.index.0.len();
                    want.push(&t.index.0[next] as *const IndexLine as usize);
                    near_end = true;
                } else {
                    early = true;
                }
            }
            assert_eq!(hinted, want, "session {i}");
        }
        assert!(near_end && early, "both cases seen");
    }

    #[test]
    fn removal_frees_both_keys() {
        let mut t = SessionTable::new(8, 0);
        let s = session(1);
        let id = t.insert(s).unwrap();
        assert_eq!(t.remove(id), Some(s));
        assert!(t.lookup(&s.client_key()).is_none());
        assert!(t.lookup(&s.real_key()).is_none());
        assert!(t.get(id).is_none());
        assert!(t.remove(id).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn methods_round_trip_and_input_only_sessions_have_one_key() {
        use crate::rules::{Method, Tunnel, TunnelKind};
        let tun = |kind, port, csum| Method::Tun(Tunnel { kind, port, csum });
        for m in [
            Method::Nat,
            Method::Dr,
            tun(TunnelKind::Ipip, 0, false),
            tun(TunnelKind::Gue, 6080, false),
            tun(TunnelKind::Gue, 5555, true),
            tun(TunnelKind::Gre, 0, false),
            tun(TunnelKind::Gre, 0, true),
        ] {
            let mut s = session(9);
            s.lip_slot = Session::method_slot(m, 0);
            if let Method::Tun(t) = m {
                s.lport = t.port;
            }
            assert_eq!(s.method(), m);
            assert!(!s.has_local_port());
            assert_eq!(s.has_real_key(), m == Method::Nat);
            let mut t = SessionTable::new(4, 3);
            let id = t.insert(s).unwrap();
            assert_eq!(t.lookup(&s.client_key()), Some((id, Side::Client)));
            let real = t.lookup(&s.real_key());
            assert_eq!(real.is_some(), m == Method::Nat, "{m:?}");
            assert_eq!(t.remove(id), Some(s));
            assert!(t.lookup(&s.client_key()).is_none());
            assert!(t.is_empty());
        }
        assert_eq!(session(1).method(), Method::FullNat);
    }

    #[test]
    fn zero_capacity() {
        let mut t = SessionTable::new(0, 0);
        assert_eq!(t.insert(session(1)), Err(InsertError::Full));
        assert!(t.lookup(&session(1).client_key()).is_none());
    }

    #[test]
    fn tiny_tables_keep_both_keys_findable() {
        // Index of 8 entries: the two keys of a session often probe to the same empty entry.
        for seed in 0..200u64 {
            let mut t = SessionTable::new(2, seed);
            let mut live: Vec<(Session, SessionId)> = Vec::new();
            for i in 0..40u32 {
                let s = session(i.wrapping_mul(2_654_435_761) % 100_000);
                if live.len() == 2 {
                    let (old, id) = live.remove((i % 2) as usize);
                    assert_eq!(t.remove(id), Some(old));
                }
                match t.insert(s) {
                    Ok(id) => live.push((s, id)),
                    Err(e) => assert_eq!(e, InsertError::Exists),
                }
                for (s, id) in &live {
                    assert_eq!(t.lookup(&s.client_key()), Some((*id, Side::Client)));
                    assert_eq!(t.lookup(&s.real_key()), Some((*id, Side::Real)));
                    assert_eq!(
                        t.prefetch_session(t.tag(&s.client_key()), no_prefetch),
                        Some((*id, Side::Client))
                    );
                }
            }
        }
    }

    #[test]
    fn confirm_takes_a_candidate_only_while_its_key_is_that_side_of_it() {
        let mut t = SessionTable::new(64, 5);
        let a = session(1);
        let id = t.insert(a).unwrap();
        let candidate = t
            .prefetch_session(t.tag(&a.real_key()), no_prefetch)
            .unwrap();
        assert_eq!(candidate, (id, Side::Real));
        assert_eq!(t.confirm(candidate, &a.real_key()), Some(&a));
        // The other key of the same session, or the right key on the wrong side: no.
        assert_eq!(t.confirm(candidate, &a.client_key()), None);
        assert_eq!(t.confirm((id, Side::Client), &a.real_key()), None);
        // The session ended and its slot went to another (the burst moved on since the
        // hint): the old key no longer finds it there, the new one does.
        t.remove(id).unwrap();
        assert_eq!(t.confirm(candidate, &a.real_key()), None);
        let b = session(2);
        assert_eq!(t.insert(b), Ok(id));
        assert_eq!(t.confirm(candidate, &a.real_key()), None);
        assert_eq!(t.confirm(candidate, &b.real_key()), Some(&b));
        // Past the arena: no.
        assert_eq!(t.confirm((64, Side::Client), &b.client_key()), None);
    }

    #[test]
    fn churn_keeps_index_consistent() {
        // Many inserts and removals in pseudo-random order against a model.
        let cap = 512;
        let mut t = SessionTable::new(cap, 42);
        let mut live: Vec<(u32, SessionId)> = Vec::new();
        let mut x: u64 = 0x1234_5678;
        let mut next = 0u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x % 3 < 2 && live.len() < cap) || live.is_empty() {
                let s = session(next);
                let id = t.insert(s).unwrap();
                live.push((next, id));
                next += 1;
            } else {
                let k = (x >> 8) as usize % live.len();
                let (n, id) = live.swap_remove(k);
                assert_eq!(
                    t.remove(id).map(|s| s.client_ip),
                    Some(session(n).client_ip)
                );
                assert!(t.lookup(&session(n).client_key()).is_none());
            }
        }
        for (n, id) in &live {
            let s = session(*n);
            assert_eq!(t.lookup(&s.client_key()), Some((*id, Side::Client)));
            assert_eq!(t.lookup(&s.real_key()), Some((*id, Side::Real)));
        }
        assert_eq!(t.len(), live.len());
    }
}
