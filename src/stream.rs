//! [`UntilErr`]: the ops of a fallible source (a history file, a store's log) as a plain
//! iterator for the replay loops, keeping the first error for the caller to check afterwards.

/// Yields the `Ok` items of `inner` until its first error, which it keeps; [`UntilErr::finish`]
/// returns that error. A consumer must call `finish` before trusting what it computed.
pub struct UntilErr<I, E> {
    inner: I,
    error: Option<E>,
}

impl<I, E> UntilErr<I, E> {
    pub fn new(inner: I) -> UntilErr<I, E> {
        UntilErr { inner, error: None }
    }

    /// `Err` with the error that ended the iteration, if one did.
    pub fn finish(self) -> Result<(), E> {
        self.error.map_or(Ok(()), Err)
    }
}

impl<T, E, I: Iterator<Item = Result<T, E>>> Iterator for UntilErr<I, E> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.error.is_some() {
            return None;
        }
        match self.inner.next()? {
            Ok(item) => Some(item),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_first_error_and_keeps_it() {
        let mut it = UntilErr::new(vec![Ok(1), Ok(2), Err("bad"), Ok(4)].into_iter());
        assert_eq!(it.by_ref().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(it.next(), None);
        assert_eq!(it.finish(), Err("bad"));
        let clean: UntilErr<_, &str> = UntilErr::new(vec![Ok::<i32, &str>(1)].into_iter());
        assert_eq!(clean.finish(), Ok(()));
    }
}
