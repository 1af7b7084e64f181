//! The RFC 5798 state machine of one virtual router, pure and clock-injected.
//!
//! Time is a [`Duration`] since any fixed origin, given by the caller with every event; the
//! machine never reads a clock, sleeps or does I/O. It answers each event with the
//! [`Action`]s the caller performs (send an advertisement, take or give up the addresses) and
//! [`Machine::next_deadline`] tells when to call [`Machine::poll`] next. The same code runs
//! under the unit tests' timelines and under the service's real clock.
//!
//! Rules (RFC 5798 §6.4, as keepalived applies them):
//! - `Skew_Time = ((256 - Priority) × Master_Adver_Interval) / 256`,
//!   `Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time`;
//! - a backup that hears nothing for Master_Down_Interval becomes master; an advertisement
//!   with priority 0 (the master's clean stop) cuts the wait to Skew_Time;
//! - a backup with `preempt` (the default) ignores adverts of a lower priority, so its timer
//!   runs out and it takes over; with `nopreempt` any master is accepted; `preempt_delay`
//!   holds preemption back until that long after start-up and after first hearing the
//!   lower-priority master;
//! - a master yields to a higher priority, or to an equal priority from a higher primary
//!   address, sending one last advert as it does (also when its sync group moves it); a
//!   master hearing a lower priority
//!   advertises at once and announces its addresses again (both heal a split brain, and
//!   the winner learns of it whichever heard the other first); on a clean stop a master
//!   sends one advertisement with priority 0;
//! - priority 255 (the address owner) or `state MASTER` starts as master at once, as
//!   keepalived does; otherwise the router starts as backup.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not started, or stopped.
    Init,
    Backup,
    Master,
    /// A tracked script or interface failed (weight 0): no adverts, no addresses.
    Fault,
}

impl State {
    /// keepalived's spelling (`fnatctl vrrp`, notify scripts).
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// What one virtual router is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// 1..=255: 255 owns the addresses; 0 is reserved for the master's stop.
    pub priority: u8,
    /// This router's Advertisement_Interval.
    pub advert_int: Duration,
    /// `true` unless `nopreempt`.
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// `state MASTER`: take the addresses at start-up without waiting.
    pub start_as_master: bool,
    /// This router's primary address on the interface (the tie-break between equal
    /// priorities).
    pub primary: IpAddr,
}

/// An advertisement as the machine needs it (already validated by [`crate::packet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard {
    pub priority: u8,
    /// The sender's primary address (the IP source).
    pub source: IpAddr,
    /// The sender's advertisement interval (v3: carried in the advert; v2: whole seconds).
    pub advert_int: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send one advertisement with this priority (0 on a clean stop).
    SendAdvert { priority: u8 },
    /// Became master: own the virtual addresses, send gratuitous ARP, run notify_master.
    BecameMaster,
    /// Became backup: stop owning the addresses, run notify_backup.
    BecameBackup,
    /// Stopped: run notify_stop.
    Stopped,
    /// Went to FAULT: stop owning the addresses, run notify_fault.
    BecameFault,
    /// A master heard a lower-priority master (a split brain healing): announce the
    /// addresses again by gratuitous ARP, as keepalived does, so hosts that learned the
    /// other's MAC come back.
    Reannounce,
}

pub struct Machine {
    params: Params,
    state: State,
    started_at: Duration,
    /// The master's interval as last heard (own interval until then).
    master_advert_int: Duration,
    /// The primary address of the master, as last heard (own address when master).
    master: Option<IpAddr>,
    /// Backup: when the master is declared down. Master: when the next advert is due.
    timer: Option<Duration>,
    /// When a lower-priority master was first heard (preempt_delay).
    lower_since: Option<Duration>,
    /// The Master_Down_Timer ran out and the sync group holds this backup back.
    held: bool,
}

impl Machine {
    pub fn new(params: Params) -> Machine {
        let master_advert_int = params.advert_int;
        Machine {
            params,
            state: State::Init,
            started_at: Duration::ZERO,
            master_advert_int,
            master: None,
            timer: None,
            lower_since: None,
            held: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current master's primary address, when known.
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    /// When [`Machine::poll`] must run next.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timer
    }

    pub fn skew_time(&self) -> Duration {
        self.master_advert_int * (256 - u32::from(self.params.priority)) / 256
    }

    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_advert_int + self.skew_time()
    }

