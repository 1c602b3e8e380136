// Capture throughput: Tidemark's replication reader + pgoutput decoder + change assembler against
// PostgreSQL's own `pg_recvlogical` on the same slot contents, measured in one run.
//
//   swift run -c release CaptureBenchmark --source postgres://postgres@127.0.0.1:54318/postgres \
//       --bin /tmp/tidemark-pg/py/pgserver/pginstall/bin [--rows 1000000] [--updates 200000]
//
// Both consumers read identical slots created at the same position before the workload, so they
// decode exactly the same WAL. Each is run twice, interleaved (recv, tidemark, tidemark, recv), and
// the mean is reported.
import BenchmarkSupport
import Capture
import Foundation
import Logging
import Postgres

struct Options {
    var source = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG18_URL"] ?? "postgres://postgres@127.0.0.1:54318/postgres"
    var bin = ProcessInfo.processInfo.environment["TIDEMARK_TEST_PG18_BIN"] ?? "/usr/lib/postgresql/15/bin"
    var rows = 1_000_000
    var updates = 200_000
    var rowsPerTransaction = 1_000

    init(_ arguments: [String]) throws {
        let values = try BenchmarkSupport.options(arguments, known: ["--source", "--bin", "--rows", "--updates", "--rows-per-transaction"])
        source = values["--source"] ?? source
        bin = values["--bin"] ?? bin
        rows = values["--rows"].flatMap { Int($0) } ?? rows
        updates = values["--updates"].flatMap { Int($0) } ?? updates
        rowsPerTransaction = values["--rows-per-transaction"].flatMap { Int($0) } ?? rowsPerTransaction
    }
}

/// Runs Tidemark's reader from the slot until `expected` row changes arrived; returns seconds.
func runTidemark(url: String, slot: String, expected: Int, logger: Logger) async throws -> Double {
    let reader = ReplicationReader(
        configuration: .init(connectionString: url, slotName: slot, publicationNames: ["bench"]), logger: logger)
    let started = ContinuousClock.now
    let counter = Counter()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await reader.run { events in
                var changes = 0
                for case .transaction(let piece) in events { changes += piece.changes.count }
                if let last = events.compactMap(\.confirmableLSN).max() { reader.confirm(last) }
                if counter.add(changes) >= expected { throw CancellationError() }
            }
        }
        do {
            try await group.waitForAll()
        } catch is CancellationError {}
    }
    return (ContinuousClock.now - started).seconds
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add(_ amount: Int) -> Int { lock.withLock { value += amount; return value } }
}

func main() async throws {
    let options = try Options(CommandLine.arguments)
    var logger = Logger(label: "bench")
    logger.logLevel = .warning
    let (url, version) = try await BenchmarkSupport.recreateDatabase("tidemark_bench", source: options.source, logger: logger)
    let db = try await PostgresConnection.connect(url, logger: logger)
    try await db.simpleQuery("CREATE TABLE bench (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), category int)")
    let setup = ReplicationSetup(configuration: .init(slotName: "unused", publicationName: "bench", tables: [TableName(schema: "public", name: "bench")]), logger: logger)
    try await setup.ensurePublication(on: db)
    let slots = ["recv_a", "ours_a", "ours_b", "recv_b"]
    for slot in slots {
        try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot])
    }

    print("server: PostgreSQL \(version); workload: \(options.rows) inserted rows, then \(options.updates) updates, \(options.rowsPerTransaction) rows per transaction")
    var results: [(phase: String, rows: Int, recv: Double, ours: Double)] = []
    for phase in ["insert", "update"] {
        let count = phase == "insert" ? options.rows : options.updates
        let perTransaction = options.rowsPerTransaction
        let statement = phase == "insert"
            ? "INSERT INTO bench SELECT g, 'product ' || g || ' ' || md5(g::text), (g % 10000) / 100.0, g % 50 FROM generate_series(i * \(perTransaction) + 1, (i + 1) * \(perTransaction)) g"
            : "UPDATE bench SET name = name || '+', price = price + 1 WHERE id BETWEEN i * \(perTransaction) + 1 AND (i + 1) * \(perTransaction)"
        let loadStart = ContinuousClock.now
        try await db.simpleQuery("""
            DO $$ BEGIN
              FOR i IN 0..\(count / perTransaction - 1) LOOP
                \(statement);
                COMMIT;
              END LOOP;
            END $$
            """)
        let loadSeconds = (ContinuousClock.now - loadStart).seconds
        let endText = try await db.query("SELECT pg_current_wal_lsn()::text").rows.first?.first ?? nil
        let end = try LSN.parse(endText ?? "")
        // A record past the end lets pg_recvlogical notice --endpos at once instead of at the next keepalive.
        try await db.query("SELECT pg_logical_emit_message(false, 'bench', 'end')")
        print("  \(phase): workload written in \(String(format: "%.1f", loadSeconds)) s, WAL end \(end)")
        var recv: [Double] = []
        var ours: [Double] = []
        for slot in slots {
            if slot.hasPrefix("recv") {
                recv.append(try BenchmarkSupport.runRecvLogical(bin: options.bin, url: url, slot: slot, publication: "bench", end: end))
            } else {
                ours.append(try await runTidemark(url: url, slot: slot, expected: count, logger: logger))
            }
            print("    \(slot): \(String(format: "%.2f", (slot.hasPrefix("recv") ? recv.last : ours.last) ?? 0)) s")
        }
        results.append((phase, count, recv.reduce(0, +) / Double(recv.count), ours.reduce(0, +) / Double(ours.count)))
    }
    await db.close()

    print("")
    print("phase    rows      pg_recvlogical rows/s  tidemark rows/s  ratio")
    for result in results {
        let recvRate = Double(result.rows) / result.recv
        let oursRate = Double(result.rows) / result.ours
        print(result.phase.padding(toLength: 9, withPad: " ", startingAt: 0)
            + String(format: "%-9d %-22.0f %-16.0f %.2f×", result.rows, recvRate, oursRate, oursRate / recvRate))
    }
    print(String(format: "peak RSS of the tidemark reader process: %.1f MB", BenchmarkSupport.peakRSSMegabytes()))

    try await BenchmarkSupport.dropDatabase("tidemark_bench", source: options.source, logger: logger)
}

do {
    try await main()
} catch {
    FileHandle.standardError.write(Data("benchmark failed: \(error)\n".utf8))
    exit(1)
}
