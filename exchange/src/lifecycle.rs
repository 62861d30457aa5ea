//! The business lifecycle of one document at one recipient (QCVN 102:2016 §3 status codes):
//! the pure transition rules, shared by the node that SENDS a status (which refuses nonsense)
//! and the node that RECEIVES statuses (which replays them in timestamp order and records
//! what does not fit as anomalies).
//!
//! Two machines run side by side per (document, recipient):
//! - the progression `01 → (02 | 03) → 04 → 05 → 06`, sent by the recipient: 01 is automatic
//!   and first; 02 and 03 exclude each other; 04–06 need 03; steps may be skipped but never
//!   taken backwards;
//! - the request: 13 from the original sender (take back), answered by the recipient with 15
//!   (agreed: the document is taken back, no further progression) or 16 (refused: the sender
//!   may ask again). A revoke, update or replace is a *document* packet (BussinessDocType
//!   1/2/3) that is itself a request about an earlier document: its own lifecycle starts with
//!   the request pending, and 15/16 answer it (a replacement or update may then be processed
//!   with 03–06 like any document; the agreement's effect falls on the original, see
//!   [`ActionKind`]).
//!
//! Invariants:
//! - A code already applied is a *repeat*: harmless, it changes nothing, and the sending node
//!   sends no second packet for it (the first one stands).
//! - Every refusal names the code asked for, what it needs, and where the document is.
//! - Nothing here reads clocks or storage: callers pass events in, decisions come out.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use edxml::{BussinessDocType, StatusCode};

/// A document packet that asks something about an earlier document (BussinessDocType 1/2/3),
/// answered by 15 (agree) or 16 (refuse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// 1 — thu hồi: the original is withdrawn.
    Revoke,
    /// 2 — cập nhật: the original's metadata or recipients change; the update carries the
    /// whole new version.
    Update,
    /// 3 — thay thế: a new document (its own number) replaces the original.
    Replace,
}

impl ActionKind {
    /// The action a BussinessDocType asks for (`None` for 0, a new document).
    pub fn of(t: BussinessDocType) -> Option<ActionKind> {
        match t {
            BussinessDocType::New => None,
            BussinessDocType::Revoke => Some(ActionKind::Revoke),
            BussinessDocType::Update => Some(ActionKind::Update),
            BussinessDocType::Replace => Some(ActionKind::Replace),
        }
    }

    pub fn doc_type(self) -> BussinessDocType {
        match self {
            ActionKind::Revoke => BussinessDocType::Revoke,
            ActionKind::Update => BussinessDocType::Update,
            ActionKind::Replace => BussinessDocType::Replace,
        }
    }

    /// Machine name: `revoke`, `update`, `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Revoke => "revoke",
            ActionKind::Update => "update",
            ActionKind::Replace => "replace",
        }
    }

    /// The state of the original once a recipient agreed (15): `revoked`, `updated`,
    /// `replaced`. An update that removed the recipient marks its original `removed`.
    pub fn mark(self, removed: bool) -> &'static str {
        match (self, removed) {
            (_, true) => "removed",
            (ActionKind::Revoke, _) => "revoked",
            (ActionKind::Update, _) => "updated",
            (ActionKind::Replace, _) => "replaced",
        }
    }

    /// Whether the original is closed once agreed: nothing but repeats may follow on it.
    pub fn closes_original(self, removed: bool) -> bool {
        removed || self != ActionKind::Update
    }
}

/// Where the progression stands (the furthest valid business status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Stage {
    /// Nothing received yet (not even 01).
    #[default]
    Nothing,
    Received,
    Rejected,
    Accepted,
    Assigned,
    Processing,
    Completed,
}

impl Stage {
    /// The stage a progression code leads to (`None` for 13/15/16).
    pub fn of(code: StatusCode) -> Option<Stage> {
        Some(match code {
            StatusCode::Received => Stage::Received,
            StatusCode::Rejected => Stage::Rejected,
            StatusCode::Accepted => Stage::Accepted,
            StatusCode::Assigned => Stage::Assigned,
            StatusCode::Processing => Stage::Processing,
            StatusCode::Completed => Stage::Completed,
            StatusCode::TakeBack | StatusCode::Agreed | StatusCode::Refused => return None,
        })
    }

