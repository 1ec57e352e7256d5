//! Where a shard's records live: byte blocks filled one record after another, so a key
//! costs its record's bytes and no allocation of its own.
//!
//! A record is named by a [`Handle`] (4 bytes: block and offset). Removing one only
//! counts its bytes as dead; a block with no live bytes left is freed at once, and one
//! that is mostly dead is queued for [`Arena::take_sparse`], whose caller moves the live
//! records out (updating their handles) and frees it. So after a wave of expiries the
//! blocks go back to the allocator whole, instead of small chunks pinning its pages.

/// Bytes in a block.
pub(super) const BLOCK_BYTES: usize = 16 << 10;
/// Records start at multiples of this.
pub(super) const ALIGN: usize = 4;
/// Handle bits naming the offset in a block (in units of [`ALIGN`]).
const OFFSET_BITS: u32 = (BLOCK_BYTES / ALIGN).trailing_zeros();
/// Blocks one arena can hold (16 GiB of records).
const MAX_BLOCKS: usize = 1 << (u32::BITS - OFFSET_BITS);
/// A block (other than the one being filled) whose live bytes fall below this share of
/// it is emptied into the tail: moving at most a quarter of a block frees a whole one.
const SPARSE_BELOW: usize = BLOCK_BYTES / 4;

/// Where a record lives in its [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Handle(u32);

impl Handle {
    fn new(block: usize, offset: usize) -> Handle {
        // Both fit: `block < MAX_BLOCKS`, `offset < BLOCK_BYTES` and aligned.
        Handle(((block as u32) << OFFSET_BITS) | (offset / ALIGN) as u32)
    }

    fn block(self) -> usize {
        (self.0 >> OFFSET_BITS) as usize
    }

    fn offset(self) -> usize {
        (self.0 & ((1 << OFFSET_BITS) - 1)) as usize * ALIGN
    }
}

