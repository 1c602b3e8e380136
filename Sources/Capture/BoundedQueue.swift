import Synchronization

/// An async FIFO queue with a fixed capacity: `push` waits while it is full, `pop` while it is empty.
///
/// Joins pipeline stages with backpressure: a slow consumer slows its producer instead of letting
/// memory grow. Several producers and consumers may share one queue. Cancelling a waiting task
/// makes its call throw `CancellationError` (push) or return `nil` (pop).
public final class BoundedQueue<Element: Sendable>: Sendable {
    private struct State {
        /// Slots before `head` are consumed and already `nil`, so nothing consumed stays alive.
        var items: [Element?] = []
        var head = 0
        var finished = false
        var nextID = 0
        var producers: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var consumers: [(id: Int, continuation: CheckedContinuation<Element?, Never>)] = []
        var count: Int { items.count - head }

        mutating func removeFirst() -> Element? {
            let item = items[head].take()
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 64 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    private enum PushStep { case done, wait, closed }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Number of items waiting.
    public var count: Int { state.withLock { $0.count } }

    /// Appends `element`, waiting while the queue is full.
    /// - Throws: `CancellationError` if the task is cancelled while waiting or the queue was finished.
    public func push(_ element: Element) async throws {
        while true {
            var wake: CheckedContinuation<Element?, Never>?
            let step: PushStep = state.withLock { state in
                if state.finished { return .closed }
                if !state.consumers.isEmpty {
                    wake = state.consumers.removeFirst().continuation
                    return .done
                }
                if state.count < capacity {
                    state.items.append(element)
                    return .done
                }
                return .wait
            }
            switch step {
            case .done:
                wake?.resume(returning: element)
                return
            case .closed:
                throw CancellationError()
            case .wait:
                try Task.checkCancellation()
                let id = state.withLock { state -> Int in
                    state.nextID += 1
                    return state.nextID
                }
                let proceed = await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                        let resumeNow: Bool? = state.withLock { state in
                            if state.finished { return false }
                            if Task.isCancelled { return false }
                            if state.count < capacity || !state.consumers.isEmpty { return true }
                            state.producers.append((id, continuation))
                            return nil
                        }
                        if let resumeNow { continuation.resume(returning: resumeNow) }
                    }
                } onCancel: {
                    let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                        guard let index = state.producers.firstIndex(where: { $0.id == id }) else { return nil }
                        return state.producers.remove(at: index).continuation
                    }
                    waiter?.resume(returning: false)
                }
                if !proceed { throw CancellationError() }
            }
        }
    }

    /// Removes and returns the oldest item, waiting while the queue is empty.
    /// Returns `nil` once the queue is finished and drained, or if the task is cancelled.
    public func pop() async -> Element? {
        if let item = tryPop() { return item }
        if Task.isCancelled { return nil }
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                var immediate: Element??
                var wakeProducer: CheckedContinuation<Bool, Never>?
                state.withLock { state in
                    if state.count > 0, let item = state.removeFirst() {
                        immediate = .some(item)
                        if !state.producers.isEmpty { wakeProducer = state.producers.removeFirst().continuation }
                    } else if state.finished || Task.isCancelled {
                        immediate = .some(nil)
                    } else {
                        state.consumers.append((id, continuation))
                        // A producer blocked on a full queue can now hand over directly.
                        if !state.producers.isEmpty { wakeProducer = state.producers.removeFirst().continuation }
                    }
                }
                wakeProducer?.resume(returning: true)
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Element?, Never>? in
                guard let index = state.consumers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.consumers.remove(at: index).continuation
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Removes and returns the oldest item if there is one, without waiting.
    public func tryPop() -> Element? {
        var wakeProducer: CheckedContinuation<Bool, Never>?
        let item: Element? = state.withLock { state in
            guard state.count > 0 else { return nil }
            if !state.producers.isEmpty { wakeProducer = state.producers.removeFirst().continuation }
            return state.removeFirst()
        }
        wakeProducer?.resume(returning: true)
        return item
    }

    /// Ends the queue: waiting producers throw, consumers drain what is left and then get `nil`.
    public func finish() {
        let (producers, consumers) = state.withLock { state in
            state.finished = true
            defer {
                state.producers.removeAll()
                state.consumers.removeAll()
            }
            return (state.producers, state.count == 0 ? state.consumers : [])
        }
        for producer in producers { producer.continuation.resume(returning: false) }
        for consumer in consumers { consumer.continuation.resume(returning: nil) }
    }
}
