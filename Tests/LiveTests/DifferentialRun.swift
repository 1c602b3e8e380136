import Foundation
import Indexing
import Postgres
import Testing

/// One run of the differential test on one database: the schema and its initial rows, the agent, and
/// rounds of workload, each followed by catching up and comparing the index with the source.
final class DifferentialRun {
    let database: TestDatabase
    let settings: DifferentialSettings
    /// Configuration, index, agent logs and the history script; kept when the run fails.
    let directory: String
    let store: any IndexStore
    let agent: AgentSupervisor
    private let workload: PostgresConnection
    private var generator: WorkloadGenerator
    private var history: WorkloadHistory
    /// Problems with the agent seen during the current round (exit statuses, failed commands).
    private var roundProblems: [String] = []
    /// Large transactions run, and those the server streamed (decoded past
    /// `logical_decoding_work_mem` and sent before their commit) on slots already dropped.
    private var largeTransactions = 0
    private var streamedOnDroppedSlots = 0
    private var reportedJobs = Set<String>()

    init(database: TestDatabase, binary: String, settings: DifferentialSettings) async throws {
        self.database = database
        self.settings = settings
        directory = NSTemporaryDirectory() + "tidemark-difftest-\(database.server.name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configPath = directory + "/tidemark.yml"
        try DifferentialSchema.configuration(sourceURL: database.url, slot: database.name, indexPath: directory + "/index.db")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        agent = AgentSupervisor(binary: binary, configPath: configPath, directory: directory)
        var history = try WorkloadHistory(scriptPath: directory + "/history.sql", schema: DifferentialSchema.ddl)

        try await database.exec(DifferentialSchema.ddl)
        // Large transactions then exceed the walsender's decoding memory and are streamed before they
        // commit (a per-database setting, so it reaches the agent's walsender, which starts later).
        try await database.exec("ALTER DATABASE \(database.name) SET logical_decoding_work_mem = '64kB'")
        workload = try await PostgresConnection.connect(database.url, logger: testLogger)
        var generator = WorkloadGenerator(model: SourceModel(), families: settings.families, tables: settings.tables)
        let initial = WorkloadTransaction(kind: .ordinary, statements: generator.initialLoad())
        try await Self.run(initial, on: workload)
        try history.record(round: 0, step: 0, .transaction(initial), outcome: "initial rows, before the agent starts")
        self.history = history
        self.generator = generator
        store = try SQLiteIndexStore(configuration: .init(path: directory + "/index.db"), logger: testLogger)

        let toast = try await database.scalar("SELECT pg_relation_size(reltoastrelid)::text FROM pg_class WHERE oid = 'notes'::regclass")
        guard let bytes = toast.flatMap({ Int($0) }), bytes > 600 * 2_000 else {
            throw DifferentialTestError("the note bodies were not stored out of line (TOAST relation of notes: \(toast ?? "none") bytes)")
        }
    }

    /// Starts the agent, runs the rounds, stops the agent. Records an issue for the first round whose
    /// index differs from the source, and stops there.
    func execute() async throws {
        do {
            try await rounds()
        } catch {
            _ = await agent.kill()
            print("difftest: kept for inspection: \(directory)")
            await close()
            throw error
        }
        await close()
    }

    private func close() async {
        history.close()
        await workload.close()
    }

    private func rounds() async throws {
        try agent.start()
        let started = ContinuousClock.now
        var round = 1
        var passed = true
        while passed {
            if let soak = settings.soak {
                if round > 1 && ContinuousClock.now - started >= soak { break }
            } else if round > settings.rounds {
                break
            }
            passed = try await runRound(round)
            round += 1
        }
        guard passed else {
            _ = await agent.kill()
            return
        }
        let stop = await agent.terminate()
        #expect(stop == nil, "the last agent stops gracefully: \(stop ?? "")\n\(agent.logTail())")
        if largeTransactions > 0 {
            let streamed = try await streamedTransactions()
            #expect(
                streamed > 0,
                "\(largeTransactions) large transactions ran, but the server streamed none: streaming went untested (logical_decoding_work_mem did not reach the walsender, or the agent did not ask for streaming)")
        }
        if stop == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    // MARK: - Rounds

