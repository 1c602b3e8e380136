import Capture
import Foundation
import Logging
import Postgres
import Synchronization
import Testing

/// A throwaway PostgreSQL server started by `Scripts/pg-servers.sh` (URLs from the environment).
struct LiveServer: CustomStringConvertible, Sendable {
    var name: String
    var url: String
    var binDirectory: String?
    var description: String { name }

    /// Both servers when `Scripts/pg-servers.sh env` was sourced; none otherwise.
    static let all: [LiveServer] = {
        let environment = ProcessInfo.processInfo.environment
        var servers: [LiveServer] = []
        for version in ["15", "18"] {
            if let url = environment["TIDEMARK_TEST_PG\(version)_URL"], !url.isEmpty {
                servers.append(LiveServer(name: "pg\(version)", url: url, binDirectory: environment["TIDEMARK_TEST_PG\(version)_BIN"]))
            }
        }
        return servers
    }()

    /// The first server, for tests that need only one.
    static let first: [LiveServer] = Array(all.prefix(1))
}

let testLogger: Logger = {
    var logger = Logger(label: "tidemark.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["TIDEMARK_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
    return logger
}()

/// A fresh database on a live server, dropped (with its slots) by ``drop()``.
final class TestDatabase: Sendable {
    let server: LiveServer
    let name: String
    let url: String
    let connection: PostgresConnection

    private init(server: LiveServer, name: String, url: String, connection: PostgresConnection) {
        self.server = server
        self.name = name
        self.url = url
        self.connection = connection
    }

    static func create(on server: LiveServer) async throws -> TestDatabase {
        let name = "tm_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let admin = try await PostgresConnection.connect(server.url, logger: testLogger)
        try await admin.query("CREATE DATABASE \(name)")
        await admin.close()
        let url = Self.url(server.url, database: name)
        let connection = try await PostgresConnection.connect(url, logger: testLogger)
        return TestDatabase(server: server, name: name, url: url, connection: connection)
    }

    /// `url` with its database replaced.
    static func url(_ url: String, database: String) -> String {
        guard let slash = url.range(of: "/", options: .backwards), url[..<slash.lowerBound].hasSuffix("//") == false else { return url }
        let query = url[slash.upperBound...].firstIndex(of: "?").map { String(url[$0...]) } ?? ""
        return String(url[..<slash.upperBound]) + database + query
    }

    /// Runs SQL (one or more statements, simple protocol).
    @discardableResult
    func exec(_ sql: String) async throws -> QueryResult {
        try await connection.simpleQuery(sql)
    }

    func scalar(_ sql: String, _ parameters: [String?] = []) async throws -> String? {
        try await connection.query(sql, parameters).rows.first?.first ?? nil
    }

    func currentLSN() async throws -> LSN {
        try LSN.parse(try await scalar("SELECT pg_current_wal_insert_lsn()::text") ?? "")
    }

    /// Sets up publication `tidemark` of `tables` and a slot (named like the database unless given:
    /// slot names are cluster-wide, and tests run in parallel); returns the slot's start position.
    func prepareReplication(slot: String? = nil, tables: [String]) async throws -> LSN {
        let setup = ReplicationSetup(
            configuration: .init(slotName: slot ?? name, publicationName: "tidemark", tables: tables.compactMap { TableName(parsing: $0) }),
            logger: testLogger)
        try await setup.ensurePublication(on: connection)
        return try await setup.ensureSlot(on: connection).confirmedFlush
    }

    func drop() async {
        await connection.close()
        guard let admin = try? await PostgresConnection.connect(server.url, logger: testLogger) else { return }
        _ = try? await admin.query(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL", [name])
        for _ in 0..<50 {
            let dropped = try? await admin.query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", [name])
            let left = try? await admin.query("SELECT count(*) FROM pg_replication_slots WHERE database = $1", [name])
            if dropped != nil, left?.rows.first?.first == "0" { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        _ = try? await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        await admin.close()
    }
}

/// Runs `body` with a fresh database, dropping it afterwards even when the body throws.
func withDatabase(on server: LiveServer, _ body: (TestDatabase) async throws -> Void) async throws {
    let database = try await TestDatabase.create(on: server)
    do {
        try await body(database)
    } catch {
        await database.drop()
        throw error
    }
    await database.drop()
}

/// Everything a reader delivered, for assertions.
final class EventLog: Sendable {
    private struct State {
        var pieces: [TransactionPiece] = []
        var messages: [PgOutputMessage.LogicalMessage] = []
    }

    private let state = Mutex(State())

    func record(_ events: [CaptureEvent]) {
        state.withLock { state in
            for event in events {
                switch event {
                case .transaction(let piece): state.pieces.append(piece)
                case .message(let message): state.messages.append(message)
                case .idle: break
                }
            }
        }
    }

    var pieces: [TransactionPiece] { state.withLock { $0.pieces } }
    var changes: [RowChange] { state.withLock { $0.pieces.flatMap(\.changes) } }
    var messages: [PgOutputMessage.LogicalMessage] { state.withLock { $0.messages } }
    var committedEnds: [LSN] { state.withLock { $0.pieces.filter(\.isFinal).map(\.endLSN) } }

    /// Waits until `condition` holds, failing the test after `timeout`.
    func wait(
        for what: String, timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: (EventLog) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(self) {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what); have \(changes.count) changes", sourceLocation: sourceLocation)
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Runs a reader on `database` while `body` drives the workload; the reader confirms each final
/// piece as soon as it has been recorded (as a durable consumer would) when `confirm` is true.
func withReader(
    _ database: TestDatabase, slot: String? = nil, startLSN: LSN = .zero, confirm: Bool = true,
    configure: (inout ReplicationReader.Configuration) -> Void = { _ in },
    _ body: (ReplicationReader, EventLog) async throws -> Void
) async throws {
    var configuration = ReplicationReader.Configuration(connectionString: database.url, slotName: slot ?? database.name, publicationNames: ["tidemark"])
    configuration.startLSN = startLSN
    configuration.reconnectDelay = .milliseconds(50)
    configure(&configuration)
    let reader = ReplicationReader(configuration: configuration, logger: testLogger)
    let log = EventLog()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await reader.run { events in
                log.record(events)
                if confirm, let last = events.compactMap(\.confirmableLSN).max() {
                    reader.confirm(last)
                }
            }
        }
        do {
            try await body(reader, log)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
        try await group.waitForAll()
    }
}

/// A small deterministic generator, so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
