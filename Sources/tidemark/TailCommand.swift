import ArgumentParser
import Capture
import Foundation
import Logging
import Postgres

/// `tidemark tail`: prints committed row changes as JSON lines, straight from the replication slot.
///
/// A debugging and scripting aid for the capture layer: it confirms each batch after printing it, so
/// a restart continues where it stopped.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print committed changes of the given tables as JSON lines (one per row change)."
    )

    @OptionGroup var options: SourceOptions

    @Option(name: .long, help: "Table to publish, as schema.table (repeatable; needed with --create).")
    var table: [String] = []

    @Option(name: .long, help: "Replication slot name.")
    var slot = "tidemark_tail"

    @Option(name: .long, help: "Publication name.")
    var publication = "tidemark_tail"

    @Flag(name: .long, help: "Create or update the publication and create the slot if missing.")
    var create = false

    @Option(name: .long, help: "Stop after this many row changes.")
    var limit: Int?

    func run() async throws {
        let logger = try options.makeLogger()
        let url = try options.sourceURL()
        if create {
            var tables: [TableName] = []
            for name in table {
                guard let parsed = TableName(parsing: name) else {
                    throw ValidationError("--table '\(name)' is not a table name; use schema.table")
                }
                tables.append(parsed)
            }
            do {
                let connection = try await PostgresConnection.connect(url, logger: logger)
                let setup = ReplicationSetup(
                    configuration: .init(slotName: slot, publicationName: publication, tables: tables), logger: logger)
                try await setup.ensurePublication(on: connection)
                _ = try await setup.ensureSlot(on: connection)
                await connection.close()
            } catch {
                fail("\(error)")
            }
        }
        let reader = ReplicationReader(
            configuration: .init(connectionString: url, slotName: slot, publicationNames: [publication]), logger: logger)
        let printed = Counter()
        let limit = self.limit
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await reader.run { events in
                        var output = ""
                        for event in events {
                            guard case .transaction(let piece) = event else { continue }
                            for change in piece.changes { output += ChangeLine.json(change) + "\n" }
                            printed.add(piece.changes.count)
                        }
                        FileHandle.standardOutput.write(Data(output.utf8))
                        if let last = events.compactMap(\.confirmableLSN).max() { reader.confirm(last) }
                        if let limit, printed.value >= limit { throw CancellationError() }
                    }
                }
                group.addTask { await waitForTerminationSignal() }
                _ = try await group.next()
                group.cancelAll()
            }
        } catch is CancellationError {
        } catch {
            fail("\(error)")
        }
    }
}

/// A thread-safe tally.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ amount: Int) { lock.withLock { count += amount } }
    var value: Int { lock.withLock { count } }
}

/// Returns when SIGINT or SIGTERM arrives.
func waitForTerminationSignal() async {
    let stream = AsyncStream<Void> { continuation in
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { signalNumber -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: signalNumber)
            source.setEventHandler { continuation.yield() }
            source.resume()
            return source
        }
        nonisolated(unsafe) let retained = sources  // only cancelled, from one place
        continuation.onTermination = { _ in retained.forEach { $0.cancel() } }
    }
    for await _ in stream { return }
}

/// JSON form of a row change for `tail`.
enum ChangeLine {
    static func json(_ change: RowChange) -> String {
        var object: [String: Any] = [
            "op": change.operation.rawValue,
            "table": change.table.description,
            "key": change.keyText.map { $0 as Any? ?? NSNull() },
            "xid": Int(change.xid),
            "commit_lsn": change.commitLSN.description,
            "commit_time": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: PostgresClock.unixSeconds(change.commitTime))),
        ]
        if let values = change.newValues {
            var row: [String: Any] = [:]
            var unchanged: [String] = []
            for (index, column) in change.schema.columns.enumerated() where index < values.count {
                switch values[index] {
                case .null: row[column.name] = NSNull()
                case .text(let text): row[column.name] = text
                case .binary(let bytes): row[column.name] = Data(bytes).base64EncodedString()
                case .unchangedToast: unchanged.append(column.name)
                }
            }
            object["new"] = row
            if !unchanged.isEmpty { object["unchanged_toast"] = unchanged }
        }
        if let oldKey = change.oldKey { object["old_key"] = oldKey.map { $0.text as Any? ?? NSNull() } }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }
}