    /// Runs one round and compares; returns whether the index equalled the source.
    private func runRound(_ round: Int) async throws -> Bool {
        let roundStarted = ContinuousClock.now
        let seed = settings.roundSeed(round)
        roundProblems = []
        try history.comment("round \(round) (seed \(settings.seed), round seed \(seed))")
        generator.beginRound(seed: seed, transactions: settings.transactionsPerRound, streams: 1)
        var step = 0
        var transactions = 0
        var rolledBack = 0
        var faults: [String] = []
        while let next = generator.next() {
            step += 1
            try checkAgent()
            var outcome: String?
            switch next.action {
            case .transaction(let transaction):
                transactions += 1
                if !transaction.commits { rolledBack += 1 }
                if transaction.kind == .streamed { largeTransactions += 1 }
                if let open = transaction.openFault { faults.append(Self.label(open.fault)) }
                outcome = try await run(transaction, round: round, step: step)
            case .fault(let fault):
                faults.append(Self.label(fault))
                outcome = try await perform(fault)
            }
            try history.record(round: round, step: step, next.action, outcome: outcome)
            try await Task.sleep(for: next.pause)
        }
        if let restart = generator.finishRound() {
            step += 1
            try history.record(round: round, step: step, .fault(restart), outcome: try await perform(restart))
        }
        try checkAgent()

        // Stop writing; a last commit only a running agent can pass marks the end of the round.
        _ = try await workload.query("SELECT pg_logical_emit_message(true, 'tidemark.difftest', $1)::text", ["end of round \(round)"])
        let target = try await database.currentLSN()
        let lag = try await waitUntilCaughtUp(target)
        let differences = try await compare()
        let deadLetters = try await store.deadLetters(entity: nil)
        let failedJobs = try await store.jobs().filter { $0.status == .failed && !reportedJobs.contains($0.id) }
        reportedJobs.formUnion(failedJobs.map(\.id))

        let documents = differences.reduce(0) { $0 + $1.documents }
        let elapsed = ContinuousClock.now - roundStarted
        var large = ""
        if largeTransactions > 0 {
            let streamed = streamedOnDroppedSlots + (try await streamedTransactionsOfCurrentSlot())
            large = ", \(largeTransactions) large transactions so far (\(streamed) streamed by the server)"
        }
        print("difftest \(database.server) round \(round) (seed \(settings.seed), round seed \(seed)): \(transactions) transactions (\(rolledBack) rolled back)\(large), faults [\(faults.joined(separator: ", "))], \(documents) documents, \(elapsed.components.seconds) s")

        let equal = differences.allSatisfy(\.isEmpty)
        if equal && lag == nil && deadLetters.isEmpty && failedJobs.isEmpty && roundProblems.isEmpty {
            try await checkValidation(round: round, seed: seed)
        }
        guard !equal || lag != nil || !deadLetters.isEmpty || !failedJobs.isEmpty || !roundProblems.isEmpty else { return true }
        var report = [
            "differential test failed on \(database.server), round \(round): seed \(settings.seed) (round seed \(seed)), families \(settings.familyList), tables \(settings.tableList)",
            "reproduce: \(settings.environmentForReplay) TIDEMARK_DIFF_ROUNDS=\(round) swift test --skip-build --filter DifferentialTests",
        ]
        if let lag { report.append("the agent did not catch up: \(lag)") }
        report += roundProblems
        report += differences.filter { !$0.isEmpty }.map { $0.summary() }
        if !deadLetters.isEmpty {
            report.append("dead letters (rows that render and embed fine must never become one):")
            report += deadLetters.prefix(10).map { "  \($0.entity) \($0.id) [\($0.stage)]: \($0.error)" }
        }
        for job in failedJobs { report.append("failed job: \(Self.describe(job))") }

        // The history of a few wrong ids of each kind: enough to replay the failure by hand.
        var sample: [String] = []
        for difference in differences {
            sample += difference.missing.prefix(3) + difference.extra.prefix(3) + difference.stale.prefix(3).map(\.id)
        }
        sample += deadLetters.prefix(3).map(\.id)
        let ids = Set(sample)
        let entities = Set(differences.filter { !$0.isEmpty }.map(\.table.entity) + deadLetters.map(\.entity))
        let entries = history.relevant(to: ids, entities: entities, round: round)
        let subject = sample.isEmpty ? "" : "\(sample.sorted().joined(separator: ", ")) and "
        report.append("history of \(subject)every fault of round \(round) (\(entries.count) steps; ▶ = touches one of these ids; the whole run as SQL: \(history.scriptPath)):")
        report += entries.map { WorkloadHistory.describe($0, ids: ids, entities: entities) }
        report.append("agent log (\(agent.logPath), last lines):\n\(agent.logTail())")
        report.append("kept for inspection: \(directory)")
        Issue.record(Comment(rawValue: report.joined(separator: "\n")))
        return false
    }

