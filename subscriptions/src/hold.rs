//! A resumed subscription's live results, held while its replay runs (DESIGN §12).
//!
//! A client that resumes joins the shared execution at once, so no live event can fall between
//! its replay and its live results; until the replay is done, the execution's results for it
//! wait here instead of in its queue. Then the replayed events (sent first) are taken out of
//! what waited, by event id (the replay read up to a moment after the execution went live, so
//! the two overlap), and the rest follows in order. The first result the client gets says
//! whether it missed nothing: `extensions.recovered`.

use std::collections::{HashSet, VecDeque};

use crate::payload::SharedPayload;

/// What a held slot keeps.
#[derive(Debug)]
pub struct Hold {
    waiting: VecDeque<SharedPayload>,
    max: usize,
    /// Results dropped for want of room: the client missed them.
    overflowed: bool,
    /// The replay is done and sent nothing: the next result carries this `recovered` flag.
    flag_next: Option<bool>,
}

/// What a hold gives the queue.
pub enum Released {
    /// These, in order; the slot is held no longer.
    Results(Vec<SharedPayload>),
    /// Nothing yet: the slot stays held until its next result, which gets the flag.
    Waiting,
}

impl Hold {
    /// At most `max` results wait (the connection's queue size); beyond, the oldest go.
    pub fn new(max: usize) -> Self {
        Hold { waiting: VecDeque::new(), max: max.max(1), overflowed: false, flag_next: None }
    }

    /// Results of the execution while held: they wait, unless the replay is done and only the
    /// flag was missing, in which case they go on (the first one flagged) and the hold ends.
    /// Returns the number dropped for want of room.
    pub fn take(&mut self, payloads: &[SharedPayload]) -> (Option<Vec<SharedPayload>>, u64) {
        if let Some(recovered) = self.flag_next.take() {
            let mut results: Vec<SharedPayload> = payloads.to_vec();
            if let Some(first) = results.first_mut() {
                *first = first.marked_recovered(recovered);
            }
            return (Some(results), 0);
        }
        let mut dropped = 0;
        for payload in payloads {
            if self.waiting.len() == self.max {
                self.waiting.pop_front();
                self.overflowed = true;
                dropped += 1;
            }
            self.waiting.push_back(payload.clone());
        }
        (None, dropped)
    }

    /// The replay is over: `replayed` are the ids of the events it sent (`sent_any` when it sent
    /// one, flagged already), `recovered` whether it found the cursor.
    pub fn release(&mut self, replayed: &HashSet<String>, recovered: bool, sent_any: bool) -> Released {
        let recovered = recovered && !self.overflowed;
        let mut results: Vec<SharedPayload> =
            self.waiting.drain(..).filter(|payload| payload.event().is_none_or(|id| !replayed.contains(id))).collect();
        if sent_any {
            return Released::Results(results);
        }
        match results.first_mut() {
            Some(first) => {
                *first = first.marked_recovered(recovered);
                Released::Results(results)
            }
            None => {
                self.flag_next = Some(recovered);
                Released::Waiting
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str) -> SharedPayload {
        SharedPayload::of_event(format!(r#"{{"data":{{"n":{id}}}}}"#), Some(id), Some(id))
    }

    fn texts(results: &[SharedPayload]) -> Vec<String> {
        results.iter().map(|r| r.json().to_owned()).collect()
    }

    #[test]
    fn what_the_replay_sent_is_taken_out_and_the_rest_follows_in_order() {
        let mut hold = Hold::new(8);
        assert!(hold.take(&[result("4"), result("5")]).0.is_none());
        assert!(hold.take(&[result("6")]).0.is_none());
        let replayed: HashSet<String> = ["3", "4", "5"].iter().map(|s| (*s).to_owned()).collect();
        let Released::Results(results) = hold.release(&replayed, true, true) else { panic!("released") };
        assert_eq!(texts(&results), [r#"{"data":{"n":6}}"#]);
    }

    #[test]
    fn with_nothing_replayed_the_first_result_carries_the_flag() {
        let mut hold = Hold::new(8);
        assert!(matches!(hold.release(&HashSet::new(), false, false), Released::Waiting));
        let (results, _) = hold.take(&[result("9"), result("10")]);
        assert_eq!(
            texts(&results.unwrap()),
            [r#"{"data":{"n":9},"extensions":{"recovered":false}}"#, r#"{"data":{"n":10}}"#]
        );
    }

    #[test]
    fn a_hold_that_overflowed_cannot_say_recovered() {
        let mut hold = Hold::new(2);
        let (_, dropped) = hold.take(&[result("1"), result("2"), result("3")]);
        assert_eq!(dropped, 1);
        let Released::Results(results) = hold.release(&HashSet::new(), true, false) else { panic!("released") };
        assert_eq!(texts(&results)[0], r#"{"data":{"n":2},"extensions":{"recovered":false}}"#);
    }
}
