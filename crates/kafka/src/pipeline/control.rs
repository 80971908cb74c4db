//! The control channel: how the HTTP API looks at (or changes) the partition
//! engines without locks. A visit runs on the processing task between
//! batches; the caller waits for its answer with a timeout.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tripline_engine::Engine;

/// Most visits waiting for the processing task; more are refused at once.
const CAPACITY: usize = 64;

/// The work of an [`EngineVisit`], run over every assigned partition's engine.
type VisitJob = Box<dyn FnOnce(&mut [&mut Engine]) + Send>;

/// A request to look at (or change) the partition engines from outside the
/// loop — the HTTP API's inventory, audit and feedback. It runs on the
/// processing task between batches, so engines need no locks.
pub struct EngineVisit {
    pub(super) job: VisitJob,
    /// Whether the job may change engine state (feedback): the next
    /// checkpoint must then save every partition even if no offset moved.
    pub(super) mutates: bool,
}

/// Why a visit got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VisitError {
    /// Too many visits are already waiting: try again later.
    #[error("the processing loop is busy")]
    Busy,
    /// The processing loop did not get to it within the timeout.
    #[error("the processing loop did not answer in time")]
    Timeout,
    /// The processing loop has stopped.
    #[error("the processing loop has stopped")]
    Stopped,
}

/// Where [`EngineVisit`]s are sent. Bounded: a flood of API calls is refused
/// ([`VisitError::Busy`]), it never delays processing.
#[derive(Clone, Debug)]
pub struct ControlHandle {
    tx: mpsc::Sender<EngineVisit>,
}

/// The receiving end, passed to [`crate::run`] in [`crate::RunConfig`].
pub struct ControlReceiver {
    pub(super) rx: mpsc::Receiver<EngineVisit>,
}

/// A control channel for [`crate::run`].
pub fn control_channel() -> (ControlHandle, ControlReceiver) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (ControlHandle { tx }, ControlReceiver { rx })
}

impl ControlHandle {
    /// Blocking [`ControlHandle::ask`]: `None` if the loop is busy, gone, or
    /// slower than `timeout`. Call it from a blocking thread, never from
    /// async code.
    pub fn visit<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[&Engine]) -> T + Send + 'static,
    ) -> Option<T> {
        self.send_blocking(timeout, false, move |engines| {
            let refs: Vec<&Engine> = engines.iter().map(|e| &**e).collect();
            f(&refs)
        })
    }

    /// Blocking [`ControlHandle::ask_mut`].
    pub fn visit_mut<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut [&mut Engine]) -> T + Send + 'static,
    ) -> Option<T> {
        self.send_blocking(timeout, true, f)
    }

    fn send_blocking<T: Send + 'static>(
        &self,
        timeout: Duration,
        mutates: bool,
        f: impl FnOnce(&mut [&mut Engine]) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = std::sync::mpsc::channel();
        let job = Box::new(move |engines: &mut [&mut Engine]| {
            let _ = reply.send(f(engines));
        });
        self.tx.try_send(EngineVisit { job, mutates }).ok()?;
        answer.recv_timeout(timeout).ok()
    }

    /// Runs `f` over every assigned partition's engine and returns its
    /// result. Async: the caller's task waits on a oneshot, no thread blocks.
    pub async fn ask<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[&Engine]) -> T + Send + 'static,
    ) -> Result<T, VisitError> {
        self.send(timeout, false, move |engines| {
            let refs: Vec<&Engine> = engines.iter().map(|e| &**e).collect();
            f(&refs)
        })
        .await
    }

    /// [`ControlHandle::ask`] for a job that changes engine state; the
    /// change is saved by the next checkpoint.
    pub async fn ask_mut<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut [&mut Engine]) -> T + Send + 'static,
    ) -> Result<T, VisitError> {
        self.send(timeout, true, f).await
    }

    async fn send<T: Send + 'static>(
        &self,
        timeout: Duration,
        mutates: bool,
        f: impl FnOnce(&mut [&mut Engine]) -> T + Send + 'static,
    ) -> Result<T, VisitError> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(move |engines: &mut [&mut Engine]| {
            let _ = reply.send(f(engines));
        });
        self.tx
            .try_send(EngineVisit { job, mutates })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => VisitError::Busy,
                mpsc::error::TrySendError::Closed(_) => VisitError::Stopped,
            })?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(VisitError::Stopped),
            Err(_) => Err(VisitError::Timeout),
        }
    }
}

/// The next control request, or never when there is no control channel.
pub(super) async fn recv_opt(control: &mut Option<ControlReceiver>) -> Option<EngineVisit> {
    match control {
        Some(c) => c.rx.recv().await,
        None => std::future::pending().await,
    }
}
