import Capture
import Foundation
import Indexing
import Logging
import Postgres

/// Runs one backfill job: reads the entity's rows in key order, chunk by chunk, each chunk in its own
/// short transaction between two watermarks, and waits for each chunk to be durable before the next.
///
/// Never locks a table and never holds a transaction longer than one chunk; memory is bounded by
/// the chunk size, which adapts to ``Configuration/targetChunkDuration``, and by
/// ``Configuration/maximumChunkBytes``: the first chunk is sized from the table's average row width,
/// each next one from the bytes the previous one read, and the server stops a chunk of a full
/// backfill once its rows reach the byte bound (so a chunk holds at most the bound plus one row). A
/// job interrupted by a crash resumes after its last durable chunk (its cursor).
struct BackfillWorker: Sendable {
    struct Configuration: Sendable {
        /// How long one chunk's read should take. Default 250 ms.
        var targetChunkDuration: Duration = .milliseconds(250)
        /// Fewest rows per chunk the duration target may ask for. Default 100. The byte bound may
        /// still cut a chunk of huge rows down to one row.
        var minimumChunkSize = 100
        /// Upper bound on rows per chunk, which bounds memory (a chunk joins one batch). Default 5 000.
        var maximumChunkSize = 5_000
        /// Upper bound on the bytes of one chunk (the text forms of its values); a row larger than
        /// this is read alone. Default 16 MiB.
        var maximumChunkBytes = 16 << 20
        /// How often a paused job checks whether it was resumed. Default 500 ms.
        var pollInterval: Duration = .milliseconds(500)
    }

    let configuration: Configuration
    let entity: EntityMapping
    /// The entity's table is partitioned: rows are read through it with their leaf partition's OID.
    /// Otherwise rows are read `FROM ONLY` the table: inheritance children are tables of their own.
    var partitioned = false
    let sourceURL: String
    let store: any IndexStore
    let coordinator: BackfillCoordinator
    let runID: String
    let logger: Logger

    /// Runs until the job completes, is cancelled, or fails. Returns the final record.
    func run(_ start: JobRecord) async throws -> JobRecord {
        let connection = try await PostgresConnection.connect(sourceURL, applicationName: "tidemark-backfill", logger: logger)
        do {
            let job = try await run(start, connection)
            await connection.close()
            return job
        } catch {
            await connection.close()
            throw error
        }
    }

