import Synchronization

/// Hands items to one consumer in the order of their sequence numbers, whatever order producers
/// finish them in: the pipeline's embedding workers complete batches out of order, and the apply
/// stage must write them in commit order.
///
/// Sequences start at 1 and have no gaps. `take(n)` waits until item `n` was put (or the handoff
/// was finished). Items put ahead of the consumer wait here; the pipeline bounds how many there can
/// be by bounding the batches in flight.
final class OrderedHandoff<Element: Sendable>: Sendable {
    private struct State {
        var ready: [Int: Element] = [:]
        var waiter: (sequence: Int, continuation: CheckedContinuation<Element?, Never>)?
        var finished = false
    }

    private let state = Mutex(State())

    /// Makes item `sequence` available.
    func put(_ element: Element, sequence: Int) {
        let wake: CheckedContinuation<Element?, Never>? = state.withLock { state in
            if let waiter = state.waiter, waiter.sequence == sequence {
                state.waiter = nil
                return waiter.continuation
            }
            state.ready[sequence] = element
            return nil
        }
        wake?.resume(returning: element)
    }

    /// Item `sequence`, once put; `nil` after ``finish()`` unless it was put before.
    func take(_ sequence: Int) async -> Element? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
            let immediate: Element?? = state.withLock { state in
                if let element = state.ready.removeValue(forKey: sequence) { return .some(element) }
                if state.finished { return .some(nil) }
                state.waiter = (sequence, continuation)
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// No more items: a waiting or later ``take(_:)`` of an item not put returns `nil`.
    func finish() {
        let wake: CheckedContinuation<Element?, Never>? = state.withLock { state in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        wake?.resume(returning: nil)
    }
}
