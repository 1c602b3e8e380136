import Foundation
import Indexing
import Postgres

/// Generates the workload of the differential test from a seed: transactions over the schema and
/// faults of the agent, drawn from the enabled families. Deterministic: the same seed, families and
/// model give the same steps.
struct WorkloadGenerator: Sendable {
    private(set) var model: SourceModel
    let families: Set<OperationFamily>
    let tables: [SourceTable]
    private var random = SplitMix64(seed: 0)
    /// Whether the agent runs once the steps generated so far have run.
    private(set) var agentRunning = true
    private var transactionsUntilRestart = 0
    private var queuedFaults: [AgentFault] = []
    private var transactionsLeft = 0
    private var streamsLeft = 0
    private var slotDropsLeft = 0
    private var rebuiltThisRound: Set<String> = []
    /// Keys written by the transaction being generated: later statements prefer them.
    private var hot: [(table: SourceTable, key: RowKey)] = []
    private var savepoints = 0
    private var temporaryTables = 0

    static let regions = ["eu", "us", "ap"]
    private static let words = [
        "harbor", "tide", "lantern", "granite", "meadow", "copper", "signal", "orchard", "ember", "willow", "quartz",
        "falcon", "drift", "cobalt", "summit", "pebble", "aurora", "canyon", "velvet", "maple", "beacon", "sparrow",
    ]
    /// Values that stress quoting, escaping and rendering.
    private static let oddities = [
        "O'Brien", "naïve café", "tab\there", "back\\slash", "say \"hi\"", "wave 🌊", "two\nlines", "{{braces}}", "100% <b>&amp;</b>",
    ]
    private static let keySuffixes = ["", "", "", "", "\"q", "\\b", " sp", "é", ",c"]

    /// - Parameter tables: the tables the workload writes and the faults act on (all are loaded at
    ///   the start and compared after every round).
    init(model: SourceModel, families: Set<OperationFamily>, tables: [SourceTable] = SourceTable.allCases) {
        self.model = model
        self.families = families
        self.tables = tables.isEmpty ? SourceTable.allCases : tables
    }

    private var dataFamilies: [(family: OperationFamily, weight: Int)] {
        [(.insert, 3), (.update, 4), (.metadata, 3), (.rekey, 1), (.move, 1), (.delete, 2), (.reinsert, 1), (.unconfigured, 1)]
            .filter { families.contains($0.family) }
    }

    private var faultFamilies: [OperationFamily] {
        OperationFamily.allCases.filter { $0.isFault && families.contains($0) }
    }

    /// Starts a round: a new seed and a budget of transactions.
    mutating func beginRound(seed: UInt64, transactions: Int, streams: Int) {
        random = SplitMix64(seed: seed)
        transactionsLeft = transactions
        streamsLeft = streams
        slotDropsLeft = 1
        rebuiltThisRound = []
    }

    /// The next step of the round, or `nil` when its budget is spent.
    mutating func next() -> WorkloadStep? {
        if !queuedFaults.isEmpty {
            return WorkloadStep(action: .fault(queuedFaults.removeFirst()), pause: .milliseconds(random.between(0...200)))
        }
        if !agentRunning && transactionsUntilRestart <= 0 {
            agentRunning = true
            return WorkloadStep(action: .fault(.restart), pause: .milliseconds(random.between(50...800)))
        }
        guard transactionsLeft > 0 else { return nil }
        if !faultFamilies.isEmpty, random.chance(0.1), let fault = makeFault(openTransaction: false) {
            return WorkloadStep(action: .fault(fault), pause: .milliseconds(random.between(0...300)))
        }
        transactionsLeft -= 1
        let wasRunning = agentRunning
        let transaction = makeTransaction()
        if !wasRunning { transactionsUntilRestart -= 1 }
        return WorkloadStep(action: .transaction(transaction), pause: .milliseconds(random.between(0...25)))
    }

    /// What the round must still do so that an agent runs at its end.
    mutating func finishRound() -> AgentFault? {
        queuedFaults = []
        guard !agentRunning else { return nil }
        agentRunning = true
        return .restart
    }

