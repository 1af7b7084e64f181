//! Connection states with kernel IPVS's names and transitions, and their timeouts.
//!
//! A TCP session moves on every packet according to the direction it travels (client → RS is
//! [`Direction::Input`], RS → client is [`Direction::Output`]) and the one flag class that counts
//! for it, in IPVS's priority order RST > SYN > FIN > ACK. The transitions are those of IPVS's
//! `tcp_states` table for connections whose both directions pass through the balancer (NAT and
//! full-NAT). DR and TUN sessions see only the client's packets: they move by
//! [`ConnState::on_tcp_input_only`], IPVS's "input only" table.
//!
//! UDP sessions have a single state, [`ConnState::Udp`], with the UDP timeout.

use crate::rules::Timeouts;

/// The state of a session. `repr(u8)` so that it packs into the session record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ConnState {
    #[default]
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
    /// The one state of a UDP session.
    Udp,
}

/// Which way a packet travels through the balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → real server (IPVS's "input").
    Input,
    /// Real server → client (IPVS's "output").
    Output,
}

/// The flag class of a TCP segment that drives the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpEvent {
    Syn,
    Fin,
    Ack,
    Rst,
}

impl TcpEvent {
    /// The event of a segment with these flags, in IPVS's priority order RST > SYN > FIN > ACK;
    /// `None` when none of them is set (the state does not change).
    #[inline]
    pub fn classify(syn: bool, fin: bool, ack: bool, rst: bool) -> Option<TcpEvent> {
        if rst {
            Some(TcpEvent::Rst)
        } else if syn {
            Some(TcpEvent::Syn)
        } else if fin {
            Some(TcpEvent::Fin)
        } else if ack {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

/// Timeout of the NONE state: IPVS uses 2 s; there is no knob for it in [`Timeouts`].
pub const NONE_TIMEOUT_SECS: u32 = 2;

use ConnState as S;

/// Next state for each state (row, in `ConnState` order up to `SynAck`) and each
/// (direction, event) column: input syn, fin, ack, rst, then output syn, fin, ack, rst.
const NEXT: [[ConnState; 8]; 11] = [
    // NONE
    [
        S::SynRecv,
        S::Close,
        S::Established,
        S::Close,
        S::SynSent,
        S::TimeWait,
        S::Established,
        S::Close,
    ],
    // ESTABLISHED
    [
        S::Established,
        S::CloseWait,
        S::Established,
        S::Close,
        S::Established,
        S::FinWait,
        S::Established,
        S::Close,
    ],
    // SYN_SENT
    [
        S::Established,
        S::SynSent,
        S::SynSent,
        S::Close,
        S::SynSent,
        S::SynSent,
        S::SynSent,
        S::SynSent,
    ],
    // SYN_RECV
    [
        S::SynRecv,
        S::TimeWait,
        S::Established,
        S::SynRecv,
        S::SynRecv,
        S::TimeWait,
        S::Established,
        S::Close,
    ],
    // FIN_WAIT
    [
        S::SynRecv,
        S::TimeWait,
        S::FinWait,
        S::Close,
        S::SynSent,
        S::FinWait,
        S::FinWait,
        S::Close,
    ],
    // TIME_WAIT
    [
        S::SynRecv,
        S::TimeWait,
        S::TimeWait,
        S::Close,
        S::SynSent,
        S::TimeWait,
        S::TimeWait,
        S::TimeWait,
    ],
    // CLOSE
    [
        S::SynRecv,
        S::Close,
        S::Close,
        S::Close,
        S::SynSent,
        S::Close,
        S::Close,
        S::Close,
    ],
    // CLOSE_WAIT
    [
        S::SynRecv,
        S::CloseWait,
        S::CloseWait,
        S::Close,
        S::SynSent,
        S::TimeWait,
        S::CloseWait,
        S::Close,
    ],
    // LAST_ACK
    [
        S::SynRecv,
        S::LastAck,
        S::Close,
        S::LastAck,
        S::SynSent,
        S::LastAck,
        S::LastAck,
        S::Close,
    ],
    // LISTEN
    [
        S::SynRecv,
        S::Listen,
        S::Listen,
        S::Listen,
        S::Listen,
        S::Listen,
        S::Established,
        S::Close,
    ],
    // SYNACK
    [
        S::SynRecv,
        S::TimeWait,
        S::Established,
        S::SynRecv,
        S::SynRecv,
        S::TimeWait,
        S::Established,
        S::Close,
    ],
];

/// Next state for each state (row, as [`NEXT`]) and event (syn, fin, ack, rst) when only the
/// client's packets are seen (DR, TUN): kernel IPVS's input-only transitions.
const NEXT_INPUT_ONLY: [[ConnState; 4]; 11] = [
    [S::SynRecv, S::Close, S::Established, S::Close], // NONE
    [S::Established, S::FinWait, S::Established, S::Close], // ESTABLISHED
    [S::Established, S::SynSent, S::SynSent, S::Close], // SYN_SENT
    [S::SynRecv, S::TimeWait, S::Established, S::SynRecv], // SYN_RECV
    [S::SynRecv, S::FinWait, S::FinWait, S::Close],   // FIN_WAIT
    [S::SynRecv, S::TimeWait, S::TimeWait, S::Close], // TIME_WAIT
    [S::SynRecv, S::Close, S::Close, S::Close],       // CLOSE
    [S::SynRecv, S::CloseWait, S::CloseWait, S::Close], // CLOSE_WAIT
    [S::SynRecv, S::LastAck, S::Close, S::LastAck],   // LAST_ACK
    [S::SynRecv, S::Listen, S::Listen, S::Listen],    // LISTEN
    [S::SynRecv, S::TimeWait, S::Established, S::Close], // SYNACK
];

impl ConnState {
    /// The state after a client segment with these flags on a session whose replies bypass
    /// the balancer (DR, TUN): IPVS's input-only table. UDP stays UDP.
    #[inline]
    pub fn on_tcp_input_only(self, syn: bool, fin: bool, ack: bool, rst: bool) -> ConnState {
        if self == S::Udp {
            return S::Udp;
        }
        match TcpEvent::classify(syn, fin, ack, rst) {
            Some(ev) => NEXT_INPUT_ONLY[self as usize][ev as usize],
            None => self,
        }
    }

    /// Every state, in `repr` order.
    pub const ALL: [ConnState; 12] = [
        S::None,
        S::Established,
        S::SynSent,
        S::SynRecv,
        S::FinWait,
        S::TimeWait,
        S::Close,
        S::CloseWait,
        S::LastAck,
        S::Listen,
        S::SynAck,
        S::Udp,
    ];

    /// The name as `ipvsadm -Lc` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            S::None => "NONE",
            S::Established => "ESTABLISHED",
            S::SynSent => "SYN_SENT",
            S::SynRecv => "SYN_RECV",
            S::FinWait => "FIN_WAIT",
            S::TimeWait => "TIME_WAIT",
            S::Close => "CLOSE",
            S::CloseWait => "CLOSE_WAIT",
            S::LastAck => "LAST_ACK",
            S::Listen => "LISTEN",
            S::SynAck => "SYNACK",
            S::Udp => "UDP",
        }
    }

    /// The state after a segment of class `event` travelling in `dir`. UDP stays UDP.
    #[inline]
    pub fn next(self, dir: Direction, event: TcpEvent) -> ConnState {
        if self == S::Udp {
            return S::Udp;
        }
        let col = match dir {
            Direction::Input => 0,
            Direction::Output => 4,
        } + event as usize;
        NEXT[self as usize][col]
    }

    /// The state after a TCP segment with these flags (no change when none of RST/SYN/FIN/ACK).
    #[inline]
    pub fn on_tcp(self, dir: Direction, syn: bool, fin: bool, ack: bool, rst: bool) -> ConnState {
        match TcpEvent::classify(syn, fin, ack, rst) {
            Some(ev) => self.next(dir, ev),
            None => self,
        }
    }

    /// How long a session may stay idle in this state, in seconds.
    pub fn timeout_secs(self, t: &Timeouts) -> u32 {
        match self {
            S::None => NONE_TIMEOUT_SECS,
            S::Established => t.tcp_established,
            S::SynSent => t.tcp_syn_sent,
            S::SynRecv => t.tcp_syn_recv,
            S::FinWait => t.tcp_fin_wait,
            S::TimeWait => t.tcp_time_wait,
            S::Close => t.tcp_close,
            S::CloseWait => t.tcp_close_wait,
            S::LastAck => t.tcp_last_ack,
            S::Listen => t.tcp_listen,
            S::SynAck => t.tcp_synack,
            S::Udp => t.udp,
        }
    }

    /// Counted in ActiveConn (ESTABLISHED) rather than InActConn (every other state, UDP included).
    #[inline]
    pub fn is_active(self) -> bool {
        self == S::Established
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Input as I, Output as O};

    fn run(steps: &[(Direction, &str)]) -> Vec<ConnState> {
        let mut s = ConnState::None;
        let mut out = Vec::new();
        for (dir, flags) in steps {
            s = s.on_tcp(
                *dir,
                flags.contains('S'),
                flags.contains('F'),
                flags.contains('A'),
                flags.contains('R'),
            );
            out.push(s);
        }
        out
    }

    #[test]
    fn handshake_data_and_client_close() {
        let states = run(&[
            (I, "S"),
            (O, "SA"),
            (I, "A"),
            (I, "A"),
            (O, "A"),
            (I, "FA"),
            (O, "A"),
            (O, "FA"),
            (I, "A"),
        ]);
        use ConnState::*;
        assert_eq!(
            states,
            [
                SynRecv,
                SynRecv,
                Established,
                Established,
                Established,
                CloseWait,
                CloseWait,
                TimeWait,
                TimeWait
            ]
        );
    }

    #[test]
    fn server_closes_first() {
        let states = run(&[
            (I, "S"),
            (O, "SA"),
            (I, "A"),
            (O, "FA"),
            (I, "A"),
            (I, "FA"),
            (O, "A"),
        ]);
        use ConnState::*;
        assert_eq!(
            states,
            [
                SynRecv,
                SynRecv,
                Established,
                FinWait,
                FinWait,
                TimeWait,
                TimeWait
            ]
        );
    }

    #[test]
    fn resets() {
        use ConnState::*;
        assert_eq!(
            run(&[(I, "S"), (O, "SA"), (I, "A"), (I, "RA")]).last(),
            Some(&Close)
        );
        assert_eq!(
            run(&[(I, "S"), (O, "SA"), (I, "A"), (O, "R")]).last(),
            Some(&Close)
        );
        // An RS refusing the connection.
        assert_eq!(run(&[(I, "S"), (O, "RA")]).last(), Some(&Close));
        // RST has priority over everything, SYN over FIN over ACK.
        assert_eq!(
            TcpEvent::classify(true, true, true, true),
            Some(TcpEvent::Rst)
        );
        assert_eq!(
            TcpEvent::classify(true, true, true, false),
            Some(TcpEvent::Syn)
        );
        assert_eq!(
            TcpEvent::classify(false, true, true, false),
            Some(TcpEvent::Fin)
        );
        assert_eq!(
            TcpEvent::classify(false, false, true, false),
            Some(TcpEvent::Ack)
        );
        assert_eq!(TcpEvent::classify(false, false, false, false), Option::None);
    }

    #[test]
    fn input_only_follows_the_clients_segments() {
        use ConnState::*;
        let mut s = None;
        let mut seen = Vec::new();
        for f in ["S", "A", "A", "FA", "A"] {
            s = s.on_tcp_input_only(
                f.contains('S'),
                f.contains('F'),
                f.contains('A'),
                f.contains('R'),
            );
            seen.push(s);
        }
        assert_eq!(seen, [SynRecv, Established, Established, FinWait, FinWait]);
        assert_eq!(
            Established.on_tcp_input_only(false, false, true, true),
            Close
        );
        assert_eq!(Udp.on_tcp_input_only(true, false, false, false), Udp);
        assert_eq!(
            TimeWait.on_tcp_input_only(true, false, false, false),
            SynRecv
        );
    }

    #[test]
    fn new_syn_reopens_time_wait() {
        use ConnState::*;
        assert_eq!(TimeWait.next(I, TcpEvent::Syn), SynRecv);
        assert_eq!(Close.next(I, TcpEvent::Syn), SynRecv);
        assert_eq!(Udp.next(I, TcpEvent::Rst), Udp);
    }

    #[test]
    fn timeouts_and_activity() {
        let t = Timeouts::default();
        assert_eq!(ConnState::Established.timeout_secs(&t), 900);
        assert_eq!(ConnState::SynRecv.timeout_secs(&t), 60);
        assert_eq!(ConnState::TimeWait.timeout_secs(&t), 120);
        assert_eq!(ConnState::Close.timeout_secs(&t), 10);
        assert_eq!(ConnState::Udp.timeout_secs(&t), 300);
        assert_eq!(ConnState::None.timeout_secs(&t), 2);
        // `ALL` is indexed by the state (what the per-state timeout table relies on).
        for (i, s) in ConnState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        for s in ConnState::ALL {
            assert_eq!(s.is_active(), s == ConnState::Established);
            assert!(!s.name().is_empty());
        }
    }
}
