//! Giving freed memory back to the system.
//!
//! Reading a large config (thousands of DNS records) and building the zone allocate far
//! more, briefly, than officebox keeps. glibc's malloc keeps freed memory in its arenas
//! unless the top of a heap is free, so without help the peak stays resident for the life
//! of the process. After start-up and after each reload, the supervisor asks malloc to
//! return what it no longer uses.

pub use officebox_store::memory::release_free_memory;

/// Allocations at least this big get their own mapping, returned to the system the moment
/// they are freed.
const OWN_MAPPING_FROM: libc::c_int = 1 << 20;

/// Sets malloc up for officebox's few large, short-lived allocations, before any thread
/// starts. A password check (argon2id) needs one 19 MiB block for some 20 ms. glibc would
/// serve a large block from a fresh mapping, but after the first is freed it raises that
/// threshold (to 32 MiB at most) and serves later ones from its per-thread arenas, where
/// freed memory stays: a burst of logins then left the process at hundreds of megabytes
/// for good. A fixed threshold keeps every such block in its own mapping.
///
/// And one arena for every thread: by default glibc gives threads up to eight arenas per
/// core, and memory freed in one is not reused by another, so the peak grows with every
/// thread that once worked on a large folder. Each thread's small-allocation cache
/// (tcache) still serves most allocations without the arena's lock. Measured with
/// bench/imap.sh (50,000 + 10,000 messages): peak RSS 159 MB with the default, 133 MB
/// with two arenas, 98 MB with one, at the same speed (bench/smtp.sh: 1,879 and 1,847
/// messages/s).
pub fn configure_malloc() {
    // SAFETY: mallopt only sets malloc's tuning parameters; it is called before any other
    // thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
