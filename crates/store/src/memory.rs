//! Giving freed memory back to the system.
//!
//! glibc's malloc keeps freed small blocks in its heap unless a whole stretch at the top
//! is free, so a brief peak of many small allocations (a large config's parse, the
//! listing of a folder of tens of thousands of files) would otherwise stay resident.

/// Returns free heap memory of every malloc arena to the system (`malloc_trim`: whole
/// free pages anywhere in the heap, not only at its top). A walk of malloc's free lists:
/// a millisecond or so; call it after a large, brief peak, not on every request.
pub fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it only walks malloc's own free lists.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
