//! Waiting out propagation, as AWS documents it: IAM changes, and alias changes (up to five
//! minutes before `kms:ResourceAliases` authorizes, and before an alias resolves to its new key).

use super::Context;
use std::future::Future;
use std::time::{Duration, Instant};

/// The longest pause between two attempts: a wait ends within about this long of access
/// becoming possible.
const MAX_DELAY: Duration = Duration::from_secs(1);

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
    if from + Duration::from_millis(250) >= deadline {
        return (last, Waited::GaveUp(0.0));
    }
    let left = |now: Instant| deadline.saturating_duration_since(now).as_secs();
    ctx.printer.note(format!("waiting up to {} s for {what} ({why})", left(from)));
    let mut delay = Duration::from_millis(250);
    while pending(&last).is_some() && Instant::now() + delay < deadline {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
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
