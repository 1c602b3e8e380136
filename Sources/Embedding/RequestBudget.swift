/// The admission state of one provider: requests per minute, tokens per minute, requests in flight,
/// a pause the provider asked for (`Retry-After`), and the queue of requests waiting their turn.
///
/// A pure state machine (no clock, no I/O, no waiting): ``RequestGate`` keeps it behind a lock and
/// does the waiting outside. Guarantees:
/// - **Never over budget.** Requests per minute and tokens per minute are sliding windows scaled
///   down from a minute to about a second: no interval of ``Window/length`` ever holds more than
///   ``Window/limit`` admissions, so no minute holds more than the configured rate either (providers
///   such as OpenAI enforce their per-minute limits in such shorter slices).
/// - **The full rate, not less.** `limit / length` equals the configured rate exactly; a request is
///   admitted the moment the window has room, so the achieved rate is the configured one whenever
///   enough requests wait and enough may be in flight.
/// - **First come, first served.** Only the head of the queue is admitted, so a large request is
///   never starved by small ones behind it.
/// - **One probe while failing.** After a failed request and until the next success, one request is
///   in flight at a time: an outage is probed, not hammered by every waiting request at once.
struct RequestBudget: Sendable {
    typealias Instant = ContinuousClock.Instant

    struct Configuration: Sendable, Equatable {
        var requestsPerMinute: Int?
        var tokensPerMinute: Int?
        /// Requests in flight at once (at least 1).
        var concurrency: Int
        /// The most tokens of one input: the token window is made long enough for such an input.
        var maxInputTokens: Int
    }

    /// At most `limit` units in any interval of `length` (plus a 1% margin for the time a request
    /// takes to reach the provider, which varies between requests).
    ///
    /// An entry is stamped when its request is sent (its body starts going out, after any new
    /// connection is made), not when it was admitted: a request that waited for a connection
    /// reaches the provider later than one on a warm connection. Until then it counts as sent now.
    struct Window: Sendable {
        let length: Duration
        let limit: Int
        private var entries: [Entry] = []
        private(set) var total = 0

        struct Entry: Sendable {
            var id: UInt64
            var at: Instant
            var units: Int
            /// Not sent yet: never expires until stamped.
            var pending: Bool
        }

        init(length: Duration, limit: Int) {
            self.length = length
            self.limit = max(1, limit)
        }

        /// A window for `perMinute` units of which one admission may take up to `largest`: about a
        /// second long when the rate allows, longer when `largest` needs it (at most a minute).
        init(perMinute: Int, largest: Int) {
            let rate = max(1, perMinute)
            let perSecond = (rate + 59) / 60
            let limit = min(rate, max(perSecond, largest))
            // limit / length == rate / 60 s exactly.
            self.init(length: .seconds(60) * Double(limit) / Double(rate), limit: limit)
        }

        private var span: Duration { length + length / 100 }

        mutating func expire(_ now: Instant) {
            let width = span
            guard entries.contains(where: { !$0.pending && $0.at + width <= now }) else { return }
            var freed = 0
            entries.removeAll { entry in
                let expired = !entry.pending && entry.at + width <= now
                if expired { freed += entry.units }
                return expired
            }
            total -= freed
        }

        /// Whether `units` fit now. An admission larger than the whole window is let through alone
        /// when the window is empty (the provider judges it), so it cannot block the queue forever.
        func admits(_ units: Int) -> Bool {
            total + units <= limit || entries.isEmpty
        }

        /// The earliest instant at which `units` fit (after ``expire(_:)`` at `now`); pending
        /// entries count as sent now (their stamp wakes the queue to look again).
        func earliest(_ units: Int, now: Instant) -> Instant {
            var freed = 0
            let ordered = entries.map { (at: $0.pending ? now : $0.at, units: $0.units) }.sorted { $0.at < $1.at }
            for (index, entry) in ordered.enumerated() {
                freed += entry.units
                if total - freed + units <= limit || index == ordered.count - 1 {
                    return max(now, entry.at + span)
                }
            }
            return now
        }

        mutating func record(_ id: UInt64, units: Int, at now: Instant) {
            entries.append(Entry(id: id, at: now, units: units, pending: true))
            total += units
        }

        /// Stamps `id` with the time its request went out (first stamp wins).
        mutating func stamp(_ id: UInt64, at now: Instant) {
            guard let index = entries.lastIndex(where: { $0.id == id }), entries[index].pending else { return }
            entries[index].at = now
            entries[index].pending = false
        }

        /// Replaces the units recorded for `id` (the provider's own token count) while still inside.
        mutating func correct(_ id: UInt64, units: Int) {
            guard let index = entries.lastIndex(where: { $0.id == id }) else { return }
            total += units - entries[index].units
            entries[index].units = units
        }
    }

    /// What the head of the queue may do now.
    enum Poll: Sendable, Equatable {
        /// Send the request; release the permit when its answer (or failure) is in.
        case admitted(Permit)
        /// Sleep until then and poll again (a rate window or a pause).
        case sleep(until: Instant)
        /// Wait to be woken: not the head yet, or every slot is in flight.
        case suspend
    }

    /// One admitted request.
    struct Permit: Sendable, Equatable {
        var id: UInt64
        var tokens: Int
    }

    private struct Ticket: Sendable {
        var id: UInt64
        var tokens: Int
    }