    /// Records an agent that ended by itself, and starts another one so the round can go on.
    private func checkAgent() throws {
        guard let exit = agent.unexpectedExit() else { return }
        roundProblems.append("\(exit); its log:\n\(agent.logTail())")
        try agent.start()
    }

    // MARK: - Steps

    /// Runs a transaction statement by statement (so that faults and the agent's work fall between
    /// them), with its fault while open; returns the fault's outcome.
    private func run(_ transaction: WorkloadTransaction, round: Int, step: Int) async throws -> String? {
        var outcome: String?
        try await workload.simpleQuery("BEGIN")
        for (index, statement) in transaction.statements.enumerated() {
            if let open = transaction.openFault, open.index == index { outcome = try await perform(open.fault) }
            do {
                try await workload.simpleQuery(statement.sql)
            } catch {
                _ = try? await workload.simpleQuery("ROLLBACK")
                throw DifferentialTestError("round \(round), step \(step): the server rejected a workload statement (a bug of the test): \(error)\n\(statement.sql)")
            }
        }
        if let open = transaction.openFault, open.index == transaction.statements.count { outcome = try await perform(open.fault) }
        try await workload.simpleQuery(transaction.commits ? "COMMIT" : "ROLLBACK")
        return outcome.map { "the fault while open: \($0)" }
    }

    private static func run(_ transaction: WorkloadTransaction, on connection: PostgresConnection) async throws {
        try await connection.simpleQuery("BEGIN")
        for statement in transaction.statements { try await connection.simpleQuery(statement.sql) }
        try await connection.simpleQuery("COMMIT")
    }

    /// Does what the fault says to the agent; returns what is worth recording about it.
    private func perform(_ fault: AgentFault) async throws -> String? {
        switch fault {
        case .kill:
            if let problem = await agent.kill() { roundProblems.append(problem) }
            return nil
        case .terminate:
            guard let problem = await agent.terminate() else { return "exited 0" }
            roundProblems.append("\(problem); its log:\n\(agent.logTail())")
            return problem
        case .restart:
            try agent.start()
            return "agent run \(agent.starts)"
        case .dropSlot:
            return try await dropSlot()
        case .rebuild(let entity):
            return try await command(["backfill", entity, "--rebuild", "--no-wait"])
        case .backfillIDs(let entity, let ids):
            return try await command(["backfill", entity, "--ids"] + ids + ["--no-wait"])
        }
    }

    private func command(_ arguments: [String]) async throws -> String {
        let result = try await agent.command(arguments)
        let output = (result.output + result.error).trimmingCharacters(in: .whitespacesAndNewlines)
        if result.status != 0 {
            roundProblems.append("tidemark \(arguments.joined(separator: " ")) exited \(result.status): \(output)")
        }
        return output
    }

    /// Drops the configured slot once no walsender holds it any more (the agent was just stopped).
    private func dropSlot() async throws -> String {
        streamedOnDroppedSlots += try await streamedTransactionsOfCurrentSlot()
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            let result = try await database.connection.query(
                "SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [database.name])
            if !result.rows.isEmpty { return "dropped" }
            let exists = try await database.scalar("SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = $1", [database.name])
            if exists == "0" { return "there was no slot" }
            try await Task.sleep(for: .milliseconds(50))
        }
        roundProblems.append("the slot stayed active for 15 s after the agent stopped")
        return "still active"
    }

    private func streamedTransactionsOfCurrentSlot() async throws -> Int {
        let text = try await database.scalar("SELECT stream_txns::text FROM pg_stat_replication_slots WHERE slot_name = $1", [database.name])
        return Int(text ?? "0") ?? 0
    }

    /// Transactions the server streamed over the run (statistics arrive a little late, so wait for
    /// them a moment).
    private func streamedTransactions() async throws -> Int {
        for _ in 0..<50 {
            let total = streamedOnDroppedSlots + (try await streamedTransactionsOfCurrentSlot())
            if total > 0 { return total }
            try await Task.sleep(for: .milliseconds(100))
        }
        return streamedOnDroppedSlots
    }