    /// The code of this stage (`None` for [`Stage::Nothing`]).
    pub fn code(self) -> Option<StatusCode> {
        Some(match self {
            Stage::Nothing => return None,
            Stage::Received => StatusCode::Received,
            Stage::Rejected => StatusCode::Rejected,
            Stage::Accepted => StatusCode::Accepted,
            Stage::Assigned => StatusCode::Assigned,
            Stage::Processing => StatusCode::Processing,
            Stage::Completed => StatusCode::Completed,
        })
    }

    /// Machine name, also the inbox filter value: `new` is a document at 01.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Nothing => "nothing",
            Stage::Received => "new",
            Stage::Rejected => "rejected",
            Stage::Accepted => "accepted",
            Stage::Assigned => "assigned",
            Stage::Processing => "processing",
            Stage::Completed => "completed",
        }
    }

    /// "01 (received)", or "no status yet".
    pub fn describe(self) -> String {
        match self.code() {
            Some(c) => format!("{} ({})", c.as_str(), c.label_en()),
            None => "none (no status yet)".to_string(),
        }
    }
}

/// Where the take-back request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TakeBackState {
    #[default]
    None,
    /// 13 received / sent, not answered yet.
    Requested,
    /// 15: the document is taken back.
    Agreed,
    /// 16: the recipient keeps the document.
    Refused,
}

impl TakeBackState {
    pub fn as_str(self) -> &'static str {
        match self {
            TakeBackState::None => "none",
            TakeBackState::Requested => "requested",
            TakeBackState::Agreed => "agreed",
            TakeBackState::Refused => "refused",
        }
    }
}

/// What to do with a code that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A real step: send it (or, receiving, apply it).
    Apply,
    /// Already there: nothing changes, no second packet.
    Repeat,
}

/// A code that does not fit where the document is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("status 01 is sent automatically when the document is stored; a clerk never sends it")]
    ReceivedIsAutomatic,
    #[error("status {code} needs {needs} first; the document is at {at}")]
    Needs {
        code: &'static str,
        needs: &'static str,
        at: String,
    },
    #[error(
        "status {code} is refused: the document was already {done}, and 02 (rejected) and 03 \
         (accepted) exclude each other"
    )]
    Exclusive { code: &'static str, done: String },
    #[error("status {code} would go backwards: the document is already at {at}")]
    Backwards { code: &'static str, at: String },
    #[error(
        "status {code} is refused: the document was rejected (02); nothing follows a rejection"
    )]
    AfterRejection { code: &'static str },
    #[error("status {code} is refused: the sender took the document back (13 agreed with 15)")]
    TakenBack { code: &'static str },
    #[error(
        "status {code} answers a request (a take-back 13, or a revoke, update or replace), and \
         none is pending"
    )]
    NoRequest { code: &'static str },
    #[error("status {code} is refused: the request was already answered with {answer}")]
    AlreadyAnswered {
        code: &'static str,
        answer: &'static str,
    },
    #[error("status 13 is refused: the recipient rejected the document (02); nothing to take back")]
    TakeBackAfterRejection,
    #[error(
        "status 13 is refused: this document is itself a revoke/update/replace request; send a \
         new request about the original instead"
    )]
    TakeBackOfRequest,
}

/// The lifecycle of one document at one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub stage: Stage,
    /// The request machine: a 13 (take back) on an ordinary document, or the document's own
    /// request when it is an action (`action` set: pending from the start).
    pub take_back: TakeBackState,
    /// Progression codes applied so far.
    pub seen: BTreeSet<StatusCode>,
    /// Set when this document is itself a revoke/update/replace request.
    pub action: Option<ActionKind>,
}

impl Lifecycle {
    /// A document just stored by its recipient (01 sent).
    pub fn received() -> Lifecycle {
        Lifecycle {
            stage: Stage::Received,
            take_back: TakeBackState::None,
            seen: BTreeSet::from([StatusCode::Received]),
            action: None,
        }
    }

