//! Waiting out propagation, as AWS documents it: IAM changes, and alias changes (up to five
//! minutes before `kms:ResourceAliases` authorizes, and before an alias resolves to its new key).

use super::Context;
use crate::writes::PollDelay;
use std::future::Future;
use std::time::Instant;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Waited {
    /// Nothing was pending; no wait.
    No,
    /// What was pending became visible after this many seconds.
    Visible(f64),
    /// Still pending at the deadline, after this many seconds.
    GaveUp(f64),
}

/// Repeats `again` while `pending` says the last outcome still waits on propagation: after
/// 250 ms, then at most once a second, until `deadline`. Says once what it waits for (`what`,
/// with `why` from the first outcome), and how the wait ended.
pub async fn until_visible<T, F, Fut>(
    ctx: &Context,
    deadline: Instant,
    what: &str,
    mut last: T,
    pending: impl Fn(&T) -> Option<String>,
    mut again: F,
) -> (T, Waited)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let Some(why) = pending(&last) else {
        return (last, Waited::No);
    };
    let from = Instant::now();
    let mut delay = PollDelay::default();
    if from + delay.current() >= deadline {
        return (last, Waited::GaveUp(0.0));
    }
    let left = |now: Instant| deadline.saturating_duration_since(now).as_secs();
    ctx.printer.note(format!("waiting up to {} s for {what} ({why})", left(from)));
    while pending(&last).is_some() && Instant::now() + delay.current() < deadline {
        delay.sleep().await;
        ctx.printer.step(format!("waiting for {what} ({} s left)", left(Instant::now())));
        last = again().await;
    }
    let waited = from.elapsed().as_secs_f64();
    if pending(&last).is_some() {
        return (last, Waited::GaveUp(waited));
    }
    ctx.printer.note(format!("{what}: visible after {waited:.1} s of waiting"));
    (last, Waited::Visible(waited))
}
