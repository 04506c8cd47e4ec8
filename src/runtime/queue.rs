//! The hand-off between stages: a bounded crossbeam channel where the newest item wins. A slow
//! consumer makes the producer drop the oldest queued item (counted), so memory and latency stay
//! bounded and the consumer always sees the freshest frame. Batch jobs use the same channel in
//! its [`lossless`] form, where the producer waits for room instead.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

/// The producing end. Cloneable; all clones share one drop counter.
#[derive(Clone)]
pub struct NewestWins<T> {
    tx: Sender<T>,
    // The producers hold a receiver too, so they can evict the oldest item themselves instead
    // of waiting on the consumer. It also keeps the channel open, hence the liveness token.
    evict: Receiver<T>,
    consumers: Weak<()>,
    dropped: Arc<AtomicU64>,
    lossless: bool,
}

/// The consuming end: a crossbeam `Receiver` (use it through `Deref`: `recv`, `try_iter`,
/// `select!`), plus the token that tells producers a consumer is alive. Cloneable.
#[derive(Clone)]
pub struct Consumer<T> {
    rx: Receiver<T>,
    _alive: Arc<()>,
}

impl<T> Deref for Consumer<T> {
    type Target = Receiver<T>;
    fn deref(&self) -> &Receiver<T> {
        &self.rx
    }
}

/// Outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued after dropping the oldest item.
    ReplacedOldest,
    /// Every consumer is gone; the item was discarded.
    Disconnected,
}

/// A bounded newest-wins channel holding at most `capacity` (at least 1) items.
pub fn newest_wins<T>(capacity: usize) -> (NewestWins<T>, Consumer<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let alive = Arc::new(());
    let producer = NewestWins {
        tx,
        evict: rx.clone(),
        consumers: Arc::downgrade(&alive),
        dropped: Arc::new(AtomicU64::new(0)),
        lossless: false,
    };
    (producer, Consumer { rx, _alive: alive })
}

/// The same channel, but a push into a full channel waits for room (or for the consumers to
/// go): nothing is dropped, and the slowest stage sets the pace.
pub fn lossless<T>(capacity: usize) -> (NewestWins<T>, Consumer<T>) {
    let (mut tx, rx) = newest_wins(capacity);
    tx.lossless = true;
    (tx, rx)
}

/// How often a waiting lossless push checks whether its consumers are gone.
const WAIT_STEP: Duration = Duration::from_millis(50);

impl<T> NewestWins<T> {
    /// Queues `item`, dropping the oldest queued item if the channel is full; never blocks.
    /// A [`lossless`] channel waits for room instead.
    pub fn push(&self, mut item: T) -> Pushed {
        if self.is_disconnected() {
            return Pushed::Disconnected;
        }
        if self.lossless {
            loop {
                match self.tx.send_timeout(item, WAIT_STEP) {
                    Ok(()) => return Pushed::Queued,
                    Err(SendTimeoutError::Timeout(back)) => {
                        if self.is_disconnected() {
                            return Pushed::Disconnected;
                        }
                        item = back;
                    }
                    Err(SendTimeoutError::Disconnected(_)) => {
                        unreachable!("the eviction receiver keeps the channel open")
                    }
                }
            }
        }
        let mut replaced = false;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => {
                    return if replaced {
                        Pushed::ReplacedOldest
                    } else {
                        Pushed::Queued
                    }
                }
                Err(TrySendError::Full(back)) => {
                    item = back;
                    // Another thread may have emptied the slot meanwhile; then just retry.
                    if let Ok(old) = self.evict.try_recv() {
                        drop(old);
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        replaced = true;
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    unreachable!("the eviction receiver keeps the channel open")
                }
            }
        }
    }

    /// Items dropped so far to make room for newer ones.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The drop counter itself, for reporting without holding a producer (which would keep
    /// the channel open).
    pub fn drop_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Whether every consumer is gone.
    pub fn is_disconnected(&self) -> bool {
        self.consumers.strong_count() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lossless_channel_waits_for_room_and_drops_nothing() {
        let (tx, rx) = lossless(2);
        let producer = std::thread::spawn(move || (0..50).map(|i| tx.push(i)).collect::<Vec<_>>());
        let mut got = Vec::new();
        while got.len() < 50 {
            std::thread::sleep(Duration::from_millis(1));
            got.extend(rx.try_iter());
        }
        let pushed = producer.join().unwrap();
        assert!(pushed.iter().all(|p| *p == Pushed::Queued));
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_waiting_lossless_push_gives_up_when_the_consumer_goes() {
        let (tx, rx) = lossless(1);
        assert_eq!(tx.push(1), Pushed::Queued);
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(rx);
        });
        assert_eq!(tx.push(2), Pushed::Disconnected);
        dropper.join().unwrap();
    }

    #[test]
    fn keeps_the_newest_and_counts_drops() {
        let (tx, rx) = newest_wins(2);
        let pushed: Vec<Pushed> = (0..5).map(|i| tx.push(i)).collect();
        assert_eq!(pushed[..2], [Pushed::Queued, Pushed::Queued]);
        assert!(pushed[2..].iter().all(|p| *p == Pushed::ReplacedOldest));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(tx.dropped(), 3);
        drop(rx);
        assert!(tx.is_disconnected());
        assert_eq!(tx.push(9), Pushed::Disconnected);
    }

    #[test]
    fn concurrent_producers_never_block_and_account_for_every_item() {
        let (tx, rx) = newest_wins(4);
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    (0..10_000).for_each(|i| {
                        tx.push(p * 100_000 + i);
                    })
                })
            })
            .collect();
        let mut received = 0u64;
        let consumer = std::thread::spawn(move || {
            while let Ok(_item) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
                received += 1;
            }
            received
        });
        producers.into_iter().for_each(|p| p.join().unwrap());
        let received = consumer.join().unwrap();
        assert_eq!(
            received + tx.dropped(),
            40_000,
            "every item is either delivered or counted"
        );
    }
}