    private func run(_ start: JobRecord, _ connection: PostgresConnection) async throws -> JobRecord {
        var job = start
        if job.startedAt == nil { job.startedAt = Date().timeIntervalSince1970 }
        job.status = .running
        job.lastError = nil
        if job.estimatedTotal == 0 { job.estimatedTotal = try await estimate(job, connection) }
        if job.sweepBefore == nil && job.kind != .ids, let lsn = try await currentLSN(connection) {
            job.sweepBefore = lsn
        }
        if job.kind == .rebuild && job.generation == nil {
            // A new generation beside the live one; the pipeline keeps it current from now on.
            let active = try await store.activeGeneration(entity.name)
            let building = (try await store.generations(entity.name)).max().map { $0 + 1 } ?? 1
            job.generation = building
            job.previousGeneration = active
            var batch = IndexBatch()
            batch.generationChanges[entity.name] = GenerationChange(active: active, maintained: [active, building])
            batch.jobs = [job]
            try await store.apply(batch, state: [:])
        }
        try await store.saveJob(job)
        var chunkSize = max(1, min(configuration.maximumChunkSize, job.chunkSize))
        if let width = try await averageRowBytes(connection), width > 0 {
            // The first chunk of wide rows: as many as the byte bound holds, at least one.
            chunkSize = min(chunkSize, max(1, configuration.maximumChunkBytes / width))
        }
        var chunkNumber = 0
        // Up to two chunks in flight: the next one is read while the previous one is written. After
        // a crash at most these two are read again (the job's cursor moves only with durable chunks).
        var inFlight: (token: String, start: JobRecord)?
        /// Waits until the chunk in flight is durable; returns the job as it was before that chunk
        /// when the chunk was released for a retry instead (see ``BackfillCoordinator/ChunkData``).
        func settle() async throws -> JobRecord? {
            guard let current = inFlight else { return nil }
            inFlight = nil
            return try await coordinator.awaitApplied(current.token) ? nil : current.start
        }
        var retries = 0
        /// Goes back to before a retried chunk, after a pause that grows while retries repeat (a
        /// transaction committed but not yet visible, e.g. waiting for a synchronous standby).
        func rewind(to start: JobRecord) async throws {
            job = start
            coordinator.resume(job: job.id)
            retries += 1
            logger.warning(
                "backfill chunk read again: a transaction it could not see had already committed before it",
                metadata: ["job.id": "\(job.id)", "retries": "\(retries)"])
            try await Task.sleep(for: min(.seconds(5), .milliseconds(20) * (1 << min(retries, 8))))
        }
        do {
            while true {
                // Obey the operator between chunks (after the chunk in flight is durable, so that its
                // progress record does not overwrite the new status).
                let control = try await store.job(job.id)?.control ?? .run
                if control != .run, let start = try await settle() {
                    job = start
                    coordinator.resume(job: job.id)
                }
                switch control {
                case .cancel:
                    job.status = .cancelled
                    job.finishedAt = Date().timeIntervalSince1970
                    var batch = IndexBatch()
                    if job.kind == .rebuild, let building = job.generation {
                        // Drop the half-built generation; the live one never stopped answering.
                        let active = try await store.activeGeneration(entity.name)
                        let keep = try await store.generations(entity.name).filter { $0 != building }
                        batch.generationChanges[entity.name] = GenerationChange(active: active, maintained: keep.isEmpty ? [active] : keep)
                    }
                    batch.jobs = [job]
                    try await store.apply(batch, state: [:])
                    return job
                case .pause:
                    if job.status != .paused {
                        job.status = .paused
                        try await store.saveJob(job)
                    }
                    try await Task.sleep(for: configuration.pollInterval)
                    continue
                case .run:
                    if job.status != .running {
                        job.status = .running
                        try await store.saveJob(job)
                    }
                }

                chunkNumber += 1
                let token = "\(runID).\(job.id).\(chunkNumber)"
                coordinator.register(token, entity: entity.name)
                do {
                    try await emit("L|\(token)", connection)
                    let started = ContinuousClock.now
                    let read = try await readChunk(job, size: chunkSize, connection)
                    let elapsed = ContinuousClock.now - started
                    logger.info(
                        "backfill chunk read",
                        metadata: [
                            "job.id": "\(job.id)", "chunk.rows": "\(read.rows.count + read.missing.count)",
                            "chunk.size": "\(chunkSize)", "chunk.ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
                        ])
                    var next = job
                    next.chunks += 1
                    next.chunkSize = chunkSize
                    next.largestChunkBytes = max(next.largestChunkBytes ?? 0, read.bytes)
                    next.processed += read.rows.count + read.missing.count
                    if let cursor = read.cursor { next.cursor = cursor }
                    if job.kind == .ids { next.ids = read.remainingIDs }
                    let seconds = max(0.001, Date().timeIntervalSince1970 - (next.startedAt ?? Date().timeIntervalSince1970))
                    next.rate = Double(next.processed) / seconds
                    next.estimatedTotal = max(next.estimatedTotal, next.processed)
                    coordinator.provide(token, .init(
                        entity: entity.name, rows: read.rows, missing: read.missing, snapshot: read.snapshot,
                        job: next, generation: job.kind == .rebuild ? job.generation : nil))
                    try await emit("H|\(token)", connection)
                    if let start = try await settle() {
                        // The previous chunk is read again; this one follows it in the stream and is
                        // released for a retry too, so wait for it and go back.
                        _ = try await coordinator.awaitApplied(token)
                        try await rewind(to: start)
                        continue
                    }
                    inFlight = (token, job)
                    job = next
                    // Aim the next chunk at the target duration, and at the byte bound given the
                    // width of the rows just read.
                    let ratio = configuration.targetChunkDuration / max(elapsed, .milliseconds(1))
                    chunkSize = min(configuration.maximumChunkSize, max(configuration.minimumChunkSize, Int(Double(chunkSize) * min(2, max(0.5, ratio)))))
                    if !read.rows.isEmpty {
                        let width = max(1, read.bytes / read.rows.count)
                        chunkSize = min(chunkSize, max(1, configuration.maximumChunkBytes / width))
                    }
                    if read.isLast {
                        if let start = try await settle() {
                            try await rewind(to: start)
                            continue
                        }
                        break
                    }
                } catch {
                    coordinator.finish(token)
                    throw error
                }
            }
        } catch {
            if let current = inFlight { coordinator.finish(current.token) }
            throw error
        }
        job.status = .completed
        job.finishedAt = Date().timeIntervalSince1970
        job.failed = try await store.deadLetterCount(entity: entity.name, since: job.sweepBefore ?? .zero)
        job.succeeded = max(0, job.processed - job.failed)
        var batch = IndexBatch()
        if let sweep = job.sweepBefore, job.kind == .backfill { batch.sweepBefore[entity.name] = sweep }
        if job.kind == .rebuild, let building = job.generation, let sweep = job.sweepBefore {
            // Switch search to the new generation atomically; keep the old one current for rollback.
            let previous = try await store.activeGeneration(entity.name)
            job.previousGeneration = previous
            batch.generationSweeps[entity.name] = (building, sweep)
            batch.generationChanges[entity.name] = GenerationChange(active: building, maintained: [building, previous])
        }
        batch.jobs = [job]
        // A load records itself in the same transaction, so a crash cannot separate the two.
        try await store.apply(batch, state: job.loadsIncarnation.map { ["loaded.\(entity.name)": $0] } ?? [:])
        logger.info("backfill completed", metadata: ["job.id": "\(job.id)", "entity": "\(entity.name)", "rows": "\(job.processed)"])
        return job
    }

