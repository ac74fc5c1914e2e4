//! Which of slaprobe's own threads died: the consumer and delivery-report
//! threads run outside the async runtime, so a panic in one would leave
//! the process up and silently stop a probe. Each holds a [`Watch`]; one
//! that unwinds records its name, and `/healthz` fails naming it, so that
//! the orchestrator restarts the process.

use std::sync::Mutex;

static DEAD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Held by a watched thread for its whole life.
pub struct Watch(String);

impl Watch {
    /// Watches the current thread as `name`.
    pub fn new(name: impl Into<String>) -> Watch {
        Watch(name.into())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            DEAD.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(std::mem::take(&mut self.0));
        }
    }
}

/// The watched threads that died by a panic, in the order they did.
pub fn dead() -> Vec<String> {
    DEAD.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_is_recorded_and_one_that_returns_is_not() {
        let fine = std::thread::spawn(|| {
            let _w = Watch::new("fine-thread");
        });
        fine.join().expect("returns");
        let broken = std::thread::spawn(|| {
            let _w = Watch::new("broken-thread");
            panic!("on purpose");
        });
        assert!(broken.join().is_err());
        let dead = dead();
        assert!(dead.iter().any(|n| n == "broken-thread"), "{dead:?}");
        assert!(!dead.iter().any(|n| n == "fine-thread"), "{dead:?}");
    }
}