/// The bytes a record of `len` bytes takes in a block.
pub(super) fn footprint(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

#[derive(Default)]
struct Block {
    /// Filled from the start; never grows past [`BLOCK_BYTES`] (so never reallocates).
    bytes: Vec<u8>,
    /// Footprints of the records still live here.
    live: usize,
    /// Holds records (false: free, without an allocation).
    used: bool,
    /// Waiting in [`Arena::sparse`].
    queued: bool,
}

/// A shard's record blocks.
#[derive(Default)]
pub(super) struct Arena {
    blocks: Vec<Block>,
    /// Free blocks for reuse before the table grows; may name blocks since reused or cut
    /// off the table, which are skipped.
    vacant: Vec<usize>,
    /// The block new records are appended to.
    tail: Option<usize>,
    /// Blocks to empty ([`Arena::take_sparse`]); may name blocks freed since.
    sparse: Vec<usize>,
}

impl Arena {
    /// Room for a record of `len` bytes (at most [`BLOCK_BYTES`]), written by `write`,
    /// which must append exactly `len` bytes. `None` when the arena is full.
    pub(super) fn push(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Option<Handle> {
        let size = footprint(len);
        if size > BLOCK_BYTES {
            return None;
        }
        let b = match self.tail {
            Some(b) if self.blocks[b].bytes.len() + size <= BLOCK_BYTES => b,
            _ => self.new_tail()?,
        };
        let block = &mut self.blocks[b];
        let offset = block.bytes.len();
        write(&mut block.bytes);
        debug_assert_eq!(block.bytes.len(), offset + len);
        block.bytes.resize(offset + size, 0);
        block.live += size;
        Some(Handle::new(b, offset))
    }

    fn new_tail(&mut self) -> Option<usize> {
        let reused = std::iter::from_fn(|| self.vacant.pop())
            .find(|&b| self.blocks.get(b).is_some_and(|block| !block.used));
        let b = match reused {
            Some(b) => b,
            None if self.blocks.len() < MAX_BLOCKS => {
                self.blocks.push(Block::default());
                self.blocks.len() - 1
            }
            None => return None,
        };
        let block = &mut self.blocks[b];
        block.bytes = Vec::with_capacity(BLOCK_BYTES);
        block.used = true;
        if let Some(old) = self.tail.replace(b) {
            // No longer filled: from now on it is judged like any other block.
            self.check(old);
        }
        Some(b)
    }

    /// The bytes from `h` to the end of its block (a record reads its own length).
    pub(super) fn bytes(&self, h: Handle) -> &[u8] {
        let bytes = self.blocks.get(h.block()).map_or(&[][..], |b| &b.bytes[..]);
        &bytes[h.offset().min(bytes.len())..]
    }

    /// [`Arena::bytes`], writable.
    pub(super) fn bytes_mut(&mut self, h: Handle) -> &mut [u8] {
        let bytes = match self.blocks.get_mut(h.block()) {
            Some(b) => &mut b.bytes[..],
            None => &mut [],
        };
        let from = h.offset().min(bytes.len());
        &mut bytes[from..]
    }

    /// The record of `len` bytes at `h` is dead. Its block is freed once nothing in it
    /// lives, or queued for emptying once little does.
    pub(super) fn release(&mut self, h: Handle, len: usize) {
        let b = h.block();
        if let Some(block) = self.blocks.get_mut(b) {
            block.live = block.live.saturating_sub(footprint(len));
            self.check(b);
        }
    }

    fn check(&mut self, b: usize) {
        let tail = self.tail == Some(b);
        let block = &mut self.blocks[b];
        if !block.used {
            return;
        }
        if block.live == 0 {
            if tail {
                self.tail = None;
            }
            self.free(b);
        } else if !tail && block.live < SPARSE_BELOW && !block.queued {
            block.queued = true;
            self.sparse.push(b);
        }
    }

    fn free(&mut self, b: usize) {
        self.blocks[b] = Block::default();
        self.vacant.push(b);
        // Cut free blocks off the end of the table, and give the table back after a burst.
        while self.blocks.last().is_some_and(|l| !l.used) {
            self.blocks.pop();
        }
        if self.blocks.capacity() > 16 && self.blocks.len() < self.blocks.capacity() / 4 {
            self.blocks.shrink_to(self.blocks.len() * 2);
        }
        if self.vacant.len() > self.blocks.len() {
            let blocks = &self.blocks;
            self.vacant
                .retain(|&v| blocks.get(v).is_some_and(|block| !block.used));
            self.vacant.sort_unstable_by(|a, b| b.cmp(a));
            self.vacant.dedup();
        }
    }

    /// A queued block that still holds live records, and its bytes: the caller moves
    /// each live record elsewhere ([`Arena::push`]), then calls [`Arena::drop_block`].
    /// Blocks freed meanwhile (or made the tail again) are skipped.
    pub(super) fn take_sparse(&mut self) -> Option<(usize, Vec<u8>)> {
        while let Some(b) = self.sparse.pop() {
            let tail = self.tail == Some(b);
            let Some(block) = self.blocks.get_mut(b) else {
                continue;
            };
            block.queued = false;
            if !block.used || tail || block.live >= SPARSE_BELOW {
                continue;
            }
            // Taken out so the caller can push records elsewhere while reading these.
            return Some((b, std::mem::take(&mut block.bytes)));
        }
        None
    }

    /// Frees a block emptied after [`Arena::take_sparse`].
    pub(super) fn drop_block(&mut self, b: usize) {
        if self.blocks.get(b).is_some_and(|block| block.used) {
            self.free(b);
        }
    }

    /// Gives a block taken by [`Arena::take_sparse`] its bytes back, `moved` bytes of
    /// its records having gone elsewhere (when the arena had no room for the rest).
    pub(super) fn restore(&mut self, b: usize, bytes: Vec<u8>, moved: usize) {
        if let Some(block) = self.blocks.get_mut(b) {
            block.bytes = bytes;
            block.live = block.live.saturating_sub(moved);
            // Tried again at the next tidy.
            block.queued = true;
            self.sparse.push(b);
        }
    }

    /// The handle of the record at `offset` of block `b`.
    pub(super) fn handle(b: usize, offset: usize) -> Handle {
        Handle::new(b, offset)
    }

    /// Blocks in use, and bytes live in them.
    #[cfg(test)]
    pub(super) fn usage(&self) -> (usize, usize) {
        let used = self.blocks.iter().filter(|b| b.used);
        used.fold((0, 0), |(n, live), b| (n + 1, live + b.live))
    }
}