    /// The rows the generator itself inserts before the agent first starts.
    mutating func initialLoad() -> [WorkloadStatement] {
        var scratch = model
        var statements = SourceTable.allCases.map { table in
            bulkInsert(table, rows: table == .notes ? 600 : 2_500, &scratch)
        }
        let upper = scratch.counter
        statements.append(WorkloadStatement(
            sql: """
                INSERT INTO audit_log (id, name, bio, tier, score) SELECT 5000000000 + g, 'audit ' || g, 'audit body ' || g, 'gold', g \
                FROM generate_series(1, \(upper)) g WHERE g % 3 = 0
                """,
            target: DifferentialSchema.unconfiguredTable))
        model = scratch
        return statements
    }

    // MARK: - Faults

    private mutating func makeFault(openTransaction: Bool) -> AgentFault? {
        let candidates = faultFamilies.filter { family in
            switch family {
            case .kill: agentRunning
            case .term: agentRunning && !openTransaction
            case .slotDrop: slotDropsLeft > 0
            case .rebuild: rebuiltThisRound.count < tables.count
            default: true
            }
        }
        guard let family = random.pick(candidates) else { return nil }
        switch family {
        case .kill:
            stopAgent()
            return .kill
        case .term:
            stopAgent()
            return .terminate
        case .slotDrop:
            slotDropsLeft -= 1
            guard agentRunning else { return .dropSlot }
            queuedFaults.append(.dropSlot)
            stopAgent()
            // SIGTERM only between transactions: a graceful stop may wait for work an open transaction blocks.
            return openTransaction || random.chance(0.5) ? .kill : .terminate
        case .rebuild:
            let entity = random.pick(tables.map(\.entity).filter { !rebuiltThisRound.contains($0) }) ?? "account"
            rebuiltThisRound.insert(entity)
            return .rebuild(entity: entity)
        case .backfillIDs:
            let table = random.pick(tables) ?? .accounts
            return .backfillIDs(entity: table.entity, ids: targetIDs(table))
        default:
            return nil
        }
    }

    private mutating func stopAgent() {
        agentRunning = false
        transactionsUntilRestart = random.between(0...3)
    }

    /// Ids for a targeted backfill: live rows, recently deleted rows, rows the open transaction
    /// wrote (maybe not committed yet), and a key that never existed.
    private mutating func targetIDs(_ table: SourceTable) -> [String] {
        var ids: [String] = []
        for _ in 0..<random.between(1...6) {
            switch random.below(10) {
            case 0..<6:
                if let key = random.pick(model.keys(table).keys) { ids.append(key.documentID) }
            case 6, 7:
                if let key = random.pick(model.removed[table] ?? []) { ids.append(key.documentID) }
            case 8:
                if let key = random.pick(hot.filter { $0.table == table }.map(\.key)) { ids.append(key.documentID) }
            default:
                ids.append(neverExistingID(table))
            }
        }
        if ids.isEmpty { ids.append(neverExistingID(table)) }
        var seen = Set<String>()
        return ids.filter { seen.insert($0).inserted }
    }

    /// The id of a key no row has had.
    private mutating func neverExistingID(_ table: SourceTable) -> String {
        var scratch = model
        let id = freshKey(table, &scratch).documentID
        model.counter = scratch.counter
        return id
    }

    // MARK: - Transactions

    private mutating func makeTransaction() -> WorkloadTransaction {
        hot = []
        var transaction: WorkloadTransaction
        if families.contains(.stream), streamsLeft > 0, random.chance(0.08) {
            streamsLeft -= 1
            transaction = streamedTransaction()
        } else if families.contains(.truncate), random.chance(0.07) {
            transaction = truncateTransaction()
        } else {
            transaction = ordinaryTransaction(rollsBack: families.contains(.rollback) && random.chance(0.12))
        }
        if !faultFamilies.isEmpty, !transaction.statements.isEmpty, random.chance(0.08),
            let fault = makeFault(openTransaction: true)
        {
            transaction.openFault = .init(index: random.between(1...transaction.statements.count), fault: fault)
        }
        return transaction
    }

    private mutating func ordinaryTransaction(rollsBack: Bool) -> WorkloadTransaction {
        var scratch = model
        var statements: [WorkloadStatement] = []
        let operations = random.between(1...5)
        let savepointAt = families.contains(.savepoint) && random.chance(0.35) ? random.below(operations + 1) : nil
        for index in 0...operations {
            if index == savepointAt { statements += savepointBlock(&scratch) }
            if index < operations { statements += dataOperation(&scratch) }
        }
        if rollsBack {
            for index in statements.indices { statements[index].survives = false }
        } else {
            model = scratch
        }
        return WorkloadTransaction(kind: rollsBack ? .rolledBack : .ordinary, statements: statements)
    }

