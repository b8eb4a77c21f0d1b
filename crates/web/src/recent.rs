//! The last warnings and errors officebox logged, for the Home page. The binary's log
//! setup hands each one to [`push`]; only the newest [`KEEP`] are kept, in memory.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

/// How many problems the Home page can show.
pub const KEEP: usize = 20;

/// One logged problem.
#[derive(Debug, Clone)]
pub struct Problem {
    pub at: SystemTime,
    /// "WARN" or "ERROR".
    pub level: &'static str,
    pub text: String,
}

static RECENT: Mutex<VecDeque<Problem>> = Mutex::new(VecDeque::new());

/// Records a problem (the oldest goes when there are more than [`KEEP`]).
pub fn push(level: &'static str, text: String) {
    let mut r = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    if r.len() == KEEP {
        r.pop_front();
    }
    r.push_back(Problem {
        at: SystemTime::now(),
        level,
        text,
    });
}

/// The problems, newest first.
pub fn problems() -> Vec<Problem> {
    let r = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    r.iter().rev().cloned().collect()
}