    /// The lifecycle of a document packet: an ordinary one (`action` `None`) starts empty; a
    /// revoke/update/replace starts with its request pending.
    pub fn start(action: Option<ActionKind>) -> Lifecycle {
        Lifecycle {
            take_back: if action.is_some() {
                TakeBackState::Requested
            } else {
                TakeBackState::None
            },
            action,
            ..Lifecycle::default()
        }
    }

    /// The state name shown to clerks and used by the inbox filter: `taken_back` once agreed,
    /// otherwise the stage (`new`, `accepted`, …).
    /// A request document (revoke/update/replace) answered but not processed further reads
    /// `agreed` or `refused`.
    pub fn state_name(&self) -> &'static str {
        match (self.action, self.take_back) {
            (None, TakeBackState::Agreed) => "taken_back",
            (Some(_), TakeBackState::Agreed) if self.stage <= Stage::Received => "agreed",
            (Some(_), TakeBackState::Refused) if self.stage <= Stage::Received => "refused",
            _ => self.stage.as_str(),
        }
    }

    /// Whether `code` may follow, as sent by a clerk at the node that sends it (01 refused).
    pub fn check_send(&self, code: StatusCode) -> Result<Decision, TransitionError> {
        if code == StatusCode::Received {
            return Err(TransitionError::ReceivedIsAutomatic);
        }
        self.check(code)
    }

    /// Whether `code` may follow (01 allowed: receiving side).
    pub fn check(&self, code: StatusCode) -> Result<Decision, TransitionError> {
        let name = code.as_str();
        let at = || self.stage.describe();
        match code {
            StatusCode::TakeBack if self.action.is_some() => {
                Err(TransitionError::TakeBackOfRequest)
            }
            StatusCode::TakeBack => match self.take_back {
                TakeBackState::Requested => Ok(Decision::Repeat),
                TakeBackState::Agreed => Ok(Decision::Repeat),
                TakeBackState::None | TakeBackState::Refused => {
                    if self.stage == Stage::Rejected {
                        Err(TransitionError::TakeBackAfterRejection)
                    } else {
                        Ok(Decision::Apply)
                    }
                }
            },
            StatusCode::Agreed | StatusCode::Refused => {
                let (same, other) = match code {
                    StatusCode::Agreed => (TakeBackState::Agreed, TakeBackState::Refused),
                    _ => (TakeBackState::Refused, TakeBackState::Agreed),
                };
                match self.take_back {
                    TakeBackState::Requested => Ok(Decision::Apply),
                    t if t == same => Ok(Decision::Repeat),
                    t if t == other => Err(TransitionError::AlreadyAnswered {
                        code: name,
                        answer: match other {
                            TakeBackState::Agreed => "15 (agreed)",
                            _ => "16 (refused)",
                        },
                    }),
                    _ => Err(TransitionError::NoRequest { code: name }),
                }
            }
            _ => {
                if self.seen.contains(&code) {
                    return Ok(Decision::Repeat);
                }
                if self.take_back == TakeBackState::Agreed && self.action.is_none() {
                    return Err(TransitionError::TakenBack { code: name });
                }
                let target = Stage::of(code).unwrap_or(Stage::Nothing);
                match code {
                    StatusCode::Received => {
                        // Only ever first; a late 01 after later steps changes nothing.
                        Ok(if self.stage == Stage::Nothing {
                            Decision::Apply
                        } else {
                            Decision::Repeat
                        })
                    }
                    StatusCode::Rejected | StatusCode::Accepted => match self.stage {
                        Stage::Nothing | Stage::Received => Ok(Decision::Apply),
                        Stage::Rejected => Err(TransitionError::Exclusive {
                            code: name,
                            done: "rejected (02)".into(),
                        }),
                        _ => Err(TransitionError::Exclusive {
                            code: name,
                            done: format!("accepted (03) and is at {}", at()),
                        }),
                    },
                    _ => match self.stage {
                        Stage::Rejected => Err(TransitionError::AfterRejection { code: name }),
                        Stage::Nothing | Stage::Received => Err(TransitionError::Needs {
                            code: name,
                            needs: "03 (accepted)",
                            at: at(),
                        }),
                        s if s > target => Err(TransitionError::Backwards {
                            code: name,
                            at: at(),
                        }),
                        _ => Ok(Decision::Apply),
                    },
                }
            }
        }
    }

    /// Checks and applies `code`; on a refusal nothing changes.
    pub fn apply(&mut self, code: StatusCode) -> Result<Decision, TransitionError> {
        let d = self.check(code)?;
        if d == Decision::Apply {
            match code {
                StatusCode::TakeBack => self.take_back = TakeBackState::Requested,
                StatusCode::Agreed => self.take_back = TakeBackState::Agreed,
                StatusCode::Refused => self.take_back = TakeBackState::Refused,
                other => {
                    self.seen.insert(other);
                    if let Some(s) = Stage::of(other) {
                        self.stage = self.stage.max(s);
                    }
                }
            }
        }
        Ok(d)
    }
}

