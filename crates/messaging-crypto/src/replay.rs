//! Replay windows: per publisher session, the highest sequence number seen and which of the 63
//! before it were seen too (RFC 4303's anti-replay window).

use std::collections::{HashMap, VecDeque};

use crate::envelope::SESSION;

/// How far behind the newest message an older one may arrive.
const WIDTH: u64 = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    top: u64,
    /// Bit `i`: message `top - i` was seen.
    seen: u64,
}

/// The windows of a bounded number of sessions; the oldest is forgotten first.
#[derive(Debug)]
pub(crate) struct Windows {
    windows: HashMap<[u8; SESSION], Window>,
    order: VecDeque<[u8; SESSION]>,
    limit: usize,
}

impl Windows {
    pub(crate) fn new(limit: usize) -> Self {
        Windows { windows: HashMap::new(), order: VecDeque::new(), limit: limit.max(1) }
    }

    /// Whether message `sequence` of `session` would be new.
    pub(crate) fn fresh(&self, session: &[u8; SESSION], sequence: u64) -> bool {
        if sequence == 0 {
            return false;
        }
        let Some(w) = self.windows.get(session) else { return true };
        if sequence > w.top {
            return true;
        }
        let behind = w.top - sequence;
        behind < WIDTH && w.seen & (1 << behind) == 0
    }

    /// Records message `sequence` of `session` (which [`Windows::fresh`] allowed).
    pub(crate) fn accept(&mut self, session: [u8; SESSION], sequence: u64) {
        if !self.windows.contains_key(&session) {
            if self.windows.len() >= self.limit
                && let Some(old) = self.order.pop_front()
            {
                self.windows.remove(&old);
            }
            self.order.push_back(session);
        }
        let w = self.windows.entry(session).or_default();
        if sequence > w.top {
            let shift = sequence - w.top;
            w.seen = if shift >= WIDTH { 0 } else { w.seen << shift };
            w.seen |= 1;
            w.top = sequence;
        } else {
            w.seen |= 1 << (w.top - sequence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repeats_and_stale_messages_are_refused() {
        let mut w = Windows::new(2);
        let s = [1; SESSION];
        assert!(!w.fresh(&s, 0), "sequence numbers start at 1");
        for n in [1, 2, 5, 4] {
            assert!(w.fresh(&s, n));
            w.accept(s, n);
            assert!(!w.fresh(&s, n), "{n} again");
        }
        assert!(w.fresh(&s, 3), "late but inside the window");
        w.accept(s, 100);
        assert!(!w.fresh(&s, 36), "older than the window");
        assert!(w.fresh(&s, 37));
        // A third session pushes out the first.
        w.accept([2; SESSION], 1);
        w.accept([3; SESSION], 1);
        assert!(w.fresh(&s, 100));
        assert!(!w.fresh(&[3; SESSION], 1));
    }

    proptest! {
        /// Whatever the order of arrival, each number is accepted at most once.
        #[test]
        fn nothing_is_accepted_twice(arrivals in proptest::collection::vec(1u64..200, 0..400)) {
            let mut w = Windows::new(4);
            let s = [7; SESSION];
            let mut accepted = std::collections::HashSet::new();
            for n in arrivals {
                if w.fresh(&s, n) {
                    prop_assert!(accepted.insert(n), "{} accepted twice", n);
                    w.accept(s, n);
                }
            }
        }
    }
}
