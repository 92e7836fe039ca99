//! Places for requests in the guest, taken at once or not at all (a request beyond them is
//! answered 503 rather than queued). One atomic counter: taking and giving back a place takes
//! no lock, where a semaphore's release locks its waiters' list for every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most `max` places taken at once.
#[derive(Debug)]
pub(crate) struct Slots {
    taken: AtomicUsize,
    max: usize,
}

/// A place taken; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<Slots>);

impl Slots {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { taken: AtomicUsize::new(0), max })
    }

    /// A place, or `None` when all are taken.
    pub(crate) fn try_take(this: &Arc<Self>) -> Option<Slot> {
        let mut taken = this.taken.load(Ordering::Relaxed);
        loop {
            if taken >= this.max {
                return None;
            }
            match this.taken.compare_exchange_weak(taken, taken + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(Slot(Arc::clone(this))),
                Err(now) => taken = now,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any order of takes and gives: never more than `max` held, a take refused only when
        /// all are held, every place back at the end.
        #[test]
        fn never_more_than_max_and_every_place_comes_back(max in 0usize..8, ops in proptest::collection::vec(any::<bool>(), 0..64)) {
            let slots = Slots::new(max);
            let mut held = Vec::new();
            for take in ops {
                if take {
                    match Slots::try_take(&slots) {
                        Some(slot) => held.push(slot),
                        None => prop_assert_eq!(held.len(), max),
                    }
                } else {
                    held.pop();
                }
                prop_assert!(held.len() <= max);
            }
            drop(held);
            prop_assert_eq!(slots.taken.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn places_taken_from_many_threads_stay_within_the_bound() {
        let slots = Slots::new(3);
        let most = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (slots, most) = (Arc::clone(&slots), Arc::clone(&most));
                s.spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(slot) = Slots::try_take(&slots) {
                            most.fetch_max(slots.taken.load(Ordering::Relaxed), Ordering::Relaxed);
                            drop(slot);
                        }
                    }
                });
            }
        });
        assert!(most.load(Ordering::Relaxed) <= 3);
        assert_eq!(slots.taken.load(Ordering::Relaxed), 0);
    }
}
