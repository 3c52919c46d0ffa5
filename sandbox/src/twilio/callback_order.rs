//! The order a call's status callbacks go out in. Normally as they happen;
//! under the `reorder_status_callbacks` fault each event waits for the next
//! one and goes out right after it, so every pair arrives swapped
//! (`ringing, initiated, completed, in-progress`): a late event can then
//! overtake the final one, as Twilio's can.

#[derive(Debug)]
pub struct CallbackOrder<T> {
    swap_pairs: bool,
    held: Option<T>,
}

impl<T> CallbackOrder<T> {
    pub fn new(swap_pairs: bool) -> CallbackOrder<T> {
        CallbackOrder { swap_pairs, held: None }
    }

    /// The events to send now, in order, once `event` happened. Two events
    /// mean the first overtook the one held back.
    pub fn release(&mut self, event: T) -> Vec<T> {
        if !self.swap_pairs {
            return vec![event];
        }
        match self.held.take() {
            Some(earlier) => vec![event, earlier],
            None => {
                self.held = Some(event);
                Vec::new()
            }
        }
    }

    /// The event still held when the call has no more to report.
    pub fn flush(&mut self) -> Option<T> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(swap: bool, events: &[u32]) -> Vec<u32> {
        let mut order = CallbackOrder::new(swap);
        let mut out: Vec<u32> = events.iter().flat_map(|e| order.release(*e)).collect();
        out.extend(order.flush());
        out
    }

    #[test]
    fn in_order_without_the_fault() {
        assert_eq!(delivered(false, &[0, 1, 2, 3]), [0, 1, 2, 3]);
    }

    #[test]
    fn pairs_swapped_with_the_fault() {
        // initiated, ringing, in-progress, completed: the final one is overtaken.
        assert_eq!(delivered(true, &[0, 1, 2, 3]), [1, 0, 3, 2]);
        // initiated, ringing, busy: the odd one out goes last.
        assert_eq!(delivered(true, &[0, 1, 2]), [1, 0, 2]);
        assert_eq!(delivered(true, &[0]), [0]);
    }
}