    /// A savepoint with one to three operations in it, rolled back (usually) or released.
    private mutating func savepointBlock(_ scratch: inout SourceModel) -> [WorkloadStatement] {
        savepoints += 1
        let name = "sp\(savepoints)"
        var inner = scratch
        var body: [WorkloadStatement] = []
        for _ in 0..<random.between(1...3) { body += dataOperation(&inner) }
        guard !body.isEmpty else { return [] }
        if random.chance(0.75) {
            for index in body.indices { body[index].survives = false }
            return [WorkloadStatement(sql: "SAVEPOINT \(name)", target: "")] + body
                + [WorkloadStatement(sql: "ROLLBACK TO SAVEPOINT \(name)", target: "")]
        }
        scratch = inner
        return [WorkloadStatement(sql: "SAVEPOINT \(name)", target: "")] + body + [WorkloadStatement(sql: "RELEASE SAVEPOINT \(name)", target: "")]
    }

    /// TRUNCATE then INSERT the same rows again (sometimes minus a few, sometimes with changes around).
    private mutating func truncateTransaction() -> WorkloadTransaction {
        var scratch = model
        var statements: [WorkloadStatement] = []
        let table = random.pick(tables.filter { scratch.keys($0).count > 0 }) ?? tables[0]
        if random.chance(0.4) { statements += dataOperation(&scratch) }
        temporaryTables += 1
        let copy = "reload_\(temporaryTables)"
        statements.append(WorkloadStatement(sql: "CREATE TEMP TABLE \(copy) ON COMMIT DROP AS SELECT * FROM \(table.rawValue)", target: ""))
        if random.chance(0.35) {
            var dropped: [RowKey] = []
            for _ in 0..<random.between(1...3) {
                if let key = random.pick(scratch.keys(table).keys), !dropped.contains(key) { dropped.append(key) }
            }
            if !dropped.isEmpty {
                statements.append(WorkloadStatement(
                    sql: "DELETE FROM \(copy) WHERE \(predicate(table, dropped))", target: table.entity, ids: dropped.map(\.documentID)))
                for key in dropped { scratch.remove(key, from: table) }
            }
        }
        statements.append(WorkloadStatement(sql: "TRUNCATE \(table.rawValue)", target: table.entity, wholeTable: true))
        statements.append(WorkloadStatement(
            sql: "INSERT INTO \(table.rawValue) SELECT * FROM \(copy)", target: table.entity, wholeTable: true))
        for _ in 0..<random.between(0...2) {
            let family = random.pick([OperationFamily.update, .metadata].filter { families.contains($0) })
            if let family, let statement = operation(family, on: table, &scratch) { statements += statement }
        }
        model = scratch
        return WorkloadTransaction(kind: .truncateReload, statements: statements)
    }

    /// A few thousand rows inserted, a range updated and (when tables grow) a range deleted, in one transaction.
    private mutating func streamedTransaction() -> WorkloadTransaction {
        var scratch = model
        var statements = [bulkInsert(random.pick(tables) ?? tables[0], rows: nil, &scratch)]
        if let table = random.pick(tables.filter { scratch.keys($0).count > 0 }) {
            statements.append(bulkUpdate(table, scratch))
        }
        if let table = random.pick(tables.filter { scratch.keys($0).count > 1_500 }) {
            statements.append(bulkDelete(table, &scratch))
        }
        for _ in 0..<random.between(0...2) { statements += dataOperation(&scratch) }
        model = scratch
        return WorkloadTransaction(kind: .streamed, statements: statements)
    }

    // MARK: - Operations

