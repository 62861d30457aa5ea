//! The process's global allocator: mimalloc for ordinary blocks, the kernel directly for big
//! ones.
//!
//! Owns: which allocator serves a block, decided by its size alone, and mimalloc's options.
//!
//! Why two: the exchange allocates and frees many small buffers per document on several
//! threads, where mimalloc beats glibc's malloc (README, "Where a document's time goes"). But
//! a big packet's buffers (tens of megabytes) freed by one party while another allocates its
//! own stayed mapped in mimalloc until its purge delay passed, and growing one copied it:
//! a 53 MB document through hub and both nodes peaked at 4.0 × its size over idle with a
//! 100 ms delay and 3.1 × with none. Blocks of [`BIG`] bytes or more are therefore mapped
//! with `mmap`, unmapped with `munmap` the moment they are freed, and grown or shrunk with
//! `mremap`, which moves pages instead of copying bytes.
//!
//! Invariants:
//! - A block's allocator follows from its layout's size alone, so `dealloc` and `realloc`
//!   always go back to the allocator that made the block (the `GlobalAlloc` contract hands
//!   them the layout it was allocated with).
//! - Big blocks are page-aligned, so any alignment up to a page is met; a bigger alignment
//!   (none in this program) stays with mimalloc.
//! - A failed `mmap` or `mremap` returns null, as the contract asks, and leaves the old block
//!   untouched.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

/// Smallest block mapped directly: far above every buffer of an ordinary document, below
/// a big document's packet and its base64.
pub(crate) const BIG: usize = 4 << 20;

/// Alignment the kernel's mappings always meet (the smallest page size of the platforms
/// this runs on).
const PAGE: usize = 4096;

/// mimalloc for blocks under [`BIG`] bytes, `mmap` for the others.
#[cfg_attr(feature = "system-allocator", allow(dead_code))]
pub(crate) struct Allocator;

#[cfg_attr(feature = "system-allocator", allow(dead_code))]
fn is_big(size: usize, align: usize) -> bool {
    size >= BIG && align <= PAGE
}

/// Maps `size` bytes of zeroed memory, or null.
#[cfg_attr(feature = "system-allocator", allow(dead_code))]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
    // no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every path returns either null or a block of at least the asked size and
