//! The main loop: batching what the poll thread hands over, control visits,
//! checkpoint timers, rebalance notices, completing batches in flight, and
//! the drain after shutdown. Whatever needs offsets and state to agree
//! (checkpoints, assignment, revoke, the end of the loop) settles every
//! batch in flight first.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tripline_engine::Engine;

use crate::consumer::{Item, Msg};

use super::control::{recv_opt, ControlReceiver};
use super::in_flight::oldest_answered;
use super::shutdown::{sleep_until_opt, Stopper};
use super::Pipeline;

impl Pipeline {
    pub(super) async fn main_loop<F: Future<Output = ()>>(
        &mut self,
        rx: &mut mpsc::Receiver<Item>,
        stopper: &mut Stopper<F>,
        control: &mut Option<ControlReceiver>,
    ) {
        let max = self.settings.batch_max_events;
        let wait = self.settings.batch_max_wait();
        let mut batch: Vec<Msg> = Vec::with_capacity(max);
        let mut batch_deadline: Option<Instant> = None;
        // Checkpoints are due on a timer too, not only between messages: the
        // tail of a stream that has gone quiet must be saved (and its offsets
        // committed) without waiting for the next message.
        let period = if self.state_store.enabled() {
            self.state_store.interval()
        } else {
            Duration::from_secs(3600)
        };
        let mut checkpoint_tick = tokio::time::interval_at(Instant::now() + period, period);
        checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = batch_deadline;
            tokio::select! {
                biased;
                () = stopper.requested() => {
                    // Messages already taken from the channel must be
                    // processed before the drain takes later ones: otherwise
                    // the drain stores offsets past them and they are lost.
                    self.flush(&mut batch, stopper).await;
                    self.settle(stopper).await;
                    return;
                }
                Some(visit) = recv_opt(control) => {
                    let mut engines: Vec<&mut Engine> =
                        self.parts.iter_mut().map(|ps| &mut ps.engine).collect();
                    (visit.job)(&mut engines);
                    if visit.mutates {
                        // State changed (feedback) without moving offsets:
                        // make the next checkpoint save it.
                        for ps in &mut self.parts {
                            ps.saved_offset = None;
                        }
                    }
                }
                _ = checkpoint_tick.tick(), if self.state_store.enabled() => {
                    batch_deadline = None;
                    self.flush(&mut batch, stopper).await;
                    self.settle(stopper).await;
                    self.checkpoint(None, None);
                }
                // Ahead of new messages: a batch whose acknowledgements are
                // in completes (stores its offsets) before the next one runs.
                () = oldest_answered(&mut self.in_flight, &self.warner), if !self.in_flight.is_empty() => {
                    self.settle_oldest(stopper).await;
                }
                item = rx.recv() => match item {
                    Some(Item::Messages { msgs, caught_up }) => {
                        if batch.is_empty() {
                            batch_deadline = Some(Instant::now() + wait);
                            batch = msgs;
                        } else {
                            batch.extend(msgs);
                        }
                        // Caught up, nothing more is coming soon: waiting
                        // out the batch deadline would only delay alerts.
                        // Under a backlog chunks arrive full, so batches stay
                        // large where amortising matters.
                        if batch.len() >= max || caught_up {
                            batch_deadline = None;
                            self.flush(&mut batch, stopper).await;
                        }
                    }
                    Some(Item::Assigned(parts)) => {
                        batch_deadline = None;
                        self.flush(&mut batch, stopper).await;
                        self.settle(stopper).await;
                        self.assign(parts);
                    }
                    Some(Item::Revoked(parts, ack)) => {
                        batch_deadline = None;
                        self.flush(&mut batch, stopper).await;
                        self.settle(stopper).await;
                        self.revoke(&parts);
                        let _ = ack.send(());
                    }
                    Some(Item::Stopped) | None => {
                        // The poll thread only stops when asked; treat it as shutdown.
                        self.flush(&mut batch, stopper).await;
                        self.settle(stopper).await;
                        return;
                    }
                },
                () = sleep_until_opt(deadline) => {
                    batch_deadline = None;
                    self.flush(&mut batch, stopper).await;
                }
            }
            if self.poisoned {
                return;
            }
            if self.state_store.enabled()
                && self.last_checkpoint.elapsed() >= self.state_store.interval()
            {
                self.settle(stopper).await;
                self.checkpoint(None, None);
            }
        }
    }

    /// After shutdown: processes what the poll thread had already fetched,
    /// until it reports it has stopped or the drain deadline passes.
    pub(super) async fn drain<F: Future<Output = ()>>(
        &mut self,
        rx: &mut mpsc::Receiver<Item>,
        stopper: &mut Stopper<F>,
    ) {
        let Some(deadline) = stopper.drain_deadline else {
            return;
        };
        let max = self.settings.batch_max_events;
        let mut batch: Vec<Msg> = Vec::with_capacity(max);
        while !self.poisoned {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Item::Messages { msgs, .. })) => {
                    batch.extend(msgs);
                    if batch.len() >= max {
                        self.flush(&mut batch, stopper).await;
                    }
                }
                Ok(Some(Item::Assigned(parts))) => {
                    self.flush(&mut batch, stopper).await;
                    self.settle(stopper).await;
                    self.assign(parts);
                }
                Ok(Some(Item::Revoked(parts, ack))) => {
                    self.flush(&mut batch, stopper).await;
                    self.settle(stopper).await;
                    self.revoke(&parts);
                    let _ = ack.send(());
                }
                Ok(Some(Item::Stopped)) | Ok(None) | Err(_) => break,
            }
        }
        self.flush(&mut batch, stopper).await;
        self.settle(stopper).await;
    }

    pub(super) async fn flush<F: Future<Output = ()>>(
        &mut self,
        batch: &mut Vec<Msg>,
        stopper: &mut Stopper<F>,
    ) {
        if batch.is_empty() || self.poisoned {
            batch.clear();
            return;
        }
        let queued = self.in_flight.len();
        let done = stopper.guard(self.process_batch(batch)).await;
        if done.is_none() {
            // The batch joins the queue before its first wait; count it if
            // it was cancelled before (it never is: engines do not wait).
            let unqueued = usize::from(self.in_flight.len() <= queued);
            self.abandon(unqueued);
        }
        batch.clear();
    }
}
