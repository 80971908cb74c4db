//! The process-wide bound on tracked integrations (`max_integrations`).
//!
//! A process runs one [`crate::Engine`] per input partition; a per-engine
//! cap let P partitions hold P × `max_integrations` under a flood of new ids
//! (3 partitions held 400k integrations in 1.6–1.8 GB against a documented
//! ~800 MiB). A [`Population`] is one shared count of the integrations every
//! engine joined to it tracks: an engine that meets a new id while the count
//! is at the bound evicts the least recently seen tenth of its *own*
//! unregistered integrations first, so the process as a whole never tracks
//! more than `max_integrations` (registered integrations aside: they are
//! never evicted).
//!
//! Pure bookkeeping: an atomic counter, no I/O, no clock, no lock. Which
//! engine evicts, and when, depends on how the partitions interleave — like
//! eviction itself, a decision under memory pressure that only touches
//! unregistered integrations (docs/ARCHITECTURE.md, "bounded memory").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Integrations tracked by every engine joined to it. Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct Population(Arc<AtomicUsize>);

impl Population {
    pub fn new() -> Self {
        Self::default()
    }

    /// Integrations tracked by the joined engines now.
    pub fn tracked(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One engine's place in a [`Population`]: how many integrations it has
/// counted into it. Detached (counting only its own) until joined; a clone
/// is detached (a copy of an engine is not part of the process's state), and
/// dropping the engine takes its integrations out of the count.
#[derive(Debug, Default)]
pub(crate) struct Seat {
    population: Option<Population>,
    held: usize,
}

impl Seat {
    /// Counts `own` integrations (the engine's current number) into `p`,
    /// leaving any population joined before.
    pub(crate) fn join(&mut self, p: &Population, own: usize) {
        self.leave();
        p.0.fetch_add(own, Ordering::Relaxed);
        self.population = Some(p.clone());
        self.held = own;
    }

    fn leave(&mut self) {
        if let Some(p) = self.population.take() {
            p.0.fetch_sub(self.held, Ordering::Relaxed);
        }
        self.held = 0;
    }

    /// Brings the shared count in line with the engine's `own` number.
    pub(crate) fn sync(&mut self, own: usize) {
        if let Some(p) = &self.population {
            if own > self.held {
                p.0.fetch_add(own - self.held, Ordering::Relaxed);
            } else {
                p.0.fetch_sub(self.held - own, Ordering::Relaxed);
            }
        }
        self.held = own;
    }

    /// The integrations the bound applies to: the whole population's when
    /// joined, else the engine's `own`.
    pub(crate) fn total(&self, own: usize) -> usize {
        self.population.as_ref().map_or(own, Population::tracked)
    }
}

impl Clone for Seat {
    fn clone(&self) -> Self {
        Seat::default()
    }
}

impl PartialEq for Seat {
    /// Not state: two engines are equal whatever population they count in.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_add_up_and_leave_on_drop_clones_stay_out() {
        let p = Population::new();
        let mut a = Seat::default();
        let mut b = Seat::default();
        a.join(&p, 3);
        b.join(&p, 5);
        assert_eq!(p.tracked(), 8);
        a.sync(10);
        b.sync(1);
        assert_eq!(p.tracked(), 11);
        assert_eq!(a.total(10), 11);
        let c = a.clone();
        assert_eq!(c.total(7), 7, "a clone is detached");
        drop(c);
        assert_eq!(p.tracked(), 11);
        drop(a);
        assert_eq!(p.tracked(), 1);
        b.join(&Population::new(), 1);
        assert_eq!(p.tracked(), 0, "joining another population leaves this one");
    }
}
