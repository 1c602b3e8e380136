import Foundation

/// What ``OpenAIEmbedder`` reports about its provider: health, counters, and when a failure is
/// worth a warning. A state machine without I/O, kept behind the embedder's lock.
///
/// Warnings are rate limited: one when the kind of failure changes (healthy → HTTP 401, HTTP 401 →
/// connection refused, …), then at most one per ``warningInterval`` while it lasts, and one notice
/// when the provider answers again.
struct ProviderStatus: Sendable {
    /// What is wrong, in a word or two (`HTTP 401`, `HTTP 5xx`, `connection`, `timeout`, …).
    private var failingKind: String?
    private var lastWarning: ContinuousClock.Instant?
    private var failuresSinceWarning = 0
    private var failuresInRow = 0
    var warningInterval: Duration = .seconds(60)
    private(set) var health = EmbedderHealth()
    private(set) var statistics = EmbedderStatistics()

    /// A warning to log now.
    struct Warning: Sendable, Equatable {
        var kind: String
        var message: String
        /// Failures of this kind not logged since the previous warning.
        var unlogged: Int
        /// Whether the kind changed (the first warning of this kind).
        var changed: Bool
    }

    /// A request is sent (`retry`: again, after a failure).
    mutating func sent(retry: Bool) {
        statistics.requests += 1
        if retry { statistics.retries += 1 }
    }

    /// The provider answered with vectors. Returns how many failures in a row preceded it, when
    /// it was failing (worth a notice: it recovered).
    mutating func succeeded(inputs: Int, tokens: Int, at date: Date = Date()) -> Int? {
        statistics.inputs += inputs
        statistics.tokens += tokens
        return answered(at: date)
    }

    /// The provider answered but rejected the inputs (HTTP 400): it works; the inputs do not.
    mutating func rejected(at date: Date = Date()) -> Int? {
        statistics.errors += 1
        return answered(at: date)
    }

    private mutating func answered(at date: Date) -> Int? {
        health.lastSuccessAt = date.timeIntervalSince1970
        defer {
            failingKind = nil
            failuresInRow = 0
            failuresSinceWarning = 0
            lastWarning = nil
            health.healthy = true
            health.lastError = nil
        }
        return failingKind == nil ? nil : failuresInRow
    }

    /// A request failed. Returns the warning to log, if one is due.
    mutating func failed(kind: String, message: String, rateLimited: Bool, now: ContinuousClock.Instant = .now) -> Warning? {
        statistics.errors += 1
        if rateLimited { statistics.rateLimited += 1 }
        failuresInRow += 1
        health.healthy = false
        health.lastError = message
        let changed = failingKind != kind
        failingKind = kind
        if changed || lastWarning.map({ now - $0 >= warningInterval }) ?? true {
            let warning = Warning(kind: kind, message: message, unlogged: failuresSinceWarning, changed: changed)
            lastWarning = now
            failuresSinceWarning = 0
            return warning
        }
        failuresSinceWarning += 1
        return nil
    }
}