    private static func describe(_ job: JobRecord) -> String {
        var text = "\(job.id) \(job.kind.rawValue) of \(job.entity): \(job.status.rawValue), \(job.processed) rows"
        if let incarnation = job.loadsIncarnation { text += ", loads slot incarnation \(incarnation)" }
        if let error = job.lastError { text += ", last error: \(error)" }
        return text
    }

    private static func label(_ fault: AgentFault) -> String {
        switch fault {
        case .kill: "kill"
        case .terminate: "term"
        case .restart: "start"
        case .dropSlot: "slot-drop"
        case .rebuild(let entity): "rebuild \(entity)"
        case .backfillIDs(let entity, let ids): "ids \(entity)×\(ids.count)"
        }
    }

    // MARK: - Catching up and comparing

    /// Waits until the checkpoint passes `target`, every entity is loaded under the current slot and
    /// no job is active; returns what was still missing at the timeout, or `nil`.
    private func waitUntilCaughtUp(_ target: LSN) async throws -> String? {
        let deadline = ContinuousClock.now + settings.catchUpTimeout
        while true {
            try checkAgent()
            // Read the checkpoint first: a new slot incarnation is written together with it, so a
            // checkpoint past the target is never paired with the "loaded" state of an older slot.
            let checkpoint = try await store.state("checkpoint").flatMap { LSN($0) }
            let incarnation = try await store.state("slot.incarnation")
            var unloaded: [String] = []
            for table in SourceTable.allCases {
                let loaded = try await store.state("loaded.\(table.entity)")
                if incarnation == nil || loaded != incarnation { unloaded.append(table.entity) }
            }
            let jobs = try await store.activeJobs()
            if let checkpoint, checkpoint >= target, unloaded.isEmpty, jobs.isEmpty { return nil }
            if ContinuousClock.now >= deadline {
                var loadedUnder: [String] = []
                for table in SourceTable.allCases {
                    loadedUnder.append("\(table.entity) \(try await store.state("loaded.\(table.entity)") ?? "never")")
                }
                let recent = try await store.jobs().prefix(8).map(Self.describe)
                return """
                    after \(settings.catchUpTimeout): checkpoint \(checkpoint?.description ?? "none") (target \(target)); \
                    not loaded under the current slot (incarnation \(incarnation ?? "none")): \(unloaded); loaded under: \(loadedUnder.joined(separator: ", ")); \
                    active jobs: \(jobs.count); latest jobs:\n    \(recent.joined(separator: "\n    "))
                    """
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: - Validation

    /// After a round whose index equals the source: the running agent's validation must say so for
    /// every entity; with ``OperationFamily/indexDelete``, documents deleted from the index file behind
    /// the agent's back must be reported exactly (as missing, nothing else), `tidemark repair` must
    /// heal them, and the index must equal the source again. Problems go to the round's report.
    private func checkValidation(round: Int, seed: UInt64) async throws {
        for record in try await settledValidation(["validate", "--json"]) {
            guard record.status == .completed, let result = record.result, result.status == .inSync else {
                roundProblems.append("validation of \(record.entity) does not report the index in sync although it equals the source: \(Self.describe(record))")
                continue
            }
        }
        guard settings.families.contains(.indexDelete) else { return }
        var random = SplitMix64(seed: seed ^ 0x1DE1_E7E5)
        guard let table = random.pick(settings.tables) else { return }
        var ids: [String] = []
        let keys = generator.model.keys(table).keys.map(\.documentID).sorted()
        for _ in 0..<random.between(1...4) {
            if let id = random.pick(keys), !ids.contains(id) { ids.append(id) }
        }
        guard !ids.isEmpty else { return }
        let deletedAt = Date().timeIntervalSince1970
        let deleted = try IndexFile(path: directory + "/index.db").deleteDocuments(table.entity, ids: ids)
        try history.comment("round \(round): deleted \(deleted) documents of \(table.entity) from the index file behind the agent's back: \(ids.sorted())")
        let found = try await settledValidation(["validate", table.entity, "--json"]).first
        // A full backfill the watcher queued meanwhile (a truncate of the round gave the table a new
        // relfilenode) rewrites rows; those its chunks read after the deletion are healed by it.
        let healedByBackfill = try await store.jobs(entity: table.entity).contains { $0.kind != .ids && ($0.finishedAt ?? .infinity) >= deletedAt }
        guard let result = found?.result, found?.status == .completed,
            result.orphaned.count + result.stale.count + result.deadLettered.count + result.unsettled.count == 0,
            result.missing == ValidationResult.Finding(ids: ids) || (healedByBackfill && Set(result.missing.sample).isSubset(of: ids))
        else {
            roundProblems.append("documents \(ids.sorted()) of \(table.entity) were deleted from the index file; validation reported \(found.map(Self.describe) ?? "nothing")")
            return
        }
        print("difftest \(database.server) round \(round): validation found \(result.missing.count) of the \(ids.count) documents of \(table.entity) deleted behind the agent's back\(result.missing.count < ids.count ? " (a backfill healed the others)" : "")")
        if result.missing.count > 0 {
            let repair = try await settledValidation(["repair", table.entity, "--json"]).first
            guard repair?.status == .completed, repair?.result?.status == .inSync else {
                roundProblems.append("tidemark repair \(table.entity) did not end in sync: \(repair.map(Self.describe) ?? "no record")")
                return
            }
        }
        let target = try await database.currentLSN()
        if let lag = try await waitUntilCaughtUp(target) { roundProblems.append("after the repair: \(lag)") }
        for difference in try await compare() where !difference.isEmpty {
            roundProblems.append("after the deletion was repaired the index still differs: \(difference.summary())")
        }
    }

    /// A validation, run again for the entities it skipped (a backfill the watcher queued after a
    /// truncate of the round) once the agent has caught up.
    private func settledValidation(_ arguments: [String]) async throws -> [ValidationRecord] {
        var records = try await validationRecords(arguments)
        for _ in 0..<5 where records.contains(where: { $0.status == .skipped }) {
            if let lag = try await waitUntilCaughtUp(try await database.currentLSN()) {
                roundProblems.append("while waiting to validate again: \(lag)")
                break
            }
            for (index, record) in records.enumerated() where record.status == .skipped {
                let command = record.kind == .repair ? "repair" : "validate"
                if let retried = try await validationRecords([command, record.entity, "--json"]).first { records[index] = retried }
            }
        }
        return records
    }

    /// Runs a `tidemark validate … --json` and decodes its records; an unreadable answer is a problem.
    private func validationRecords(_ arguments: [String]) async throws -> [ValidationRecord] {
        let answer = try await agent.command(arguments)
        var records: [ValidationRecord] = []
        for line in answer.output.split(separator: "\n") {
            guard let record = try? JSONDecoder().decode(ValidationRecord.self, from: Data(line.utf8)) else {
                roundProblems.append("tidemark \(arguments.joined(separator: " ")) printed what is not a validation record: \(line)")
                continue
            }
            records.append(record)
        }
        if records.isEmpty { roundProblems.append("tidemark \(arguments.joined(separator: " ")) exited \(answer.status) without a result: \(answer.error)") }
        return records
    }

    private static func describe(_ record: ValidationRecord) -> String {
        var text = "\(record.id) \(record.status.rawValue)"
        if let error = record.error { text += " (\(error))" }
        if let result = record.result {
            text += ", \(result.status.rawValue): missing \(result.missing.sample), orphaned \(result.orphaned.sample), stale \(result.stale.sample), dead letters \(result.deadLettered.sample), unsettled \(result.unsettled.sample)"
        }
        return text
    }

    /// Every entity's index compared with its table; also checks the workload's model of the keys
    /// against the source (a mismatch is a bug of the test, not of the agent).
    private func compare() async throws -> [EntityDifference] {
        var differences: [EntityDifference] = []
        for table in SourceTable.allCases {
            let expected = try await DifferentialSchema.expectedDocuments(of: table, on: database.connection)
            let indexed = try await DifferentialSchema.indexedDocuments(of: table, in: store)
            let modelled = Set(generator.model.keys(table).keys.map(\.documentID))
            guard modelled == Set(expected.keys) else {
                let unknown = Set(expected.keys).subtracting(modelled).sorted().prefix(5)
                let phantom = modelled.subtracting(expected.keys).sorted().prefix(5)
                throw DifferentialTestError("the workload's model of \(table.rawValue) diverged from the source (a bug of the test): in the source only \(Array(unknown)), in the model only \(Array(phantom))")
            }
            differences.append(DifferentialSchema.compare(table, expected: expected, indexed: indexed))
        }
        return differences
    }
}
