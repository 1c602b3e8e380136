import Foundation
import Logging
import Postgres
import Synchronization

/// Reads a logical replication slot with `pgoutput` and hands over committed transactions in order.
///
/// Guarantees:
/// - Transactions are delivered once they committed, in commit order; after a reconnect nothing
///   already delivered in this process is delivered again.
/// - The slot is confirmed (flush LSN) only up to what the caller declared durable with
///   ``confirm(_:)``, never further: the caller's own record of its position is what a restart and
///   gap detection rely on. An idle database still advances: a keepalive's WAL end seen with no
///   transaction open is delivered as ``CaptureEvent/idle(_:)``, for the caller to record and confirm.
/// - Standby status updates go out on an interval derived from the server's `wal_sender_timeout`,
///   also while the consumer is slow, and at once when the server asks for one.
/// - A lost connection is retried with exponential backoff from the last confirmed position; a
///   missing or invalidated slot is reported as an error (``CaptureError/Code/slotLost``), never
///   ignored.
public final class ReplicationReader: Sendable {
    public struct Configuration: Sendable {
        /// A URL or conninfo of the source database; `replication=database` is added.
        public var connectionString: String
        public var slotName: String
        public var publicationNames: [String]
        /// Where to start when nothing was confirmed yet (`0/0`: the slot's confirmed position).
        public var startLSN: LSN = .zero
        /// pgoutput protocol version. 2 (default) streams transactions larger than
        /// `logical_decoding_work_mem` before they commit, so neither side holds them whole.
        public var protocolVersion = 2
        /// Ask for non-transactional and transactional logical messages (watermarks, heartbeats).
        public var messages = true
        /// Least time between two ``CaptureEvent/idle(_:)`` events: each costs the consumer a write,
        /// and under load commits move its position anyway. Default 1 s.
        public var idleEventInterval: Duration = .seconds(1)
        /// Status update interval; `nil` (default) derives it from `wal_sender_timeout` (a quarter
        /// of it, between 100 ms and 10 s).
        public var statusInterval: Duration?
        /// First delay before reconnecting; doubles up to ``maxReconnectDelay``. Default 200 ms.
        public var reconnectDelay: Duration = .milliseconds(200)
        /// Longest delay between reconnect attempts. Default 10 s.
        public var maxReconnectDelay: Duration = .seconds(10)
        /// Consecutive failed attempts before giving up; `nil` (default) retries forever.
        public var maxReconnectAttempts: Int?
        /// Batches of events buffered between reader and consumer. Default 16.
        public var queueCapacity = 16
        /// Longest wait on the socket before the loop looks at status and cancellation. Default 100 ms.
        public var pollInterval: Duration = .milliseconds(100)
        public var assembler = ChangeAssembler.Configuration()

        public init(connectionString: String, slotName: String, publicationNames: [String]) {
            self.connectionString = connectionString
            self.slotName = slotName
            self.publicationNames = publicationNames
        }
    }

    /// Counters for metrics and tests.
    public struct Statistics: Sendable {
        public var messages = 0
        public var transactions = 0
        public var changes = 0
        public var reconnects = 0
        public var statusUpdates = 0
        /// Highest WAL position received.
        public var received = LSN.zero
        /// Last flush position sent to the server.
        public var flushed = LSN.zero
    }

    private struct State {
        var connection: PostgresConnection?
        var durable = LSN.zero
        /// Position of the last event handed to the queue.
        var queued = LSN.zero
        /// When the last idle event was handed over.
        var lastIdleEvent: ContinuousClock.Instant?
        var statistics = Statistics()
        var statusInterval = Duration.seconds(10)
        var lastStatus = ContinuousClock.now
        var stopping = false

        /// The flush position to report: never beyond what the caller declared durable.
        var flushPosition: LSN { durable }
    }

