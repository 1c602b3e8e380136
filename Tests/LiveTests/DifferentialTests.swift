import Foundation
import Testing

/// The seeded, model-based differential test: random transactions over a schema with every kind of
/// key (bigint, uuid, composite, partitioned), TOASTed text, NULLs and an unconfigured table, mixed
/// with faults of the agent (SIGKILL, SIGTERM, rebuilds, targeted backfills, a dropped slot), while
/// `tidemark run` keeps the index. After every round the index must equal the source rendered
/// through the same templates: nothing missing, nothing extra, nothing stale.
///
/// Environment:
/// - `TIDEMARK_DIFF_SEED`: the seed (decimal or 0x-hex); default ``DifferentialSettings/defaultSeed``.
/// - `TIDEMARK_DIFF_OPS`: comma list of operation families (``OperationFamily``); default all.
/// - `TIDEMARK_DIFF_TABLES`: comma list of the tables the workload writes (``SourceTable``); default all.
///   Every table is still loaded and compared; this isolates, say, the partitioned one.
/// - `TIDEMARK_DIFF_ROUNDS`: rounds in bounded mode (default 5, under a minute per server in a debug build).
/// - `TIDEMARK_SOAK_SECONDS`: soak mode: rounds until that many seconds are spent (shared by the servers).
@Suite(.serialized) struct DifferentialTests {
    @Test(arguments: LiveServer.all)
    func indexEqualsTheSourceAfterEveryRound(server: LiveServer) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        let settings = try DifferentialSettings.fromEnvironment()
        print("difftest \(server): \(settings)")
        try await withDatabase(on: server) { database in
            let run = try await DifferentialRun(database: database, binary: binary, settings: settings)
            try await run.execute()
        }
    }

    @Test func familiesParseAndUnknownNamesAreRejected() throws {
        #expect(try OperationFamily.parse(nil) == Set(OperationFamily.allCases))
        #expect(try OperationFamily.parse("insert, slot-drop,backfill-ids") == [.insert, .slotDrop, .backfillIDs])
        #expect(throws: DifferentialTestError.self) { try OperationFamily.parse("insert,trunc") }
        #expect(try SourceTable.parse("event, accounts") == [.accounts, .events])
        #expect(throws: DifferentialTestError.self) { try SourceTable.parse("orders") }
    }

    @Test func theSameSeedGeneratesTheSameWorkload() {
        func steps(_ seed: UInt64) -> [String] {
            var generator = WorkloadGenerator(model: SourceModel(), families: Set(OperationFamily.allCases))
            var script = generator.initialLoad().map(\.sql)
            generator.beginRound(seed: seed, transactions: 40, streams: 1)
            while let step = generator.next() {
                script.append(WorkloadHistory.script(.init(round: 1, step: 0, action: step.action)))
            }
            return script
        }
        #expect(steps(1) == steps(1))
        #expect(steps(1) != steps(2))
    }
}

/// Settings of the differential test, read from the environment.
struct DifferentialSettings: Sendable, CustomStringConvertible {
    static let defaultSeed: UInt64 = 20_240_611

    var seed: UInt64
    var families: Set<OperationFamily>
    /// The tables the workload writes.
    var tables: [SourceTable]
    /// Soak mode: rounds run until this much time is spent on one server.
    var soak: Duration?
    /// Rounds in bounded mode.
    var rounds: Int
    var transactionsPerRound = 30
    /// Longest wait for the agent to catch up after a round (a full reload after a dropped slot
    /// takes a few seconds in a debug build).
    var catchUpTimeout: Duration = .seconds(60)

    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DifferentialSettings {
        var seed = defaultSeed
        if let text = environment["TIDEMARK_DIFF_SEED"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            let parsed = text.lowercased().hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
            guard let parsed else { throw DifferentialTestError("TIDEMARK_DIFF_SEED must be a decimal or 0x-hex number, not '\(text)'") }
            seed = parsed
        }
        var soak: Duration?
        if let text = environment["TIDEMARK_SOAK_SECONDS"], !text.isEmpty {
            guard let seconds = Int(text), seconds > 0 else { throw DifferentialTestError("TIDEMARK_SOAK_SECONDS must be a positive number of seconds") }
            soak = .seconds(seconds) / max(1, LiveServer.all.count)
        }
        var rounds = 5
        if let text = environment["TIDEMARK_DIFF_ROUNDS"], !text.isEmpty {
            guard let count = Int(text), count > 0 else { throw DifferentialTestError("TIDEMARK_DIFF_ROUNDS must be a positive number") }
            rounds = count
        }
        return DifferentialSettings(
            seed: seed, families: try OperationFamily.parse(environment["TIDEMARK_DIFF_OPS"]),
            tables: try SourceTable.parse(environment["TIDEMARK_DIFF_TABLES"]), soak: soak, rounds: rounds)
    }

    /// The seed of one round's choices, derived from the run's seed.
    func roundSeed(_ round: Int) -> UInt64 {
        var mixer = SplitMix64(seed: seed ^ (UInt64(round) &* 0xD1B5_4A32_D192_ED03))
        return mixer.next()
    }

    var familyList: String {
        families.count == OperationFamily.allCases.count ? "all" : families.sorted().map(\.rawValue).joined(separator: ",")
    }

    var tableList: String {
        tables.count == SourceTable.allCases.count ? "all" : tables.map(\.rawValue).joined(separator: ",")
    }

    /// The environment that selects the same seed, families and tables.
    var environmentForReplay: String {
        var variables = ["TIDEMARK_DIFF_SEED=\(seed)", "TIDEMARK_DIFF_OPS=\(familyList)"]
        if tables.count != SourceTable.allCases.count { variables.append("TIDEMARK_DIFF_TABLES=\(tableList)") }
        return variables.joined(separator: " ")
    }

    var description: String {
        let mode = soak.map { "soak for \($0.components.seconds) s on this server (TIDEMARK_SOAK_SECONDS is shared by the servers), rounds" } ?? "\(rounds) rounds"
        return "seed \(seed) (TIDEMARK_DIFF_SEED), families \(familyList), tables \(tableList), \(mode) of \(transactionsPerRound) transactions"
    }
}