    // MARK: - Reading

    struct Chunk {
        var rows: [BackfillCoordinator.Row]
        var missing: [String]
        var snapshot: BackfillCoordinator.Snapshot
        var cursor: [String?]?
        var remainingIDs: [String]?
        var isLast: Bool
        /// Bytes of the text forms of every value read.
        var bytes: Int
    }

    /// Names of the chunk query's byte columns (unlikely to clash with a table's columns).
    private static let bytesBefore = PostgresConnection.quoteIdentifier("tidemark.bytes_before")
    private static let ownBytes = PostgresConnection.quoteIdentifier("tidemark.row_bytes")

    /// SQL for the bytes of a row's selected values in text form. `octet_length` of a text value
    /// reads the length from its TOAST header, without fetching the value.
    private var rowBytes: String {
        "(" + entity.selectColumns.map { "coalesce(octet_length(\(PostgresConnection.quoteIdentifier($0))::text), 0)" }
            .joined(separator: " + ") + ")::bigint"
    }

    private func readChunk(_ job: JobRecord, size: Int, _ connection: PostgresConnection) async throws -> Chunk {
        let columns = entity.selectColumns
        let list = columns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
        let keys = entity.keyColumns.map(PostgresConnection.quoteIdentifier)
        let keyTuple = "(" + keys.joined(separator: ", ") + ")"
        // Every row comes with the running byte total (NULL for ids jobs) and, for a partitioned
        // table, its leaf partition; other tables are read ONLY themselves (not their inheritance
        // children, which are tables of their own).
        let source = partitioned ? entity.table.quoted : "ONLY \(entity.table.quoted)"
        let partitionColumn = partitioned ? ", tableoid::oid::text AS tidemark_partition" : ""
        let partitionOut = partitioned ? ", tidemark_partition" : ""
        var sql = "SELECT \(list), NULL::bigint\(partitionColumn) FROM \(source)"
        var parameters: [String?] = []
        var wanted: [String] = []
        switch job.kind {
        case .backfill, .rebuild:
            // Bytes of the rows before each one (a frame that ends before the current row, so the
            // server reads no row past the chunk), and of the row itself.
            var inner = "SELECT \(list)\(partitionColumn), coalesce(sum(\(rowBytes)) OVER (ORDER BY \(keys.joined(separator: ", ")) ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS \(Self.bytesBefore), \(rowBytes) AS \(Self.ownBytes) FROM \(source)"
            if let cursor = job.cursor, cursor.count == keys.count {
                let placeholders = cursor.indices.map { index in
                    "$\(index + 1)" + (index < entity.keyTypes.count ? "::\(entity.keyTypes[index])" : "")
                }
                inner += " WHERE \(keyTuple) > (\(placeholders.joined(separator: ", ")))"
                parameters = cursor
            }
            inner += " ORDER BY \(keys.joined(separator: ", ")) LIMIT \(size)"
            // The server stops the chunk at the first row that reaches the byte bound (widths are
            // measured without reading TOASTed text), so a chunk holds at most the bound plus one row.
            sql = """
                SELECT \(list), \(Self.bytesBefore) + \(Self.ownBytes)\(partitionOut) FROM (\(inner)) AS chunk
                 WHERE \(Self.bytesBefore) < \(configuration.maximumChunkBytes)
                 ORDER BY \(keys.joined(separator: ", "))
                """
        case .ids:
            wanted = Array((job.ids ?? []).prefix(size))
            var conditions: [String] = []
            for id in wanted {
                guard let key = DocumentID.parse(id, keyCount: keys.count) else { continue }
                let placeholders = key.indices.map { index in
                    "$\(parameters.count + index + 1)" + (index < entity.keyTypes.count ? "::\(entity.keyTypes[index])" : "")
                }
                conditions.append("\(keyTuple) = (\(placeholders.joined(separator: ", ")))")
                parameters += key
            }
            sql += conditions.isEmpty ? " WHERE false" : " WHERE " + conditions.joined(separator: " OR ")
        }
        // One short transaction per chunk; its snapshot decides which stream changes supersede rows.
        try await connection.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        let result: QueryResult
        let snapshotText: String?
        do {
            snapshotText = try await connection.query("SELECT pg_current_snapshot()::text").rows.first?.first ?? nil
            result = try await connection.query(sql, parameters)
            try await connection.simpleQuery("COMMIT")
        } catch {
            _ = try? await connection.simpleQuery("ROLLBACK")
            throw error
        }
        guard let snapshotText, let snapshot = BackfillCoordinator.Snapshot(snapshotText) else {
            throw SyncError(.initialLoad, "the server returned no transaction snapshot for a backfill chunk")
        }

        let keyPositions = entity.keyColumns.compactMap { columns.firstIndex(of: $0) }
        var rows: [BackfillCoordinator.Row] = []
        rows.reserveCapacity(result.rows.count)
        var bytes = 0
        for row in result.rows {
            for value in row.prefix(columns.count) { bytes += value?.utf8.count ?? 0 }
            var values: [String: String?] = [:]
            for (index, column) in columns.enumerated() { values[column] = row[index] }
            let partition = partitioned && row.count > columns.count + 1 ? row[columns.count + 1] : nil
            rows.append(.init(id: DocumentID.make(keyPositions.map { row[$0] }), values: values, partition: partition))
        }
        switch job.kind {
        case .backfill, .rebuild:
            let last = result.rows.last.map { row in keyPositions.map { row[$0] } }
            // Fewer rows than asked for: the table ended, unless the byte bound cut the chunk.
            let cut = (result.rows.last?[columns.count].flatMap { Int($0) } ?? 0) >= configuration.maximumChunkBytes
            return Chunk(
                rows: rows, missing: [], snapshot: snapshot, cursor: last, remainingIDs: nil,
                isLast: result.rows.count < size && !cut, bytes: bytes)
        case .ids:
            let found = Set(rows.map(\.id))
            let remaining = Array((job.ids ?? []).dropFirst(wanted.count))
            return Chunk(
                rows: rows, missing: wanted.filter { !found.contains($0) }, snapshot: snapshot,
                cursor: nil, remainingIDs: remaining, isLast: remaining.isEmpty, bytes: bytes)
        }
    }