    public let configuration: Configuration
    private let logger: Logger
    private let state: Mutex<State>

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var initial = State()
        initial.durable = configuration.startLSN
        initial.queued = configuration.startLSN
        initial.statusInterval = configuration.statusInterval ?? .seconds(10)
        self.state = Mutex(initial)
    }

    /// Declares everything up to `lsn` durable downstream; the next status update confirms it.
    /// Positions only move forward.
    public func confirm(_ lsn: LSN) {
        state.withLock { if lsn > $0.durable { $0.durable = lsn } }
    }

    /// The position confirmed so far by the caller.
    public var confirmed: LSN { state.withLock { $0.durable } }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Streams until ``stop()``, cancellation or a non-recoverable error, calling `handler` with each
    /// batch of events in order. The handler runs concurrently with reading; when it is slow, reading
    /// pauses (bounded queue) but status updates continue.
    ///
    /// The handler is also called with an empty array whenever no more events are waiting (the moment
    /// to flush a partial batch), and once more after ``stop()`` when everything read was handled.
    ///
    /// Returns normally after ``stop()`` or cancellation, after a final status update that confirms
    /// what the handler declared durable.
    public func run(_ handler: @escaping @Sendable ([CaptureEvent]) async throws -> Void) async throws {
        let queue = BoundedQueue<[CaptureEvent]>(capacity: configuration.queueCapacity)
        enum Role { case producer, ticker, consumer }
        try await withThrowingTaskGroup(of: Role.self) { group in
            group.addTask {
                defer { queue.finish() }
                try await self.produce(into: queue)
                return .producer
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                    await self.sendStatus(force: false)
                }
                return .ticker
            }
            group.addTask {
                while let events = await queue.pop() {
                    try await handler(events)
                    if queue.count == 0 { try await handler([]) }
                }
                // Drained after stop(): one last call so the consumer can flush and confirm.
                if !Task.isCancelled { try await handler([]) }
                return .consumer
            }
            defer { group.cancelAll() }
            // The consumer ends last: after the producer stopped and the queue drained, or on cancellation.
            while let role = try await group.next(), role != .consumer {}
            // A producer that failed also ended the queue, so the consumer may have been seen first:
            // collect the other tasks too, so that their error is thrown, not lost.
            group.cancelAll()
            while try await group.next() != nil {}
        }
        // Final confirmation, then close.
        await sendStatus(force: true)
        let connection = state.withLock { state -> PostgresConnection? in
            defer { state.connection = nil }
            return state.connection
        }
        if let connection {
            await connection.endCopyBoth()
            await connection.close()
        }
    }

    /// Asks ``run(_:)`` to stop reading, hand over what was read, confirm, and return.
    public func stop() {
        state.withLock { $0.stopping = true }
    }

    // MARK: - Reading

    private func produce(into queue: BoundedQueue<[CaptureEvent]>) async throws {
        var assembler = ChangeAssembler(configuration: configuration.assembler)
        var failures = 0
        var delay = configuration.reconnectDelay
        while !Task.isCancelled && !state.withLock({ $0.stopping }) {
            var connection: PostgresConnection?
            do {
                let opened = try await startStream()
                connection = opened.connection
                state.withLock { $0.statusInterval = opened.statusInterval }
                assembler.reset()
                failures = 0
                delay = configuration.reconnectDelay
                try await stream(from: opened.connection, assembler: &assembler, into: queue)
                return  // cancelled
            } catch let error where Self.isRetryable(error) && !Task.isCancelled {
                failures += 1
                state.withLock {
                    $0.connection = nil
                    $0.statistics.reconnects += 1
                }
                await connection?.close()
                if let limit = configuration.maxReconnectAttempts, failures > limit {
                    throw error
                }
                logger.warning(
                    "replication connection lost; reconnecting",
                    metadata: [
                        "slot.name": "\(configuration.slotName)", "error": "\(error)",
                        "retry.delay": "\(delay)", "lsn.flush": "\(confirmed)",
                    ])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, configuration.maxReconnectDelay)
            } catch {
                await connection?.close()
                if Task.isCancelled && error is CancellationError { return }
                throw error
            }
        }
    }

    private func startStream() async throws -> (connection: PostgresConnection, statusInterval: Duration) {
        let connection = try await PostgresConnection.connect(
            configuration.connectionString, kind: .logicalReplication, applicationName: "tidemark-replication",
            logger: logger)
        do {
            let interval: Duration
            if let configured = configuration.statusInterval {
                interval = configured
            } else {
                let timeout = try await connection.simpleQuery("SHOW wal_sender_timeout").rows.first?.first ?? nil
                interval = Self.statusInterval(forSenderTimeout: timeout ?? "60s")
            }
            let start = state.withLock { $0.durable }
            let publications = configuration.publicationNames.joined(separator: ",")
            var options = [
                "proto_version '\(configuration.protocolVersion)'",
                "publication_names \(PostgresConnection.quoteLiteral(publications))",
            ]
            if configuration.messages { options.append("messages 'true'") }
            if configuration.protocolVersion >= 2 { options.append("streaming 'on'") }
            let command = "START_REPLICATION SLOT \(PostgresConnection.quoteIdentifier(configuration.slotName)) LOGICAL \(start) (\(options.joined(separator: ", ")))"
            try await connection.startCopyBoth(command)
            state.withLock { $0.connection = connection }
            logger.info(
                "replication started",
                metadata: ["slot.name": "\(configuration.slotName)", "lsn.start": "\(start)", "status.interval": "\(interval)"])
            return (connection, interval)
        } catch {
            await connection.close()
            throw Self.classify(error, slot: configuration.slotName)
        }
    }

    private func stream(
        from connection: PostgresConnection, assembler: inout ChangeAssembler, into queue: BoundedQueue<[CaptureEvent]>
    ) async throws {
        let pieceSize = configuration.assembler.pieceSize
        while !Task.isCancelled && !state.withLock({ $0.stopping }) {
            let batch: CopyBatch
            do {
                batch = try await connection.readCopyBoth(timeout: configuration.pollInterval)
            } catch {
                throw Self.classify(error, slot: configuration.slotName)
            }
            var events: [CaptureEvent] = []
            var pendingChanges = 0
            var replyRequested = false
            var received = LSN.zero
            var idleEnd: LSN?
            var transactions = 0
            var changes = 0
            for index in 0..<batch.count {
                switch try WalSenderMessage.decode(batch[index]) {
                case .keepalive(let walEnd, _, let reply):
                    received = max(received, walEnd)
                    replyRequested = replyRequested || reply
                    if !assembler.hasOpenTransaction { idleEnd = walEnd }
                case .xLogData(let walStart, _, _, let payload):
                    received = max(received, walStart)
                    let message = try PgOutputDecoder.decode(payload, inStream: assembler.inStream)
                    switch try assembler.process(message) {
                    case .none:
                        break
                    case .message(let logical):
                        let fresh = state.withLock { state in
                            guard logical.lsn > state.queued else { return false }
                            state.queued = logical.lsn
                            return true
                        }
                        if fresh { events.append(.message(logical)) }
                    case .committed(var transaction):
                        let fresh = state.withLock { $0.queued < transaction.endLSN }
                        guard fresh else { continue }  // delivered before a reconnect
                        while let piece = try transaction.nextPiece() {
                            if piece.isFinal {
                                state.withLock { $0.queued = max($0.queued, piece.endLSN) }
                            }
                            changes += piece.changes.count
                            pendingChanges += piece.changes.count
                            events.append(.transaction(piece))
                            if pendingChanges >= pieceSize {
                                try await queue.push(events)
                                events = []
                                pendingChanges = 0
                            }
                        }
                        transactions += 1
                    }
                }
            }
            // An idle position past everything delivered: the consumer records it like a commit.
            if let idleEnd, !assembler.hasOpenTransaction {
                let interval = configuration.idleEventInterval
                let fresh = state.withLock { state in
                    let now = ContinuousClock.now
                    guard idleEnd > state.queued, state.lastIdleEvent.map({ now - $0 >= interval }) ?? true else { return false }
                    state.queued = idleEnd
                    state.lastIdleEvent = now
                    return true
                }
                if fresh { events.append(.idle(idleEnd)) }
            }
            if !events.isEmpty { try await queue.push(events) }
            state.withLock {
                $0.statistics.messages += batch.count
                $0.statistics.transactions += transactions
                $0.statistics.changes += changes
                $0.statistics.received = max($0.statistics.received, received)
            }
            if batch.ended {
                throw PostgresError(.connectionLost, "the server ended the replication stream")
            }
            if replyRequested { await sendStatus(force: true) }
        }
    }

    // MARK: - Status

    private func sendStatus(force: Bool) async {
        let (connection, update) = state.withLock { state -> (PostgresConnection?, StandbyStatusUpdate) in
            let now = ContinuousClock.now
            guard force || now - state.lastStatus >= state.statusInterval else {
                return (nil, StandbyStatusUpdate(written: .zero, flushed: .zero, applied: .zero))
            }
            state.lastStatus = now
            let flush = state.flushPosition
            let written = max(state.statistics.received, flush)
            return (state.connection, StandbyStatusUpdate(written: written, flushed: flush, applied: flush))
        }
        guard let connection else { return }
        do {
            try await connection.sendCopyData(update.bytes)
            state.withLock {
                $0.statistics.statusUpdates += 1
                $0.statistics.flushed = update.flushed
            }
            logger.trace("status update", metadata: ["lsn.flush": "\(update.flushed)", "lsn.write": "\(update.written)"])
        } catch {
            // The reading loop notices the broken connection and reconnects.
            logger.debug("status update failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Helpers

    /// A quarter of `wal_sender_timeout` (text such as `60s`, `1min`, `500ms`, `0`), clamped to
    /// 100 ms…10 s; 10 s when the timeout is disabled or unreadable.
    public static func statusInterval(forSenderTimeout text: String) -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let value = Double(digits), value > 0 else { return .seconds(10) }
        let milliseconds: Double
        switch unit {
        case "us": milliseconds = value / 1000
        case "ms": milliseconds = value
        case "", "s": milliseconds = value * (unit.isEmpty ? 1 : 1000)
        case "min": milliseconds = value * 60_000
        case "h": milliseconds = value * 3_600_000
        case "d": milliseconds = value * 86_400_000
        default: return .seconds(10)
        }
        let quarter = min(max(milliseconds / 4, 100), 10_000)
        return .milliseconds(Int64(quarter))
    }

    /// Maps server errors about the slot to ``CaptureError``s that say what to do.
    static func classify(_ error: any Error, slot: String) -> any Error {
        guard let postgres = error as? PostgresError else { return error }
        let text = postgres.message + " " + (postgres.detail ?? "")
        if text.contains("does not exist") && text.contains("slot") {
            return CaptureError(
                .replicationSetup,
                "replication slot \"\(slot)\" does not exist; create it (tidemark creates it on first start) or fix the slot name",
                underlying: error)
        }
        if text.contains("invalidated") || text.contains("can no longer get changes") || text.contains("requested WAL segment") {
            return CaptureError(
                .slotLost,
                "replication slot \"\(slot)\" was invalidated and lost the WAL it needed; drop it and re-backfill",
                underlying: error)
        }
        if text.contains("publication") && text.contains("does not exist") {
            return CaptureError(.replicationSetup, "a publication named in the configuration does not exist", underlying: error)
        }
        return error
    }

    /// Whether `error` is a passing connection problem (lost connection, server restarting, slot
    /// still held by a walsender that is going away) worth retrying.
    public static func isRetryable(_ error: any Error) -> Bool {
        if let postgres = error as? PostgresError {
            switch postgres.code {
            case .connectionLost, .connectionFailed: return true
            default:
                // 55006: the slot is still held by a walsender that is shutting down.
                return postgres.sqlState == "55006" || postgres.sqlState?.hasPrefix("57P") == true
                    || postgres.sqlState?.hasPrefix("08") == true
            }
        }
        return false
    }
}
