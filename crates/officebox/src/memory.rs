//! Giving freed memory back to the system.
//!
//! Reading a large config (thousands of DNS records) and building the zone allocate far
//! more, briefly, than officebox keeps. glibc's malloc keeps freed memory in its arenas
//! unless the top of a heap is free, so without help the peak stays resident for the life
//! of the process. After start-up and after each reload, the supervisor asks malloc to
//! return what it no longer uses.

/// Returns free heap memory of every malloc arena to the system.
pub fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it only walks malloc's own free lists.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