    /// One operation of a random enabled data family (one or a few statements).
    private mutating func dataOperation(_ scratch: inout SourceModel) -> [WorkloadStatement] {
        let weighted = dataFamilies
        let total = weighted.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return [] }
        var roll = random.below(total)
        var family = weighted[0].family
        for entry in weighted {
            if roll < entry.weight {
                family = entry.family
                break
            }
            roll -= entry.weight
        }
        if family == .unconfigured { return unconfiguredWrite(scratch) }
        if family == .move { return tables.contains(.events) ? operation(.move, on: .events, &scratch) ?? [] : [] }
        // Try a few tables: most operations need an existing row.
        for _ in 0..<4 {
            let table = random.pick(tables) ?? tables[0]
            if let statements = operation(family, on: table, &scratch) { return statements }
        }
        return []
    }

    /// One operation of `family` on `table`, or `nil` when the table has no row it needs.
    private mutating func operation(_ family: OperationFamily, on table: SourceTable, _ scratch: inout SourceModel) -> [WorkloadStatement]? {
        let entity = table.entity
        switch family {
        case .insert:
            let key = freshKey(table, &scratch)
            scratch.add(key, to: table)
            hot.append((table, key))
            return [insertStatement(table, key)]
        case .update:
            guard let key = pickKey(table, scratch) else { return nil }
            hot.append((table, key))
            return [WorkloadStatement(
                sql: "UPDATE \(table.rawValue) SET \(assignments(contentValues(table))) WHERE \(predicate(table, [key]))",
                target: entity, ids: [key.documentID])]
        case .metadata:
            guard let first = pickKey(table, scratch) else { return nil }
            var keys = [first]
            if random.chance(0.2) {
                for _ in 0..<random.between(1...5) {
                    if let key = pickKey(table, scratch), !keys.contains(key) { keys.append(key) }
                }
            }
            let change = random.chance(0.25) ? "revision = revision + 1" : assignments(metadataValues(table))
            return [WorkloadStatement(
                sql: "UPDATE \(table.rawValue) SET \(change) WHERE \(predicate(table, keys))", target: entity, ids: keys.map(\.documentID))]
        case .rekey:
            guard let old = pickKey(table, scratch) else { return nil }
            var new = old
            switch table {
            case .accounts, .notes:
                new = freshKey(table, &scratch)
            case .lines:
                if random.chance(0.5) {
                    new.parts[0] = String(1 + random.below(300))
                    if new == old { new.parts[0] = String(301 + random.below(300)) }
                } else {
                    new.parts[1] = freshKey(table, &scratch).parts[1]
                }
            case .events:
                new.parts[0] = String(scratch.nextNumber())
            }
            var changes = zip(table.keyColumns, zip(old.parts, new.parts)).filter { $0.1.0 != $0.1.1 }
                .map { "\($0.0) = \(keyLiteral(table, column: $0.0, $0.1.1))" }
            if random.chance(0.3) { changes.append(assignments(contentValues(table))) }
            scratch.remove(old, from: table)
            scratch.add(new, to: table)
            hot.append((table, new))
            return [WorkloadStatement(
                sql: "UPDATE \(table.rawValue) SET \(changes.joined(separator: ", ")) WHERE \(predicate(table, [old]))",
                target: entity, ids: [old.documentID, new.documentID])]
        case .move:
            guard table == .events, let old = pickKey(table, scratch) else { return nil }
            var new = old
            new.parts[1] = random.pick(Self.regions.filter { $0 != old.parts[1] }) ?? "eu"
            var changes = ["region = \(PostgresConnection.quoteLiteral(new.parts[1]))"]
            if random.chance(0.4) { changes.append(assignments(contentValues(table))) }
            scratch.remove(old, from: table)
            scratch.add(new, to: table)
            hot.append((table, new))
            return [WorkloadStatement(
                sql: "UPDATE events SET \(changes.joined(separator: ", ")) WHERE \(predicate(table, [old]))",
                target: entity, ids: [old.documentID, new.documentID])]
        case .delete:
            guard let first = pickKey(table, scratch) else { return nil }
            var keys = [first]
            if random.chance(0.15) {
                for _ in 0..<random.between(1...3) {
                    if let key = pickKey(table, scratch), !keys.contains(key) { keys.append(key) }
                }
            }
            for key in keys { scratch.remove(key, from: table) }
            return [WorkloadStatement(sql: "DELETE FROM \(table.rawValue) WHERE \(predicate(table, keys))", target: entity, ids: keys.map(\.documentID))]
        case .reinsert:
            guard let key = pickKey(table, scratch) else { return nil }
            hot.append((table, key))
            var statements = [
                WorkloadStatement(sql: "DELETE FROM \(table.rawValue) WHERE \(predicate(table, [key]))", target: entity, ids: [key.documentID]),
                insertStatement(table, key),
            ]
            if random.chance(0.3) {
                statements.append(WorkloadStatement(
                    sql: "UPDATE \(table.rawValue) SET \(assignments(contentValues(table))) WHERE \(predicate(table, [key]))",
                    target: entity, ids: [key.documentID]))
            }
            return statements
        default:
            return nil
        }
    }

    /// A write to the unconfigured table, with ids that mirror account ids.
    private mutating func unconfiguredWrite(_ scratch: SourceModel) -> [WorkloadStatement] {
        let id = random.pick(scratch.keys(.accounts).keys)?.parts[0] ?? String(5_000_000_000 + Int64(random.below(1_000)))
        let table = DifferentialSchema.unconfiguredTable
        switch random.below(20) {
        case 0:
            return [WorkloadStatement(sql: "TRUNCATE \(table)", target: table, wholeTable: true)]
        case 1..<6:
            return [WorkloadStatement(sql: "DELETE FROM \(table) WHERE id = \(id)", target: table, ids: [id])]
        default:
            let values = rowValues(.accounts).map(\.value).joined(separator: ", ")
            return [WorkloadStatement(
                sql: """
                    INSERT INTO \(table) (id, name, bio, tier, score) VALUES (\(id), \(values)) ON CONFLICT (id) DO UPDATE \
                    SET name = EXCLUDED.name, bio = EXCLUDED.bio, tier = EXCLUDED.tier, score = EXCLUDED.score
                    """,
                target: table, ids: [id])]
        }
    }

    // MARK: - Bulk statements

    /// Inserts `rows` (default: a few thousand; fewer TOASTed notes) fresh rows with one statement.
    private mutating func bulkInsert(_ table: SourceTable, rows: Int?, _ scratch: inout SourceModel) -> WorkloadStatement {
        let count = rows ?? (table == .notes ? random.between(600...900) : random.between(2_000...3_000))
        let low = scratch.counter + 1
        let high = scratch.counter + Int64(count)
        scratch.counter = high
        let series = "generate_series(\(low), \(high)) g"
        let sql: String
        var keys: [RowKey] = []
        keys.reserveCapacity(count)
        switch table {
        case .accounts:
            sql = """
                INSERT INTO accounts (id, name, bio, tier, score) SELECT 5000000000 + g, 'bulk account ' || g, \
                CASE WHEN g % 4 = 0 THEN NULL ELSE md5(g::text) END, (ARRAY['gold','silver',NULL])[1 + g % 3], NULLIF(g % 50, 0) FROM \(series)
                """
            for number in low...high { keys.append(RowKey(parts: [String(5_000_000_000 + number)])) }
        case .notes:
            sql = """
                INSERT INTO notes (id, title, body, tag) SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, \
                'bulk note ' || g, toast_text('bulk' || g, 66), CASE WHEN g % 3 = 0 THEN NULL ELSE 'bulk' END FROM \(series)
                """
            for number in low...high { keys.append(RowKey(parts: [Self.bulkUUID(number)])) }
        case .lines:
            sql = """
                INSERT INTO order_lines (order_id, line_code, sku, qty, note, status) SELECT 1000 + g % 50, 'B' || g, 'SKU-' || g % 97, \
                NULLIF(g % 9, 0), CASE WHEN g % 2 = 0 THEN md5(g::text) END, 'open' FROM \(series)
                """
            for number in low...high { keys.append(RowKey(parts: [String(1_000 + number % 50), "B\(number)"])) }
        case .events:
            sql = """
                INSERT INTO events (id, region, kind, payload, severity) SELECT g, (ARRAY['eu','us','ap'])[1 + g % 3], 'bulk', \
                md5(g::text), NULLIF(g % 5, 0) FROM \(series)
                """
            for number in low...high { keys.append(RowKey(parts: [String(number), Self.regions[Int(number % 3)]])) }
        }
        for key in keys { scratch.add(key, to: table) }
        return WorkloadStatement(sql: sql, target: table.entity, ids: keys.map(\.documentID))
    }

    /// Changes content and metadata of every row whose first key column lies in a random range.
    private mutating func bulkUpdate(_ table: SourceTable, _ scratch: SourceModel) -> WorkloadStatement {
        let (condition, keys) = keyRange(table, scratch, fraction: 0.5)
        let mark = random.below(1_000)
        let change: String
        switch table {
        case .accounts: change = "bio = coalesce(bio, '') || ' +\(mark)', score = coalesce(score, 0) + 1"
        case .notes: change = "title = title || ' +\(mark)', tag = 'bulk-\(mark)'"
        case .lines: change = "note = coalesce(note, '') || ' +\(mark)', qty = coalesce(qty, 0) + 1"
        case .events: change = "payload = coalesce(payload, '') || ' +\(mark)', severity = coalesce(severity, 0) + 1"
        }
        return WorkloadStatement(sql: "UPDATE \(table.rawValue) SET \(change) WHERE \(condition)", target: table.entity, ids: keys.map(\.documentID))
    }

    /// Deletes every row whose first key column lies in a random range (about a third of the table).
    private mutating func bulkDelete(_ table: SourceTable, _ scratch: inout SourceModel) -> WorkloadStatement {
        let (condition, keys) = keyRange(table, scratch, fraction: 0.35)
        for key in keys { scratch.remove(key, from: table) }
        return WorkloadStatement(sql: "DELETE FROM \(table.rawValue) WHERE \(condition)", target: table.entity, ids: keys.map(\.documentID))
    }

    /// A `BETWEEN` condition on the first key column covering about `fraction` of the rows, and the keys it covers.
    private mutating func keyRange(_ table: SourceTable, _ scratch: SourceModel, fraction: Double) -> (String, [RowKey]) {
        let keys = scratch.keys(table).keys
        let numeric = table != .notes
        func precedes(_ a: String, _ b: String) -> Bool {
            numeric ? (Int64(a) ?? 0) < (Int64(b) ?? 0) : a < b
        }
        let firsts = keys.map { $0.parts[0] }.sorted(by: precedes)
        guard let start = random.pick(Array(firsts.indices)) else { return ("false", []) }
        let end = min(firsts.count - 1, start + Int(Double(firsts.count) * fraction))
        let low = firsts[start]
        let high = firsts[end]
        let covered = keys.filter { !precedes($0.parts[0], low) && !precedes(high, $0.parts[0]) }
        let column = table.keyColumns[0]
        let literal = { (value: String) in numeric ? value : PostgresConnection.quoteLiteral(value) }
        return ("\(column) BETWEEN \(literal(low)) AND \(literal(high))", covered)
    }

    static func bulkUUID(_ number: Int64) -> String {
        let hex = String(number, radix: 16)
        return "00000000-0000-4000-8000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }

    // MARK: - Keys and values

    private mutating func freshKey(_ table: SourceTable, _ scratch: inout SourceModel) -> RowKey {
        let number = scratch.nextNumber()
        switch table {
        case .accounts:
            return RowKey(parts: [String(5_000_000_000 + number)])
        case .notes:
            let high = random.next()
            let low = random.next()
            let hex = String(high, radix: 16).leftPadded(16) + String(low, radix: 16).leftPadded(16)
            let characters = Array(hex)
            let groups = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }
            return RowKey(parts: [groups.joined(separator: "-")])
        case .lines:
            return RowKey(parts: [String(1 + random.below(300)), "L\(number)" + (random.pick(Self.keySuffixes) ?? "")])
        case .events:
            return RowKey(parts: [String(number), random.pick(Self.regions) ?? "eu"])
        }
    }

    /// An existing key: often one this transaction already wrote, so that changes to one key pile up.
    private mutating func pickKey(_ table: SourceTable, _ scratch: SourceModel) -> RowKey? {
        let space = scratch.keys(table)
        if random.chance(0.35), let key = random.pick(hot.filter { $0.table == table && space.contains($0.key) }.map(\.key)) {
            return key
        }
        return random.pick(space.keys)
    }

    private func keyLiteral(_ table: SourceTable, column: String, _ value: String) -> String {
        switch (table, column) {
        case (.accounts, _), (.lines, "order_id"), (.events, "id"): value
        default: PostgresConnection.quoteLiteral(value)
        }
    }

    private func keyTuple(_ table: SourceTable, _ key: RowKey) -> String {
        let literals = zip(table.keyColumns, key.parts).map { keyLiteral(table, column: $0.0, $0.1) }
        return literals.count == 1 ? literals[0] : "(" + literals.joined(separator: ", ") + ")"
    }

    /// `id = 7`, `id IN (7, 8)`, `(order_id, line_code) IN ((1, 'L2'))`.
    private func predicate(_ table: SourceTable, _ keys: [RowKey]) -> String {
        let columns = table.keyColumns.count == 1 ? table.keyColumns[0] : "(" + table.keyColumns.joined(separator: ", ") + ")"
        if keys.count == 1 { return "\(columns) = \(keyTuple(table, keys[0]))" }
        return "\(columns) IN (\(keys.map { keyTuple(table, $0) }.joined(separator: ", ")))"
    }

    private mutating func insertStatement(_ table: SourceTable, _ key: RowKey) -> WorkloadStatement {
        let values = rowValues(table)
        let columns = table.keyColumns + values.map(\.column)
        let literals = zip(table.keyColumns, key.parts).map { keyLiteral(table, column: $0.0, $0.1) } + values.map(\.value)
        return WorkloadStatement(
            sql: "INSERT INTO \(table.rawValue) (\(columns.joined(separator: ", "))) VALUES (\(literals.joined(separator: ", ")))",
            target: table.entity, ids: [key.documentID])
    }

    private func assignments(_ values: [(column: String, value: String)]) -> String {
        values.map { "\($0.column) = \($0.value)" }.joined(separator: ", ")
    }

    /// SQL values for every non-key column of a new row.
    private mutating func rowValues(_ table: SourceTable) -> [(column: String, value: String)] {
        switch table {
        case .accounts:
            return [
                ("name", Self.literal(phrase(1...3))), ("bio", nullable { Self.literal($0.phrase(3...8)) }),
                ("tier", nullable { Self.literal($0.random.pick(["gold", "silver", "bronze"]) ?? "gold") }),
                ("score", nullable { String($0.random.below(1_000)) }),
            ]
        case .notes:
            return [("title", Self.literal(phrase(2...4))), ("body", noteBody()), ("tag", nullable { Self.literal($0.phrase(1...1)) })]
        case .lines:
            return [
                ("sku", Self.literal("SKU-\(random.below(500))")), ("qty", nullable { String($0.random.below(20)) }),
                ("note", nullable { Self.literal($0.phrase(2...6)) }),
                ("status", nullable { Self.literal($0.random.pick(["open", "packed", "shipped"]) ?? "open") }),
            ]
        case .events:
            return [
                ("kind", Self.literal(random.pick(["click", "view", "purchase", "signup"]) ?? "view")),
                ("payload", nullable { Self.literal($0.phrase(2...10)) }), ("severity", nullable { String($0.random.below(6)) }),
            ]
        }
    }

    /// A non-empty random subset of the content columns, with new values.
    private mutating func contentValues(_ table: SourceTable) -> [(column: String, value: String)] {
        let candidates = rowValues(table).filter { table.contentColumns.contains($0.column) }
        return subset(candidates)
    }

    /// A non-empty random subset of the metadata-only columns, with new values.
    private mutating func metadataValues(_ table: SourceTable) -> [(column: String, value: String)] {
        let candidates = rowValues(table).filter { table.metadataOnlyColumns.contains($0.column) }
        return subset(candidates)
    }

    private mutating func subset(_ values: [(column: String, value: String)]) -> [(column: String, value: String)] {
        let chosen = values.filter { _ in random.chance(0.5) }
        if !chosen.isEmpty { return chosen }
        return random.pick(values).map { [$0] } ?? []
    }

    /// Mostly an incompressible value of 2–3.5 kB (stored out of line), sometimes short text or NULL.
    private mutating func noteBody() -> String {
        switch random.below(20) {
        case 0..<14: "toast_text('\(String(random.next(), radix: 36))', \(random.between(70...110)))"
        case 14..<17: Self.literal(phrase(3...8))
        default: "NULL"
        }
    }

    private mutating func nullable(_ make: (inout WorkloadGenerator) -> String) -> String {
        random.chance(0.2) ? "NULL" : make(&self)
    }

    private static func literal(_ text: String) -> String { PostgresConnection.quoteLiteral(text) }

    private mutating func phrase(_ count: ClosedRange<Int>) -> String {
        var words: [String] = []
        for _ in 0..<random.between(count) { words.append(random.pick(Self.words) ?? "tide") }
        if random.chance(0.1), let odd = random.pick(Self.oddities) { words.append(odd) }
        return words.joined(separator: " ")
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