    let configuration: Configuration
    private(set) var requests: Window?
    private(set) var tokens: Window?
    private(set) var inFlight = 0
    private(set) var pausedUntil: Instant?
    /// Set by a failed request, cleared by a successful one.
    private(set) var failing = false
    private var queue: [Ticket] = []
    private var queueHead = 0
    private var suspended: [UInt64: CheckedContinuation<Void, Never>] = [:]
    private var wakeups: Set<UInt64> = []
    private var nextID: UInt64 = 1

    init(configuration: Configuration) {
        self.configuration = configuration
        requests = configuration.requestsPerMinute.map { Window(perMinute: $0, largest: 1) }
        tokens = configuration.tokensPerMinute.map { Window(perMinute: $0, largest: configuration.maxInputTokens) }
    }

    /// The most tokens one request may carry so that it fits the token window.
    var maxRequestTokens: Int? { tokens?.limit }

    /// Requests waiting for admission.
    var waiting: Int { queue.count - queueHead }

    private var concurrency: Int { failing ? 1 : max(1, configuration.concurrency) }

    /// Joins the queue; returns the ticket's id.
    mutating func enqueue(tokens: Int) -> UInt64 {
        let id = nextID
        nextID += 1
        queue.append(Ticket(id: id, tokens: max(0, tokens)))
        return id
    }

    /// Admits ticket `id` if it is the head and the budgets allow it now. When it is admitted, the
    /// new head is returned to be woken (it may be admissible too).
    mutating func poll(_ id: UInt64, now: Instant) -> (Poll, wake: CheckedContinuation<Void, Never>?) {
        guard queueHead < queue.count, queue[queueHead].id == id else { return (.suspend, nil) }
        let ticket = queue[queueHead]
        if let pausedUntil, now < pausedUntil { return (.sleep(until: pausedUntil), nil) }
        if inFlight >= concurrency { return (.suspend, nil) }
        var until: Instant?
        if var window = requests {
            window.expire(now)
            requests = window
            if !window.admits(1) { until = window.earliest(1, now: now) }
        }
        if var window = tokens {
            window.expire(now)
            tokens = window
            if !window.admits(ticket.tokens) {
                let instant = window.earliest(ticket.tokens, now: now)
                until = until.map { max($0, instant) } ?? instant
            }
        }
        if let until { return (.sleep(until: until), nil) }
        requests?.record(id, units: 1, at: now)
        tokens?.record(id, units: ticket.tokens, at: now)
        inFlight += 1
        wakeups.remove(id)
        removeHead()
        return (.admitted(Permit(id: id, tokens: ticket.tokens)), wakeHead())
    }

    /// Parks ticket `id` until woken; `true` when a wake-up already arrived (resume at once).
    mutating func suspend(_ id: UInt64, _ continuation: CheckedContinuation<Void, Never>) -> Bool {
        if wakeups.remove(id) != nil { return true }
        suspended[id] = continuation
        return false
    }

    /// Wakes ticket `id` (or notes the wake-up if it is not parked yet).
    mutating func wake(_ id: UInt64) -> CheckedContinuation<Void, Never>? {
        if let continuation = suspended.removeValue(forKey: id) { return continuation }
        wakeups.insert(id)
        return nil
    }

    /// Leaves the queue (cancelled while waiting); wakes the new head when this was the head.
    mutating func leave(_ id: UInt64) -> [CheckedContinuation<Void, Never>] {
        var resume: [CheckedContinuation<Void, Never>] = []
        if let continuation = suspended.removeValue(forKey: id) { resume.append(continuation) }
        wakeups.remove(id)
        if queueHead < queue.count, queue[queueHead].id == id {
            removeHead()
            if let head = wakeHead() { resume.append(head) }
        } else if let index = queue[queueHead...].firstIndex(where: { $0.id == id }) {
            queue.remove(at: index)
        }
        return resume
    }

    /// The request of `permit` started going out to the provider.
    mutating func sent(_ permit: Permit, at now: Instant) -> CheckedContinuation<Void, Never>? {
        requests?.stamp(permit.id, at: now)
        tokens?.stamp(permit.id, at: now)
        return wakeHead()
    }

    /// The request of `permit` is over. `tokens`: the provider's count, when it gave one.
    /// `succeeded`: whether the provider answered (any answer but a failure to retry); `nil`
    /// (cancelled before an answer) leaves the failing state as it was.
    mutating func release(_ permit: Permit, tokens counted: Int?, succeeded: Bool?, at now: Instant) -> CheckedContinuation<Void, Never>? {
        inFlight = max(0, inFlight - 1)
        // One never sent (no connection) is stamped now: it may still have reached the provider.
        requests?.stamp(permit.id, at: now)
        tokens?.stamp(permit.id, at: now)
        if let counted { tokens?.correct(permit.id, units: counted) }
        if let succeeded { failing = !succeeded }
        return wakeHead()
    }

    /// Admits nothing before `until` (the provider's `Retry-After`).
    mutating func pause(until: Instant) -> CheckedContinuation<Void, Never>? {
        pausedUntil = max(pausedUntil ?? until, until)
        return wakeHead()
    }

    private mutating func removeHead() {
        queueHead += 1
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        } else if queueHead > 64, queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
    }

    private mutating func wakeHead() -> CheckedContinuation<Void, Never>? {
        guard queueHead < queue.count else { return nil }
        return wake(queue[queueHead].id)
    }
}
