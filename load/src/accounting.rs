//! What each subscriber received, against what was published: loss, duplicates, reordering.
//! Every event carries its topic's sequence number.

/// One subscriber's record of the sequence numbers it saw.
#[derive(Clone, Debug, Default)]
pub struct Sequence {
    seen: Vec<u64>,
    received: u64,
    distinct: u64,
    reordered: u64,
    highest: Option<u64>,
}

impl Sequence {
    /// Records an arrival.
    pub fn record(&mut self, seq: u64) {
        self.received += 1;
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) == 0 {
            self.seen[word] |= 1 << bit;
            self.distinct += 1;
        }
        match self.highest {
            Some(highest) if seq < highest => self.reordered += 1,
            Some(highest) if seq == highest => {}
            _ => self.highest = Some(seq),
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Totals against `published` events on this subscriber's topic (sequence numbers 0..published).
    pub fn tally(&self, published: u64) -> Tally {
        Tally {
            expected: published,
            received: self.received,
            lost: published.saturating_sub(self.distinct),
            duplicates: self.received - self.distinct,
            reordered: self.reordered,
        }
    }
}

/// Totals over one or many subscribers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_stream_has_nothing_to_report() {
        let mut s = Sequence::default();
        (0..100).for_each(|n| s.record(n));
        assert_eq!(s.tally(100), Tally { expected: 100, received: 100, lost: 0, duplicates: 0, reordered: 0 });
    }

    #[test]
    fn losses_duplicates_and_reordering_are_told_apart() {
        let mut s = Sequence::default();
        // 0..10 published; 3 and 7 lost, 5 twice, 8 after 9 (the only one behind the highest).
        for n in [0, 1, 2, 4, 5, 5, 6, 9, 8] {
            s.record(n);
        }
        assert_eq!(s.tally(10), Tally { expected: 10, received: 9, lost: 2, duplicates: 1, reordered: 1 });
        let mut total = Tally::default();
        total += s.tally(10);
        total += s.tally(10);
        assert_eq!(total.lost, 4);
    }
}