/// One replayed event and what the rules made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Index in the input.
    pub index: usize,
    pub outcome: Result<Decision, TransitionError>,
}

/// The result of replaying received statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    pub lifecycle: Lifecycle,
    /// In replay order.
    pub events: Vec<Replayed>,
}

impl Replay {
    /// The events the rules refused, with why.
    pub fn anomalies(&self) -> impl Iterator<Item = (usize, &TransitionError)> {
        self.events
            .iter()
            .filter_map(|e| e.outcome.as_ref().err().map(|err| (e.index, err)))
    }
}

/// Replays `(code, unix time)` events in timestamp order (ties: in code order, which is the
/// order the rules need), whatever order they arrived in. Unknown codes are left out by the
/// caller. Refused events change nothing and are reported.
pub fn replay(events: &[(StatusCode, i128)]) -> Replay {
    replay_from(Lifecycle::default(), events)
}

/// [`replay`] from a given start ([`Lifecycle::start`]).
pub fn replay_from(start: Lifecycle, events: &[(StatusCode, i128)]) -> Replay {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].1, events[i].0, i));
    let mut r = Replay {
        lifecycle: start,
        events: Vec::new(),
    };
    for i in order {
        let outcome = r.lifecycle.apply(events[i].0);
        r.events.push(Replayed { index: i, outcome });
    }
    r
}

