//! A named thread with a stop flag, asked to stop and joined on `stop` or on drop: how every
//! long-running stage (capture supervisors, the inference thread) is owned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs `body` on a thread called `name`; `body` should return soon after its flag is set.
    pub fn spawn(
        name: String,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || body(&flag))?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the thread to stop and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_and_drop_both_end_the_thread() {
        let ended = Arc::new(AtomicBool::new(false));
        let e = ended.clone();
        let w = Worker::spawn("t".into(), move |stop| {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            e.store(true, Ordering::SeqCst);
        })
        .unwrap();
        w.stop();
        assert!(ended.load(Ordering::SeqCst));
        let ended = Arc::new(AtomicBool::new(false));
        let e = ended.clone();
        drop(Worker::spawn("t".into(), move |stop| {
            while !stop.load(Ordering::SeqCst) {}
            e.store(true, Ordering::SeqCst);
        }));
        assert!(ended.load(Ordering::SeqCst));
    }
}