    /// Startup event.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        self.started_at = now;
        self.lower_since = None;
        self.master_advert_int = self.params.advert_int;
        if self.params.priority == 255 || self.params.start_as_master {
            self.become_master(now)
        } else {
            self.become_backup(now, None)
        }
    }

    /// Shutdown event: a master sends priority 0 so a backup takes over after Skew_Time.
    pub fn stop(&mut self, _now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.state == State::Master {
            actions.push(Action::SendAdvert { priority: 0 });
        }
        if self.state != State::Init {
            actions.push(Action::Stopped);
        }
        self.state = State::Init;
        self.timer = None;
        self.master = None;
        actions
    }

    /// Timers: a backup's Master_Down_Timer, a master's Adver_Timer.
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        match (self.state, self.timer) {
            (State::Backup, Some(t)) if now >= t => self.become_master(now),
            (State::Master, Some(t)) if now >= t => {
                self.timer = Some(now + self.params.advert_int);
                vec![Action::SendAdvert {
                    priority: self.params.priority,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// An advertisement for this virtual router, already checked.
    pub fn heard(&mut self, now: Duration, advert: Heard) -> Vec<Action> {
        match self.state {
            State::Init | State::Fault => Vec::new(),
            State::Backup => {
                if advert.priority == 0 {
                    self.timer = Some(now + self.skew_time());
                    return Vec::new();
                }
                if advert.priority < self.params.priority && self.params.preempt {
                    let since = *self.lower_since.get_or_insert(now);
                    let delay = self.params.preempt_delay;
                    let may = now >= self.started_at + delay && now >= since + delay;
                    if may {
                        // Discard: Master_Down_Timer runs out and this router takes over.
                        return Vec::new();
                    }
                } else {
                    self.lower_since = None;
                }
                self.master_advert_int = advert.advert_int;
                self.master = Some(advert.source);
                self.timer = Some(now + self.master_down_interval());
                self.held = false;
                Vec::new()
            }
            State::Master => {
                if advert.priority == 0 {
                    self.timer = Some(now + self.params.advert_int);
                    return vec![Action::SendAdvert {
                        priority: self.params.priority,
                    }];
                }
                let higher = advert.priority > self.params.priority
                    || (advert.priority == self.params.priority
                        && ip_greater(advert.source, self.params.primary));
                if higher {
                    self.master_advert_int = advert.advert_int;
                    self.lower_since = None;
                    // One last advert as master: two masters (a split brain) heal in a
                    // race, and whichever hears the other first yields; this one tells
                    // the winner there was another master, so it announces its addresses
                    // again (hosts may have learned this director's MAC meanwhile).
                    let mut actions = vec![Action::SendAdvert {
                        priority: self.params.priority,
                    }];
                    actions.extend(self.become_backup(now, Some(advert.source)));
                    actions
                } else {
                    // The other master yields on hearing ours: advertise now, and re-claim
                    // the addresses it may have announced.
                    self.timer = Some(now + self.params.advert_int);
                    vec![
                        Action::SendAdvert {
                            priority: self.params.priority,
                        },
                        Action::Reannounce,
                    ]
                }
            }
        }
    }

    /// The instance's `vrrp_sync_group` moved to `to` (another member took over or gave up):
    /// follow it at once. Nothing when already there, or stopped.
    pub fn follow(&mut self, now: Duration, to: State) -> Vec<Action> {
        match (self.state, to) {
            (State::Backup, State::Master) => self.become_master(now),
            (State::Master, State::Backup) => {
                // One last advert as master, as when yielding on its own: after a split
                // brain the group yields because one member heard the winner, and the
                // winner's instances on the other links hear of this master only from
                // this advert, which makes them announce their addresses again (else
                // hosts there keep this director's MAC for them).
                let master = self.master.filter(|m| *m != self.params.primary);
                let mut actions = vec![Action::SendAdvert {
                    priority: self.params.priority,
                }];
                actions.extend(self.become_backup(now, master));
                actions
            }
            (State::Master | State::Backup, State::Fault) => self.fault(now),
            (State::Fault, State::Backup) => self.recover(now),
            _ => Vec::new(),
        }
    }

    /// A tracked script or interface failed: a master sends priority 0 (its backup takes
    /// over after Skew_Time) and gives up the addresses; nothing is sent until [`recover`].
    ///
    /// [`recover`]: Machine::recover
    pub fn fault(&mut self, _now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        match self.state {
            State::Init | State::Fault => return actions,
            State::Master => actions.push(Action::SendAdvert { priority: 0 }),
            State::Backup => {}
        }
        self.state = State::Fault;
        self.timer = None;
        self.master = None;
        self.held = false;
        actions.push(Action::BecameFault);
        actions
    }

    /// Out of FAULT: back to backup (an election follows, as at start-up).
    pub fn recover(&mut self, now: Duration) -> Vec<Action> {
        if self.state != State::Fault {
            return Vec::new();
        }
        self.master_advert_int = self.params.advert_int;
        self.become_backup(now, None)
    }

    /// A reloaded configuration: new parameters, the state kept (a master stays master, a
    /// backup keeps its master and timer; the next advert carries the new values).
    pub fn reconfigure(&mut self, params: Params) {
        self.params = params;
    }

    /// The effective priority (tracking's weights applied): the adverts carry it and the
    /// elections compare it from now on.
    pub fn set_priority(&mut self, priority: u8) {
        self.params.priority = priority;
    }

    /// A backup whose Master_Down_Timer ran out may not take over yet (another member of
    /// its sync group still hears a master): look again after `wait`.
    pub fn hold(&mut self, now: Duration, wait: Duration) {
        if self.state == State::Backup {
            self.timer = Some(now + wait);
            self.held = true;
        }
    }

    /// A backup that has heard a master whose Master_Down_Timer is still running.
    pub fn hears_master(&self, now: Duration) -> bool {
        self.state == State::Backup
            && !self.held
            && self.master.is_some()
            && self.timer.is_some_and(|t| now < t)
    }

    fn become_master(&mut self, now: Duration) -> Vec<Action> {
        self.state = State::Master;
        self.held = false;
        self.master = Some(self.params.primary);
        self.master_advert_int = self.params.advert_int;
        self.timer = Some(now + self.params.advert_int);
        vec![
            Action::SendAdvert {
                priority: self.params.priority,
            },
            Action::BecameMaster,
        ]
    }

    fn become_backup(&mut self, now: Duration, master: Option<IpAddr>) -> Vec<Action> {
        self.state = State::Backup;
        self.held = false;
        self.master = master;
        self.timer = Some(now + self.master_down_interval());
        vec![Action::BecameBackup]
    }
}

/// RFC 5798: the larger primary address wins a tie (compared as unsigned integers).
fn ip_greater(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    fn params(priority: u8) -> Params {
        Params {
            priority,
            advert_int: s(1.0),
            preempt: true,
            preempt_delay: Duration::ZERO,
            start_as_master: false,
            primary: ip(2),
        }
    }

    fn heard(priority: u8, last: u8) -> Heard {
        Heard {
            priority,
            source: ip(last),
            advert_int: s(1.0),
        }
    }

    const SEND100: Action = Action::SendAdvert { priority: 100 };

    #[test]
    fn fault_sends_priority_zero_from_a_master_and_recovers_as_backup() {
        let mut m = Machine::new(Params {
            start_as_master: true,
            ..params(100)
        });
        m.start(s(0.0));
        assert_eq!(
            m.fault(s(1.0)),
            [Action::SendAdvert { priority: 0 }, Action::BecameFault]
        );
        assert_eq!(m.state(), State::Fault);
        // In FAULT: deaf, silent, no timer.
        assert!(m.heard(s(1.5), heard(50, 1)).is_empty());
        assert_eq!(m.next_deadline(), None);
        assert!(m.poll(s(9.0)).is_empty());
        assert_eq!(m.recover(s(10.0)), [Action::BecameBackup]);
        assert_eq!(m.next_deadline(), Some(s(10.0) + m.master_down_interval()));
        // A backup faults without sending.
        assert_eq!(m.fault(s(11.0)), [Action::BecameFault]);
    }

    #[test]
    fn a_lowered_priority_is_advertised_and_lets_a_preempting_backup_win() {
        let mut m = Machine::new(Params {
            start_as_master: true,
            ..params(100)
        });
        m.start(s(0.0));
        m.set_priority(80);
        assert_eq!(m.poll(s(1.0)), [Action::SendAdvert { priority: 80 }]);
        // A 90 now outranks it.
        assert_eq!(
            m.heard(s(1.1), heard(90, 1)),
            [Action::SendAdvert { priority: 80 }, Action::BecameBackup]
        );
    }

    #[test]
    fn sync_group_moves_are_followed_and_held_backups_do_not_claim_to_hear() {
        let mut m = Machine::new(params(90));
        m.start(s(0.0));
        m.heard(s(0.5), heard(100, 1));
        assert!(m.hears_master(s(1.0)));
        // Another member took over: follow at once.
        assert_eq!(
            m.follow(s(1.0), State::Master),
            [Action::SendAdvert { priority: 90 }, Action::BecameMaster]
        );
        assert!(m.follow(s(1.1), State::Master).is_empty());
        // Moved back by its group while master: one last advert first, so a master on
        // this link hears there was another (split brain healing) and announces again.
        assert_eq!(
            m.follow(s(2.0), State::Backup),
            [Action::SendAdvert { priority: 90 }, Action::BecameBackup]
        );
        assert!(m.follow(s(2.1), State::Backup).is_empty());
        // Its timer ran out but the group holds it: it must not hold the others back.
        m.hold(s(6.0), s(0.02));
        assert!(!m.hears_master(s(6.0)));
        assert_eq!(m.next_deadline(), Some(s(6.02)));
        m.heard(s(6.01), heard(100, 1));
        assert!(m.hears_master(s(6.01)));
    }

    #[test]
    fn master_down_interval_is_three_adverts_plus_skew() {
        let mut m = Machine::new(params(100));
        m.start(s(0.0));
        // skew = (256 - 100) / 256 s = 0.609375 s
        assert_eq!(m.skew_time(), Duration::from_micros(609_375));
        assert_eq!(m.master_down_interval(), Duration::from_micros(3_609_375));
        assert_eq!(m.next_deadline(), Some(Duration::from_micros(3_609_375)));
    }

    #[test]
    fn a_lone_backup_becomes_master_after_master_down_interval_and_adverts_every_interval() {
        let mut m = Machine::new(params(100));
        assert_eq!(m.start(s(0.0)), [Action::BecameBackup]);
        assert_eq!(m.state(), State::Backup);
        assert!(m.poll(s(3.6)).is_empty());
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.poll(s(3.61)), [SEND100, Action::BecameMaster]);
        assert_eq!(m.state(), State::Master);
        assert_eq!(m.master(), Some(ip(2)));
        assert!(m.poll(s(4.6)).is_empty());
        assert_eq!(m.poll(s(4.61)), [SEND100]);
        assert_eq!(m.next_deadline(), Some(s(5.61)));
    }

    #[test]
    fn adverts_from_a_higher_master_keep_a_backup_backup() {
        let mut m = Machine::new(params(90));
        m.start(s(0.0));
        for t in 1..20 {
            m.heard(s(t as f64), heard(100, 1));
            assert!(m.poll(s(t as f64 + 0.5)).is_empty());
        }
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.master(), Some(ip(1)));
        // The master dies (kill -9) after its advert at t=19: take over at
        // 19 + 3 + (256-90)/256 = 22.6484375 s, not before.
        assert!(m.poll(s(22.648)).is_empty());
        assert_eq!(
            m.poll(s(22.6485)),
            [Action::SendAdvert { priority: 90 }, Action::BecameMaster]
        );
    }

    #[test]
    fn priority_zero_cuts_the_wait_to_skew_time() {
        let mut m = Machine::new(params(90));
        m.start(s(0.0));
        m.heard(s(1.0), heard(100, 1));
        assert!(m.heard(s(1.5), heard(0, 1)).is_empty());
        // skew = 166/256 s = 0.6484375 s
        assert_eq!(m.next_deadline(), Some(s(2.1484375)));
        assert!(m.poll(s(2.148)).is_empty());
        assert_eq!(m.poll(s(2.1485)).last(), Some(&Action::BecameMaster));
    }

    #[test]
    fn a_clean_stop_sends_priority_zero_once_and_goes_quiet() {
        let mut m = Machine::new(params(100));
        m.start(s(0.0));
        m.poll(s(4.0));
        assert_eq!(m.state(), State::Master);
        assert_eq!(
            m.stop(s(5.0)),
            [Action::SendAdvert { priority: 0 }, Action::Stopped]
        );
        assert_eq!(m.state(), State::Init);
        assert_eq!(m.next_deadline(), None);
        assert!(m.poll(s(100.0)).is_empty());
        assert!(m.heard(s(100.0), heard(50, 1)).is_empty());
        // A backup's stop sends nothing.
        let mut b = Machine::new(params(90));
        b.start(s(0.0));
        assert_eq!(b.stop(s(1.0)), [Action::Stopped]);
    }

    #[test]
    fn preempt_takes_over_from_a_lower_priority_master() {
        let mut m = Machine::new(params(100));
        m.start(s(0.0));
        for t in 1..4 {
            // Lower-priority adverts are discarded: the timer set at start runs out.
            assert!(m.heard(s(t as f64), heard(90, 1)).is_empty());
        }
        assert_eq!(m.poll(s(3.61)), [SEND100, Action::BecameMaster]);
        // The old master hears 100 > 90 and yields (checked from its side).
        let mut old = Machine::new(Params {
            primary: ip(1),
            ..params(90)
        });
        old.start(s(0.0));
        old.poll(s(10.0));
        assert_eq!(old.state(), State::Master);
        assert_eq!(
            old.heard(s(10.5), heard(100, 2)),
            [Action::SendAdvert { priority: 90 }, Action::BecameBackup]
        );
        assert_eq!(old.master(), Some(ip(2)));
    }

    #[test]
    fn nopreempt_accepts_a_lower_priority_master() {
        let mut m = Machine::new(Params {
            preempt: false,
            ..params(100)
        });
        m.start(s(0.0));
        for t in 1..30 {
            m.heard(s(t as f64), heard(90, 1));
            assert!(m.poll(s(t as f64 + 0.9)).is_empty());
        }
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.master(), Some(ip(1)));
    }

    #[test]
    fn preempt_delay_holds_preemption_back_from_first_hearing_the_lower_master() {
        let mut m = Machine::new(Params {
            preempt_delay: s(10.0),
            ..params(100)
        });
        m.start(s(0.0));
        // Lower master heard from t=5: no preemption before t=15.
        for t in 5..15 {
            m.heard(s(t as f64), heard(90, 1));
            assert!(m.poll(s(t as f64 + 0.5)).is_empty(), "t={t}");
        }
        assert_eq!(m.state(), State::Backup);
        // From t=15 its adverts are discarded: takeover at 14 + 3.609375.
        m.heard(s(15.0), heard(90, 1));
        m.heard(s(16.0), heard(90, 1));
        assert!(m.poll(s(17.6)).is_empty());
        assert_eq!(m.poll(s(17.61)).last(), Some(&Action::BecameMaster));
    }

    #[test]
    fn equal_priorities_are_won_by_the_higher_primary_address() {
        let mut low = Machine::new(Params {
            primary: ip(1),
            ..params(100)
        });
        low.start(s(0.0));
        low.poll(s(4.0));
        assert_eq!(
            low.heard(s(4.5), heard(100, 2)),
            [SEND100, Action::BecameBackup]
        );
        let mut high = Machine::new(params(100));
        high.start(s(0.0));
        high.poll(s(4.0));
        // The loser of a tie (or a lower priority) yields on hearing the winner, which
        // advertises at once and announces its addresses again (split brain healing).
        assert_eq!(
            high.heard(s(4.5), heard(100, 1)),
            [SEND100, Action::Reannounce]
        );
        assert_eq!(high.state(), State::Master);
        assert_eq!(high.next_deadline(), Some(s(5.5)));
    }

    #[test]
    fn owner_and_state_master_start_as_master() {
        let mut owner = Machine::new(params(255));
        assert_eq!(
            owner.start(s(0.0)),
            [Action::SendAdvert { priority: 255 }, Action::BecameMaster]
        );
        let mut hinted = Machine::new(Params {
            start_as_master: true,
            ..params(100)
        });
        hinted.start(s(0.0));
        assert_eq!(hinted.state(), State::Master);
        // ...and still yields to a higher priority.
        assert_eq!(
            hinted.heard(s(0.5), heard(150, 1)),
            [SEND100, Action::BecameBackup]
        );
    }

    #[test]
    fn a_master_answers_priority_zero_with_an_advert() {
        let mut m = Machine::new(params(100));
        m.start(s(0.0));
        m.poll(s(4.0));
        assert_eq!(m.heard(s(4.2), heard(0, 1)), [SEND100]);
        assert_eq!(m.next_deadline(), Some(s(5.2)));
    }

    #[test]
    fn a_backup_learns_the_masters_interval_for_master_down_interval() {
        // v3 sub-second: master adverts every 100 ms.
        let mut m = Machine::new(params(90));
        m.start(s(0.0));
        m.heard(
            s(1.0),
            Heard {
                advert_int: Duration::from_millis(100),
                ..heard(100, 1)
            },
        );
        // 3 × 0.1 + 0.1 × 166/256 = 0.36484375 s
        assert_eq!(m.next_deadline(), Some(s(1.36484375)));
    }
}
