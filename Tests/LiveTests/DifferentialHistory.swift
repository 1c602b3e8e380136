import Foundation

/// What the differential test did, step by step: for the failure report and for replaying by hand.
///
/// Every step is appended, as it runs, to a SQL script on disk (faults as comments), so the whole
/// history of a run can be replayed; the last few rounds also stay in memory, so that a failure can
/// print the steps that touched the ids found wrong.
struct WorkloadHistory {
    struct Entry: Sendable {
        var round: Int
        var step: Int
        var action: WorkloadStep.Action
        /// What happened when it ran (the agent's exit status, a command's output), if worth saying.
        var outcome: String?
    }

    private(set) var entries: [Entry] = []
    /// The script every step is appended to.
    let scriptPath: String
    private let script: FileHandle
    /// Rounds kept in memory (the script keeps all).
    private let roundsKept = 3

    init(scriptPath: String, schema: String) throws {
        self.scriptPath = scriptPath
        guard FileManager.default.createFile(atPath: scriptPath, contents: Data((schema + "\n").utf8)),
            let handle = FileHandle(forWritingAtPath: scriptPath)
        else { throw DifferentialTestError("cannot write the history script \(scriptPath)") }
        try handle.seekToEnd()
        script = handle
    }

    /// Appends a step (to memory and to the script).
    mutating func record(round: Int, step: Int, _ action: WorkloadStep.Action, outcome: String? = nil) throws {
        let entry = Entry(round: round, step: step, action: action, outcome: outcome)
        entries.append(entry)
        if let first = entries.first, first.round < round - roundsKept + 1 {
            entries.removeAll { $0.round < round - roundsKept + 1 }
        }
        try script.write(contentsOf: Data((Self.script(entry) + "\n").utf8))
    }

    /// Adds a note to the script only (the initial load, round boundaries).
    func comment(_ text: String) throws {
        try script.write(contentsOf: Data(("-- " + text.replacingOccurrences(of: "\n", with: "\n-- ") + "\n").utf8))
    }

    func close() { try? script.close() }

    /// Steps that touched any of `ids` (by id, or by truncating the entity), plus every fault of
    /// `round`: the shortest history that explains the wrong documents of that round.
    func relevant(to ids: Set<String>, entities: Set<String>, round: Int, limit: Int = 60) -> [Entry] {
        let matching = entries.filter { entry in
            switch entry.action {
            case .transaction(let transaction):
                if transaction.statements.contains(where: { Self.touches($0, ids: ids, entities: entities) }) { return true }
                return transaction.openFault.map { entry.round == round || Self.touches($0.fault, ids: ids, entities: entities) } ?? false
            case .fault(let fault):
                return entry.round == round || Self.touches(fault, ids: ids, entities: entities)
            }
        }
        return Array(matching.suffix(limit))
    }

    static func touches(_ statement: WorkloadStatement, ids: Set<String>, entities: Set<String>) -> Bool {
        (statement.wholeTable && entities.contains(statement.target)) || statement.ids.contains(where: ids.contains)
    }

    static func touches(_ fault: AgentFault, ids: Set<String>, entities: Set<String>) -> Bool {
        if case .rebuild(let entity) = fault { return entities.contains(entity) }
        return fault.ids.contains(where: ids.contains)
    }

    /// The entry for a report: statements that touch `ids` are marked ▶ and shown in full (up to
    /// 400 characters); others are counted, except transaction control statements, which are kept.
    static func describe(_ entry: Entry, ids: Set<String>, entities: Set<String>) -> String {
        let heading = "round \(entry.round), step \(entry.step)"
        let outcome = entry.outcome.map { " → \($0)" } ?? ""
        switch entry.action {
        case .fault(let fault):
            return "\(heading): \(fault)\(outcome)"
        case .transaction(let transaction):
            var lines = ["\(heading): \(transaction.kind.rawValue)\(outcome)", "      BEGIN;"]
            var skipped = 0
            func flushSkipped() {
                if skipped > 0 { lines.append("      … \(skipped) statement(s) on other rows"); skipped = 0 }
            }
            for (index, statement) in transaction.statements.enumerated() {
                if let open = transaction.openFault, open.index == index {
                    flushSkipped()
                    lines.append("      -- while the transaction is open: \(open.fault)")
                }
                let relevant = touches(statement, ids: ids, entities: entities)
                guard relevant || statement.target.isEmpty else {
                    skipped += 1
                    continue
                }
                flushSkipped()
                let undone = statement.survives || !transaction.commits ? "" : "   -- undone by ROLLBACK TO"
                lines.append("    \(relevant ? "▶" : " ") \(abbreviate(statement.sql));\(undone)")
            }
            flushSkipped()
            if let open = transaction.openFault, open.index == transaction.statements.count {
                lines.append("      -- while the transaction is open: \(open.fault)")
            }
            lines.append("      \(transaction.commits ? "COMMIT" : "ROLLBACK");")
            return lines.joined(separator: "\n")
        }
    }

    /// The entry as replayable SQL (faults as comments).
    static func script(_ entry: Entry) -> String {
        let heading = "-- round \(entry.round), step \(entry.step)"
        let outcome = entry.outcome.map { " → \($0.replacingOccurrences(of: "\n", with: " "))" } ?? ""
        switch entry.action {
        case .fault(let fault):
            return "\(heading): \(fault)\(outcome)"
        case .transaction(let transaction):
            var lines = ["\(heading): \(transaction.kind.rawValue)\(outcome)", "BEGIN;"]
            for (index, statement) in transaction.statements.enumerated() {
                if let open = transaction.openFault, open.index == index { lines.append("-- while the transaction is open: \(open.fault)") }
                lines.append(statement.sql + ";")
            }
            if let open = transaction.openFault, open.index == transaction.statements.count {
                lines.append("-- while the transaction is open: \(open.fault)")
            }
            lines.append(transaction.commits ? "COMMIT;" : "ROLLBACK;")
            return lines.joined(separator: "\n")
        }
    }

    static func abbreviate(_ sql: String, limit: Int = 400) -> String {
        let flat = sql.replacingOccurrences(of: "\n", with: "\\n")
        return flat.count <= limit ? flat : flat.prefix(limit) + "… (\(flat.count) characters)"
    }
}
