//! A shard-local budget of bytes (a FIFO semaphore counted in bytes), for limits such as
//! `queued.max.request.bytes`: a task takes a permit for the bytes it is about to hold and the
//! permit gives them back when dropped. Waiters are served in arrival order, so a big request
//! is not starved by a stream of small ones.

use std::rc::Rc;

/// A byte budget of one shard. `!Send`: each shard has its own.
#[derive(Debug)]
pub struct ByteBudget {
    sem: Rc<glommio::sync::Semaphore>,
    capacity: u64,
}

/// Bytes held from a [`ByteBudget`]; returned on drop.
#[derive(Debug)]
pub struct BudgetPermit {
    _permit: glommio::sync::StaticPermit,
    bytes: u64,
}

impl BudgetPermit {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl ByteBudget {
    pub fn new(capacity: u64) -> ByteBudget {
        ByteBudget {
            sem: Rc::new(glommio::sync::Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits for `bytes` (at most the whole budget: one request larger than the budget still
    /// runs, alone). `None` only if the budget was closed.
    pub async fn acquire(&self, bytes: u64) -> Option<BudgetPermit> {
        let bytes = bytes.min(self.capacity);
        let permit = self.sem.acquire_static_permit(bytes).await.ok()?;
        Some(BudgetPermit {
            _permit: permit,
            bytes,
        })
    }

    /// [`ByteBudget::acquire`] without waiting: `None` if the bytes are not free now.
    pub fn try_acquire(&self, bytes: u64) -> Option<BudgetPermit> {
        let bytes = bytes.min(self.capacity);
        let permit = self.sem.try_acquire_static_permit(bytes).ok()?;
        Some(BudgetPermit {
            _permit: permit,
            bytes,
        })
    }

    /// Bytes free now.
    pub fn available(&self) -> u64 {
        self.sem.available()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::file::run_local;

    #[test]
    fn permits_wait_in_order_and_return_on_drop() {
        run_local(async {
            let b = ByteBudget::new(100);
            let a = b.acquire(60).await.unwrap();
            assert!(b.try_acquire(50).is_none());
            let c = b.try_acquire(40).unwrap();
            assert_eq!(b.available(), 0);
            drop(a);
            assert_eq!(b.available(), 60);
            // Larger than the whole budget: clamped, runs alone.
            drop(c);
            let big = b.acquire(1_000).await.unwrap();
            assert_eq!(big.bytes(), 100);
        });
    }
}
