import Synchronization

/// Admits requests to one provider within its ``RequestBudget``: callers wait their turn here,
/// outside the lock, and give their permit back when the request is over.
///
/// Safe to use from any number of tasks at once. Waiting is prompt to cancel: a cancelled caller
/// leaves the queue at once and ``acquire(tokens:)`` throws `CancellationError`.
final class RequestGate: Sendable {
    private let state: Mutex<RequestBudget>

    init(configuration: RequestBudget.Configuration) {
        state = Mutex(RequestBudget(configuration: configuration))
    }

    /// The most tokens one request may carry to fit the tokens-per-minute window (`nil`: no limit).
    var maxRequestTokens: Int? { state.withLock { $0.maxRequestTokens } }

    /// Requests in flight now.
    var inFlight: Int { state.withLock { $0.inFlight } }

    /// Waits until a request of `tokens` (estimated) may be sent.
    func acquire(tokens: Int) async throws -> RequestBudget.Permit {
        let id = state.withLock { $0.enqueue(tokens: tokens) }
        do {
            while true {
                try Task.checkCancellation()
                let (poll, wake) = state.withLock { $0.poll(id, now: .now) }
                wake?.resume()
                switch poll {
                case .admitted(let permit):
                    return permit
                case .sleep(let until):
                    try await Task.sleep(until: until, clock: .continuous)
                case .suspend:
                    await suspend(id)
                }
            }
        } catch {
            for continuation in state.withLock({ $0.leave(id) }) { continuation.resume() }
            throw error
        }
    }

    /// The request is over. `tokens`: the provider's count if it reported one (corrects the
    /// estimate in the tokens window); `succeeded`: whether the provider answered (`nil`: unknown,
    /// the caller was cancelled).
    func release(_ permit: RequestBudget.Permit, tokens: Int?, succeeded: Bool?) {
        state.withLock { $0.release(permit, tokens: tokens, succeeded: succeeded, at: .now) }?.resume()
    }

    /// The request of `permit` is going out now (its budget windows count it from here).
    func sent(_ permit: RequestBudget.Permit) {
        state.withLock { $0.sent(permit, at: .now) }?.resume()
    }

    /// Sends nothing before `until` (the provider asked to wait).
    func pause(until: ContinuousClock.Instant) {
        state.withLock { $0.pause(until: until) }?.resume()
    }

    private func suspend(_ id: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if state.withLock({ $0.suspend(id, continuation) }) { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.wake(id) }?.resume()
        }
    }
}