/// Whether `code` is sent by the document's original sender (13) rather than its recipient.
pub fn sent_by_original_sender(code: StatusCode) -> bool {
    code == StatusCode::TakeBack
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatusCode::*;

    fn at(codes: &[StatusCode]) -> Lifecycle {
        let mut l = Lifecycle::default();
        for c in codes {
            l.apply(*c).unwrap();
        }
        l
    }

    /// The expected decision for a progression code sent by a clerk after `history`.
    fn expected(history: &[StatusCode], code: StatusCode) -> Option<Decision> {
        if code == Received {
            return None;
        }
        if history.contains(&code) {
            return Some(Decision::Repeat);
        }
        let stage = history
            .iter()
            .filter_map(|c| Stage::of(*c))
            .max()
            .unwrap_or_default();
        let ok = match code {
            Rejected | Accepted => stage <= Stage::Received,
            _ => stage >= Stage::Accepted && stage <= Stage::of(code).unwrap(),
        };
        ok.then_some(Decision::Apply)
    }

    #[test]
    fn every_progression_path_is_checked_against_the_table() {
        // Every valid history (01 then any increasing subsequence respecting the rules), every
        // next progression code.
        let steps = [Rejected, Accepted, Assigned, Processing, Completed];
        let mut histories: Vec<Vec<StatusCode>> = vec![vec![Received]];
        let mut i = 0;
        while i < histories.len() {
            let h = histories[i].clone();
            let l = at(&h);
            for c in steps {
                if l.check_send(c) == Ok(Decision::Apply) {
                    let mut next = h.clone();
                    next.push(c);
                    histories.push(next);
                }
            }
            i += 1;
        }
        // 01, 01-02, 01-03, and every subset of {04,05,06} after 03: 1 + 1 + 8.
        assert_eq!(histories.len(), 10, "{histories:?}");
        for h in &histories {
            let l = at(h);
            for c in [
                Received, Rejected, Accepted, Assigned, Processing, Completed,
            ] {
                let got = l.check_send(c).ok();
                assert_eq!(got, expected(h, c), "after {h:?} then {c:?}");
            }
        }
    }

    #[test]
    fn refusals_say_what_is_needed_and_where_the_document_is() {
        let l = Lifecycle::received();
        let e = l.check_send(Processing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "status 05 needs 03 (accepted) first; the document is at 01 (received)"
        );
        let e = l.check_send(Received).unwrap_err();
        assert_eq!(e, TransitionError::ReceivedIsAutomatic);
        let l = at(&[Received, Rejected]);
        assert!(matches!(
            l.check_send(Accepted),
            Err(TransitionError::Exclusive { .. })
        ));
        assert!(matches!(
            l.check_send(Assigned),
            Err(TransitionError::AfterRejection { .. })
        ));
        let l = at(&[Received, Accepted, Processing]);
        let e = l.check_send(Assigned).unwrap_err();
        assert_eq!(
            e.to_string(),
            "status 04 would go backwards: the document is already at 05 (processing)"
        );
        let e = l.check_send(Rejected).unwrap_err();
        assert!(
            e.to_string().contains("02 (rejected) and 03 (accepted)"),
            "{e}"
        );
        assert_eq!(l.check_send(Accepted), Ok(Decision::Repeat));
        assert_eq!(l.state_name(), "processing");
    }

    #[test]
    fn take_back_requests_and_answers() {
        let mut l = at(&[Received, Accepted]);
        assert!(matches!(
            l.check(Agreed),
            Err(TransitionError::NoRequest { .. })
        ));
        assert!(matches!(
            l.check(Refused),
            Err(TransitionError::NoRequest { .. })
        ));
        assert_eq!(l.apply(TakeBack), Ok(Decision::Apply));
        assert_eq!(l.apply(TakeBack), Ok(Decision::Repeat));
        assert_eq!(l.take_back, TakeBackState::Requested);
        // Refused: progression continues, the sender may ask again.
        assert_eq!(l.apply(Refused), Ok(Decision::Apply));
        assert_eq!(l.apply(Refused), Ok(Decision::Repeat));
        assert!(matches!(
            l.check(Agreed),
            Err(TransitionError::AlreadyAnswered { .. })
        ));
        assert_eq!(l.apply(Assigned), Ok(Decision::Apply));
        assert_eq!(l.apply(TakeBack), Ok(Decision::Apply));
        assert_eq!(l.apply(Agreed), Ok(Decision::Apply));
        assert_eq!(l.state_name(), "taken_back");
        assert!(matches!(
            l.check(Refused),
            Err(TransitionError::AlreadyAnswered { .. })
        ));
        assert_eq!(l.check(Agreed), Ok(Decision::Repeat));
        assert_eq!(l.check(TakeBack), Ok(Decision::Repeat));
        assert!(matches!(
            l.check_send(Processing),
            Err(TransitionError::TakenBack { .. })
        ));
        // A repeat of an earlier step stays harmless even after the take-back.
        assert_eq!(l.check_send(Assigned), Ok(Decision::Repeat));

        let l = at(&[Received, Rejected]);
        assert_eq!(
            l.check(TakeBack),
            Err(TransitionError::TakeBackAfterRejection)
        );
        // A take-back may be asked before the recipient's clerk did anything (even before 01).
        assert_eq!(Lifecycle::default().check(TakeBack), Ok(Decision::Apply));
        assert_eq!(Lifecycle::received().check(TakeBack), Ok(Decision::Apply));
    }

    #[test]
    fn a_request_document_starts_pending_and_its_agreement_does_not_stop_processing() {
        for kind in [ActionKind::Revoke, ActionKind::Update, ActionKind::Replace] {
            let mut l = Lifecycle::start(Some(kind));
            assert_eq!(l.take_back, TakeBackState::Requested);
            assert_eq!(l.check(TakeBack), Err(TransitionError::TakeBackOfRequest));
            assert_eq!(l.apply(Received), Ok(Decision::Apply));
            assert_eq!(l.state_name(), "new");
            assert_eq!(l.apply(Agreed), Ok(Decision::Apply));
            assert_eq!(l.state_name(), "agreed");
            assert!(matches!(
                l.check(Refused),
                Err(TransitionError::AlreadyAnswered { .. })
            ));
            // A replacement (or update) is then processed like any document.
            assert_eq!(l.apply(Accepted), Ok(Decision::Apply));
            assert_eq!(l.state_name(), "accepted");
        }
        let mut l = Lifecycle::start(Some(ActionKind::Revoke));
        l.apply(Received).unwrap();
        l.apply(Refused).unwrap();
        assert_eq!(l.state_name(), "refused");
        assert_eq!(
            l.check(Agreed).unwrap_err().to_string(),
            "status 15 is refused: the request was already answered with 16 (refused)"
        );
        // An ordinary document has no pending request.
        assert!(matches!(
            Lifecycle::start(None).check(Agreed),
            Err(TransitionError::NoRequest { .. })
        ));
        let r = replay_from(
            Lifecycle::start(Some(ActionKind::Replace)),
            &[(Agreed, 2), (Received, 1)],
        );
        assert_eq!(r.lifecycle.state_name(), "agreed");
        assert_eq!(r.anomalies().count(), 0);
        assert_eq!(ActionKind::Update.mark(false), "updated");
        assert_eq!(ActionKind::Update.mark(true), "removed");
        assert!(!ActionKind::Update.closes_original(false));
        assert!(ActionKind::Revoke.closes_original(false));
        assert_eq!(ActionKind::of(BussinessDocType::New), None);
        assert_eq!(
            ActionKind::of(BussinessDocType::Replace).map(ActionKind::doc_type),
            Some(BussinessDocType::Replace)
        );
    }

    #[test]
    fn replay_orders_by_timestamp_and_reports_what_does_not_fit() {
        // Arrived 05, 01, 03, 03 (twice), 02 (nonsense), 06 — timestamps give the real order.
        let events = [
            (Processing, 30),
            (Received, 10),
            (Accepted, 20),
            (Accepted, 20),
            (Rejected, 25),
            (Completed, 40),
        ];
        let r = replay(&events);
        assert_eq!(r.lifecycle.stage, Stage::Completed);
        let anomalies: Vec<usize> = r.anomalies().map(|(i, _)| i).collect();
        assert_eq!(anomalies, [4]);
        let repeats: Vec<usize> = r
            .events
            .iter()
            .filter(|e| e.outcome == Ok(Decision::Repeat))
            .map(|e| e.index)
            .collect();
        assert_eq!(repeats, [3]);
        // Same second: 01 and 03 keep their logical order.
        let r = replay(&[(Accepted, 5), (Received, 5)]);
        assert_eq!(r.lifecycle.stage, Stage::Accepted);
        assert_eq!(r.anomalies().count(), 0);
        // A late 01 (its timestamp after 03) is a harmless repeat, not a step back.
        let r = replay(&[(Accepted, 5), (Received, 9)]);
        assert_eq!(r.lifecycle.stage, Stage::Accepted);
        assert_eq!(r.events[1].outcome, Ok(Decision::Repeat));
        // 03 without 01 seen (01 still in flight) is accepted: 01 is implied.
        assert_eq!(replay(&[(Accepted, 1)]).lifecycle.stage, Stage::Accepted);
        // 04 before 03 by timestamp: an anomaly, the stage stays.
        let r = replay(&[(Received, 1), (Assigned, 2)]);
        assert_eq!(r.lifecycle.stage, Stage::Received);
        assert_eq!(r.anomalies().count(), 1);
        assert!(sent_by_original_sender(TakeBack));
        assert!(!sent_by_original_sender(Agreed));
    }
}
