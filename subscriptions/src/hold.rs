//! A resumed subscription's live results, held while its replay runs (DESIGN §12).
//!
//! A client that resumes joins the shared execution at once, so no live event can fall between
//! its replay and its live results; until the replay is done, the execution's results for it
//! wait here instead of in its queue. The replay reads the broker's history up to a moment after
//! the execution went live, so its last events may also come live: before or after the replay
//! ends (a live source can lag its broker's history). Those are taken out by event id until the
//! live results have passed them: in each of the broker's orderings (a Kafka partition, the
//! part of an id before `:`; one for every other broker), the first live result the replay did
//! not send means every later one is new. The first result the client gets says whether it
//! missed nothing: `extensions.recovered`.

use std::collections::{HashSet, VecDeque};

use crate::payload::SharedPayload;

/// What a held slot keeps.
#[derive(Debug)]
pub struct Hold {
    waiting: VecDeque<SharedPayload>,
    max: usize,
    /// Results dropped for want of room: the client missed them.
    overflowed: bool,
    /// The replay is over: results go on, less those it sent.
    released: bool,
    /// Ids of replayed events that may still come live.
    replayed: HashSet<String>,
    /// The next result to go on carries this `recovered` flag (the replay sent nothing).
    flag_next: Option<bool>,
}

/// What a hold lets through.
pub struct Passed {
    pub results: Vec<SharedPayload>,
    /// Results dropped for want of room.
    pub dropped: u64,
    /// Nothing is held or filtered any more: the slot is an ordinary one again.
    pub done: bool,
}

/// The ordering an event id belongs to: a Kafka partition, or the broker's one order.
fn ordering(id: &str) -> &str {
    id.split_once(':').map_or("", |(partition, _)| partition)
}

impl Hold {
    /// At most `max` results wait (the connection's queue size); beyond, the oldest go.
    pub fn new(max: usize) -> Self {
        Hold {
            waiting: VecDeque::new(),
            max: max.max(1),
            overflowed: false,
            released: false,
            replayed: HashSet::new(),
            flag_next: None,
        }
    }

    /// Results of the live execution for the slot.
    pub fn take(&mut self, payloads: &[SharedPayload]) -> Passed {
        if !self.released {
            let mut dropped = 0;
            for payload in payloads {
                if self.waiting.len() == self.max {
                    self.waiting.pop_front();
                    self.overflowed = true;
                    dropped += 1;
                }
                self.waiting.push_back(payload.clone());
            }
            return Passed { results: Vec::new(), dropped, done: false };
        }
        let results = self.pass(payloads.iter().cloned());
        Passed { results, dropped: 0, done: self.is_done() }
    }

    /// The replay is over: `replayed` are the ids of the events it sent (`sent_any` when it sent
    /// one, flagged already), `recovered` whether it found the cursor.
    pub fn release(&mut self, replayed: HashSet<String>, recovered: bool, sent_any: bool) -> Passed {
        self.released = true;
        self.replayed = replayed;
        if !sent_any {
            self.flag_next = Some(recovered && !self.overflowed);
        }
        let waiting: Vec<SharedPayload> = self.waiting.drain(..).collect();
        let results = self.pass(waiting.into_iter());
        Passed { results, dropped: 0, done: self.is_done() }
    }

    fn is_done(&self) -> bool {
        self.replayed.is_empty() && self.flag_next.is_none()
    }

    /// Live results without those the replay sent; the first that goes on takes the flag.
    fn pass(&mut self, payloads: impl Iterator<Item = SharedPayload>) -> Vec<SharedPayload> {
        let mut results = Vec::new();
        for payload in payloads {
            if let Some(id) = payload.event() {
                if self.replayed.remove(id) {
                    continue;
                }
                // Live has passed the replay in this ordering: nothing of it comes again.
                let order = ordering(id).to_owned();
                self.replayed.retain(|sent| ordering(sent) != order);
            }
            results.push(match self.flag_next.take() {
                Some(recovered) => payload.marked_recovered(recovered),
                None => payload,
            });
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str) -> SharedPayload {
        SharedPayload::of_event(format!(r#"{{"data":{{"n":"{id}"}}}}"#), Some(id), Some(id))
    }

    fn ids(passed: &Passed) -> Vec<&str> {
        passed.results.iter().filter_map(SharedPayload::event).collect()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn what_the_replay_sent_is_taken_out_and_the_rest_follows_in_order() {
        let mut hold = Hold::new(8);
        assert!(hold.take(&[result("4"), result("5")]).results.is_empty());
        assert!(hold.take(&[result("6")]).results.is_empty());
        let passed = hold.release(set(&["3", "4", "5"]), true, true);
        assert_eq!(ids(&passed), ["6"]);
        assert!(passed.done, "live has passed the replay");
    }

    #[test]
    fn a_live_source_behind_the_history_is_filtered_after_the_release_too() {
        let mut hold = Hold::new(8);
        let passed = hold.release(set(&["7", "8", "9"]), true, true);
        assert!(passed.results.is_empty() && !passed.done);
        let passed = hold.take(&[result("8"), result("9"), result("10")]);
        assert_eq!(ids(&passed), ["10"]);
        assert!(passed.done, "7 never comes live: 10 went past it");
    }

    #[test]
    fn each_kafka_partition_is_followed_on_its_own() {
        let mut hold = Hold::new(8);
        let passed = hold.release(set(&["0:5", "1:3", "1:4"]), true, true);
        assert!(passed.results.is_empty());
        // Partition 0 is past its replay; partition 1 is not yet.
        assert_eq!(ids(&hold.take(&[result("0:6"), result("1:3")])), ["0:6"]);
        let passed = hold.take(&[result("1:4"), result("1:5")]);
        assert_eq!(ids(&passed), ["1:5"]);
        assert!(passed.done);
    }

    #[test]
    fn with_nothing_replayed_the_first_result_carries_the_flag() {
        let mut hold = Hold::new(8);
        let passed = hold.release(HashSet::new(), false, false);
        assert!(passed.results.is_empty() && !passed.done);
        let passed = hold.take(&[result("9"), result("10")]);
        let texts: Vec<&str> = passed.results.iter().map(SharedPayload::json).collect();
        assert_eq!(texts, [r#"{"data":{"n":"9"},"extensions":{"recovered":false}}"#, r#"{"data":{"n":"10"}}"#]);
        assert!(passed.done);
    }

    #[test]
    fn a_hold_that_overflowed_cannot_say_recovered() {
        let mut hold = Hold::new(2);
        assert_eq!(hold.take(&[result("1"), result("2"), result("3")]).dropped, 1);
        let passed = hold.release(HashSet::new(), true, false);
        assert_eq!(passed.results[0].json(), r#"{"data":{"n":"2"},"extensions":{"recovered":false}}"#);
    }
}