    /// Writes a watermark. Transactional, so that its commit flushes the WAL and the walsender sends
    /// it at once (a non-transactional message waits for the WAL writer, up to `wal_writer_delay`); its
    /// place in the stream is its commit, in commit order like every change.
    private func emit(_ content: String, _ connection: PostgresConnection) async throws {
        _ = try await connection.query(
            "SELECT pg_logical_emit_message(true, $1, $2)::text", [BackfillCoordinator.prefix, content])
    }

    private func currentLSN(_ connection: PostgresConnection) async throws -> LSN? {
        try await connection.query("SELECT pg_current_wal_insert_lsn()::text").rows.first?.first.flatMap { $0.flatMap { LSN($0) } }
    }

    /// Average bytes of a row: the table's total size (TOAST and indexes included, so rather more
    /// than what a chunk reads) over its row estimate; from a small sample of the selected values
    /// when the table was never analysed. `nil` for an empty table.
    private func averageRowBytes(_ connection: PostgresConnection) async throws -> Int? {
        let size = try await connection.query(
            "SELECT pg_total_relation_size(oid)::text, reltuples::bigint::text FROM pg_class WHERE oid = $1::regclass",
            [entity.table.quoted]).rows.first
        if let total = size?[0].flatMap({ Int($0) }), let rows = size?[1].flatMap({ Int($0) }), rows > 0 {
            return total / rows
        }
        let sample = try await connection.query(
            "SELECT avg(\(rowBytes))::bigint::text FROM (SELECT * FROM \(entity.table.quoted) LIMIT 16) AS sample")
        return sample.rows.first?.first.flatMap { $0.flatMap { Int($0) } }
    }

    private func estimate(_ job: JobRecord, _ connection: PostgresConnection) async throws -> Int {
        if job.kind == .ids { return job.ids?.count ?? 0 }
        let rows = try await connection.query(
            "SELECT GREATEST(reltuples, 0)::bigint::text FROM pg_class WHERE oid = $1::regclass", [entity.table.quoted])
        return Int(rows.rows.first?.first.flatMap { $0 } ?? "0") ?? 0
    }
}