// alignment that no other live block overlaps, and frees only what it was given.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_big(layout.size(), layout.align()) {
            // SAFETY: see `map`.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_big(layout.size(), layout.align()) {
            // SAFETY: see `map`; fresh anonymous pages read as zeros.
            unsafe { map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if is_big(layout.size(), layout.align()) {
            // SAFETY: `block` is a mapping of `layout.size()` bytes made by `map` or
            // `mremap` (same size rule); unmapping it ends it. A failure could only mean
            // the range is not mapped, which the contract rules out.
            unsafe { libc::munmap(block.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { mimalloc::MiMalloc.dealloc(block, layout) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (is_big(layout.size(), align), is_big(new_size, align)) {
            (false, false) => {
                // SAFETY: forwarded with the caller's guarantees.
                unsafe { mimalloc::MiMalloc.realloc(block, layout, new_size) }
            }
            (true, true) => {
                // SAFETY: `block` is a mapping of `layout.size()` bytes; MREMAP_MAYMOVE
                // moves its pages if it cannot grow in place, and on failure leaves it as
                // it was.
                let p = unsafe {
                    libc::mremap(block.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE)
                };
                if p == libc::MAP_FAILED {
                    ptr::null_mut()
                } else {
                    p.cast()
                }
            }
            _ => {
                // Across the threshold: a new block from the other allocator, then a copy.
                // SAFETY: `new_size` is non-zero and `align` a valid alignment (the
                // contract's conditions for `realloc`).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: as for `alloc`.
                let fresh = unsafe { self.alloc(new_layout) };
                if !fresh.is_null() {
                    // SAFETY: both blocks hold at least the bytes copied and do not overlap;
                    // the old one is freed with the layout it was made with.
                    unsafe {
                        ptr::copy_nonoverlapping(block, fresh, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                fresh
            }
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (the same place in the option enum of mimalloc 2 and 3).
pub(crate) const MI_OPTION_PURGE_DELAY: i32 = 15;
/// How long freed memory stays mapped before mimalloc returns it to the system, in ms.
pub(crate) const PURGE_DELAY_MS: std::ffi::c_long = 100;

unsafe extern "C" {
    fn mi_option_set(option: i32, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: i32) -> std::ffi::c_long;
}

/// mimalloc 3 keeps freed memory for a second before it returns it; at 100 ms the blocks
/// of several documents in flight add up less (two 53 MB documents at once peaked at 14–15 ×
/// the packet with one second, 10 × at 100 ms, before big blocks left mimalloc), for about
/// 3 % of the 10 KB benchmark's documents per second (10 ms cost 5–10 %).
/// `MIMALLOC_PURGE_DELAY` set by the operator wins (README, "Big documents").
pub(crate) fn return_freed_memory_sooner() {
    // An operator's own setting (mimalloc reads it at start) stays.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: a plain function of the linked mimalloc taking integers; setting an option is
    // thread-safe and valid at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_set_on_the_linked_mimalloc() {
        return_freed_memory_sooner();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: see `return_freed_memory_sooner`.
            let set = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(set, PURGE_DELAY_MS);
        }
    }

    /// Fills `len` bytes at `p` with a pattern of `seed`, and checks it back.
    fn fill(p: *mut u8, len: usize, seed: u8) {
        for i in (0..len).step_by(4093) {
            // SAFETY: `i < len`, inside the block.
            unsafe { *p.add(i) = seed.wrapping_add((i % 251) as u8) };
        }
    }
    fn holds(p: *const u8, len: usize, seed: u8) -> bool {
        (0..len)
            .step_by(4093)
            // SAFETY: `i < len`, inside the block.
            .all(|i| unsafe { *p.add(i) } == seed.wrapping_add((i % 251) as u8))
    }

    #[test]
    fn blocks_keep_their_bytes_through_every_kind_of_resize() {
        let a = Allocator;
        let small = 64 * 1024;
        let big = BIG + 12_345;
        let bigger = 3 * BIG + 1;
        let layout = |size| Layout::from_size_align(size, 16).unwrap();
        // SAFETY: each block is used within its size and freed once with its layout.
        unsafe {
            // small → big → bigger → big → small: both allocators and every crossing.
            let p = a.alloc(layout(small));
            assert!(!p.is_null());
            fill(p, small, 1);
            let p = a.realloc(p, layout(small), big);
            assert!(!p.is_null() && holds(p, small, 1));
            assert_eq!(p as usize % PAGE, 0, "a big block is page-aligned");
            fill(p, big, 2);
            let p = a.realloc(p, layout(big), bigger);
            assert!(!p.is_null() && holds(p, big, 2));
            fill(p, bigger, 3);
            let p = a.realloc(p, layout(bigger), big);
            assert!(!p.is_null() && holds(p, big, 3));
            let p = a.realloc(p, layout(big), small);
            assert!(!p.is_null() && holds(p, small, 3));
            a.dealloc(p, layout(small));

            // Zeroed big blocks read as zeros.
            let z = a.alloc_zeroed(layout(big));
            assert!(!z.is_null());
            assert!((0..big).step_by(997).all(|i| *z.add(i) == 0));
            a.dealloc(z, layout(big));
        }
    }

    #[test]
    fn vectors_grow_across_the_threshold_through_the_global_allocator() {
        // The binary's tests run with this allocator installed (main.rs).
        let mut v: Vec<u8> = Vec::new();
        for i in 0..(2 * BIG + 7) {
            v.push((i % 253) as u8);
        }
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn alignments_beyond_a_page_stay_with_mimalloc() {
        assert!(is_big(BIG, PAGE));
        assert!(!is_big(BIG, 2 * PAGE));
        assert!(!is_big(BIG - 1, 8));
        let a = Allocator;
        let layout = Layout::from_size_align(BIG, 2 * PAGE).unwrap();
        // SAFETY: allocated and freed once with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % (2 * PAGE), 0);
            a.dealloc(p, layout);
        }
    }
}
