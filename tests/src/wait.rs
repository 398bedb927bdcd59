//! Waiting for something to happen, with a deadline: the one polling loop of the e2e tests.
//!
//! A check that something has *not* happened waits here for an observable state that proves
//! it would have happened by now (a sync attempt recorded after the write, say), then asserts
//! the absence; it never sleeps a fixed time.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// A wait for a condition: what it waits for (named in the error), how long at most, and how
/// often it looks.
#[must_use = "a wait does nothing until `until` is awaited"]
pub struct Wait {
    what: String,
    within: Duration,
    every: Duration,
}

/// Waits for `what`: 30 s at most by default, looking every 100 ms.
pub fn wait(what: impl Display) -> Wait {
    Wait {
        what: what.to_string(),
        within: Duration::from_secs(30),
        every: Duration::from_millis(100),
    }
}

impl Wait {
    pub fn within(self, within: Duration) -> Wait {
        Wait { within, ..self }
    }

    pub fn every(self, every: Duration) -> Wait {
        Wait { every, ..self }
    }

    /// Calls `probe` until it returns `Ok`, and returns that value. An `Err` means "not yet":
    /// the last one is in the error when the deadline passes, so a probe says in it what it
    /// saw (`ensure!(… , "the county holds {n}")`).
    pub async fn until<T>(
        self,
        mut probe: impl AsyncFnMut() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.within;
        loop {
            match probe().await {
                Ok(value) => return Ok(value),
                Err(last) if Instant::now() >= deadline => {
                    anyhow::bail!("waited {:?} for {}; last: {last:#}", self.within, self.what)
                }
                Err(_) => tokio::time::sleep(self.every).await,
            }
        }
    }
}
