import Embedding
import Capture
import Foundation
import Indexing
import Logging
import Postgres
import Synchronization

/// The indexing pipeline: committed changes → documents → embeddings → one index transaction per
/// batch, together with the checkpoint.
///
/// Guarantees:
/// - Changes to one key are applied in commit order; several changes to one key in a batch are
///   coalesced to the last.
/// - A batch and the checkpoint it covers commit in one store transaction; the caller confirms the
///   slot only up to the returned checkpoint.
/// - An embedding call is made only for documents whose content hash or model changed.
/// - A row that cannot be rendered or embedded becomes a dead letter; the rest of the batch is applied.
///
/// Three stages: *resolve* (render, chunk, look up stored state, fill unchanged TOAST values) runs in
/// the caller's task; *embed* runs in ``Configuration/embeddingConcurrency`` workers inside
/// ``run(_:)``, so several batches' embedding requests are in flight at once (a provider's latency is
/// hidden, its budgets filled); *apply* (one store transaction per batch) runs inside ``run(_:)`` and
/// takes the batches strictly in the order they were resolved, whatever order their embeddings
/// finish in. Documents resolved but not yet applied are remembered in an overlay, so resolving the
/// next batch sees them. At most ``Configuration/maxBatchesInFlight(backfilling:)`` batches are between resolve
/// and apply; feeding waits beyond that (backpressure reaches the replication stream).
///
/// Feeding calls must not overlap: one consumer feeds the pipeline (the reader's handler, or a loader),
/// inside ``run(_:)``.
public final class Pipeline: Sendable {
    public struct Configuration: Sendable {
        /// Most changes per batch. Default 1000.
        public var batchSize = 1_000
        /// Most content bytes per batch. Default 4 MiB.
        public var batchBytes = 4 << 20
        /// Longest a change waits while input keeps arriving. Default 50 ms.
        public var batchDelay: Duration = .milliseconds(50)
        /// Attempts to write a batch before giving up (the agent then stops; a restart resumes). Default 5.
        public var applyAttempts = 5
        /// Batches whose embeddings are computed at once. Default 4: enough to keep an embedding
        /// provider's requests in flight while earlier batches are written; each embedding call of a
        /// batch may itself be split into concurrent provider requests.
        public var embeddingConcurrency = 4
        /// How long content is split into chunks, each embedded on its own. Default 512 tokens with
        /// 64 of overlap.
        public var chunking = TextChunker.Configuration()

        /// Most batches resolved but not yet applied: those being embedded and the one being
        /// written. While a backfill runs, batches are full and the pipeline is throughput-bound:
        /// one batch more keeps resolving, embedding and writing busy at once (1M-row backfill
        /// +7 %). Streaming alone is latency-bound; there it would only hold memory.
        func maxBatchesInFlight(backfilling: Bool) -> Int { max(1, embeddingConcurrency) + (backfilling ? 2 : 1) }

        public init() {}
    }

    /// Counters for metrics, tests and benchmarks.
    public struct Statistics: Sendable, Equatable {
        public var batches = 0
        public var upserts = 0
        public var deletes = 0
        public var truncates = 0
        /// Calls to the embedder and the texts (chunks) they carried.
        public var embeddingCalls = 0
        public var embeddedDocuments = 0
        /// Documents split into more than one chunk.
        public var chunkedDocuments = 0
        /// Documents whose content and model were unchanged, so no embedding was needed.
        public var embeddingsSkipped = 0
        public var deadLetters = 0
        public var toastRereads = 0
        public var checkpoint: LSN?
        /// Commit → searchable latency of streamed transactions, in milliseconds.
        public var latency = LatencyHistogram()

        public init() {}
    }

    public let configuration: Configuration
    private let entitiesByTable: [TableName: [EntityMapping]]
    /// Leaf partitions of partitioned entity tables: changes arrive under the leaf's name.
    private let partitions = Mutex(PartitionMap())
    private let entitiesByName: [String: EntityMapping]
    private let embedder: any Embedder
    private let store: any IndexStore
    private let rowSource: RowSource?
    private let logger: Logger
    private let pending = Mutex(PendingBatch())
    private let counters = Mutex(Statistics())
    private let onDurable: @Sendable (LSN) -> Void
    /// Set while backfills run: watermark chunks join the stream here.
    let coordinator: BackfillCoordinator?
    private let embedQueue = BoundedQueue<ResolvedBatch>(capacity: 1)
    private let handoff = OrderedHandoff<PreparedBatch>()
    private let progress = Mutex(ApplyProgress())
    /// When a slow batch was last logged, and slow batches since.
    private let slowBatches = Mutex<(lastLogged: ContinuousClock.Instant?, count: Int)>((nil, 0))
    private let chunker: TextChunker

    /// A batch whose documents are rendered and chunked, waiting for its embeddings.
    struct ResolvedBatch: Sendable {
        var sequence: Int
        /// Every upsert in `work.upserts` (none targeted yet), without vectors; `targets[i]` is the
        /// generation `work.upserts[i]` goes to (`nil`: every maintained one).
        var work: IndexBatch
        var targets: [Int?]
        /// For each of `work.upserts`: hashes of its chunks whose stored vector is kept (same text
        /// and model stored): not embedded, the store takes them from what it holds.
        var kept: [Set<String>]
        var checkpoint: LSN?
        var commitTimes: [Int64]
        var chunkTokens: [String]
    }
    /// Told about every applied batch (metrics); `nil` costs nothing.
    private let observer: (@Sendable (AppliedBatchReport) -> Void)?

    /// A batch ready to write.
    struct PreparedBatch: Sendable {
        var sequence: Int
        var work: IndexBatch
        var checkpoint: LSN?
        var commitTimes: [Int64]
        var chunkTokens: [String]
    }

    /// What the apply stage has done, and what it is waiting to do.
    struct ApplyProgress {
        var submitted = 0
        var applied = 0
        var failure: (any Error)?
        var waiters: [(sequence: Int, continuation: CheckedContinuation<Void, any Error>)] = []
        /// Stored state of documents prepared but not yet applied: `nil` means "gone".
        var overlay: [PendingBatch.Key: (sequence: Int, state: StoredDocumentState?)] = [:]
        /// Entities truncated by a batch not yet applied, with that batch's sequence.
        var truncated: [String: Int] = [:]
        /// Documents whose latest change failed in a batch not yet applied (it records the dead letter).
        var deadLettered: [PendingBatch.Key: Int] = [:]
        /// Partitions truncated by a batch not yet applied: entity → partition → sequence.
        var truncatedPartitions: [String: [String: Int]] = [:]
    }

    /// - Parameter onDurable: called with each checkpoint once the batch carrying it is committed
    ///   in the store, in order (the agent confirms the replication slot there).
    public convenience init(
        configuration: Configuration, entities: [EntityMapping], embedder: any Embedder, store: any IndexStore,
        rowSource: RowSource?, logger: Logger, onDurable: @escaping @Sendable (LSN) -> Void = { _ in }
    ) {
        self.init(
            configuration: configuration, entities: entities, embedder: embedder, store: store, rowSource: rowSource,
            logger: logger, coordinator: nil, onDurable: onDurable)
    }

    init(
        configuration: Configuration, entities: [EntityMapping], embedder: any Embedder, store: any IndexStore,
        rowSource: RowSource?, logger: Logger, coordinator: BackfillCoordinator?, onDurable: @escaping @Sendable (LSN) -> Void,
        observer: (@Sendable (AppliedBatchReport) -> Void)? = nil
    ) {
        self.observer = observer
        self.coordinator = coordinator
        self.onDurable = onDurable
        self.configuration = configuration
        self.entitiesByTable = Dictionary(grouping: entities, by: \.table)
        self.entitiesByName = Dictionary(entities.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.embedder = embedder
        self.store = store
        self.rowSource = rowSource
        self.logger = logger
        self.chunker = TextChunker(configuration: configuration.chunking)
    }

    public var statistics: Statistics { counters.withLock { $0 } }

    /// Replaces the known leaf partitions (read from the catalog at start, and again when the agent
    /// notices an attach or detach).
    public func updatePartitions(_ map: PartitionMap) {
        partitions.withLock { $0 = map }
    }

    /// Learns the roots of tables in `events` that are neither entity tables nor known leaves: the
    /// publication holds only entity tables, so such a table is a partition attached since the map
    /// was read. Without this its changes would be dropped until the map is read again.
    private func learnPartitions(_ events: [CaptureEvent]) async throws {
        var unknown: [TableName: UInt32] = [:]
        partitions.withLock { map in
            for event in events {
                guard case .transaction(let piece) = event else { continue }
                for change in piece.changes where entitiesByTable[change.table] == nil && map.root(of: change.table) == nil {
                    unknown[change.table] = change.schema.id
                }
            }
        }
        guard !unknown.isEmpty, let rowSource else { return }
        let roots = Set(entitiesByTable.keys)
        for (table, relation) in unknown {
            guard let root = try await rowSource.partitionRoot(ofRelation: relation, among: roots) else { continue }
            partitions.withLock { $0.add(.init(oid: String(relation), table: table), root: root) }
            logger.info("new partition seen in the stream", metadata: ["table": "\(table)", "partition.root": "\(root)"])
        }
    }

    // MARK: - Input

    /// Feeds events from the replication reader, in order. Full batches are handed to the apply stage.
    /// An empty array means "no more input right now": the partial batch is handed over at once (not
    /// awaited: under a stream of small transactions the next batch grows while this one is written).
    public func handle(_ events: [CaptureEvent]) async throws {
        if events.isEmpty {
            _ = try await submit()
            return
        }
        try await learnPartitions(events)
        let map = partitions.withLock { $0 }
        pending.withLock { batch in
            for event in events {
                switch event {
                case .transaction(let piece):
                    for change in piece.changes { add(change, partitions: map, to: &batch) }
                    if piece.isFinal {
                        coordinator?.observeCommit(xid: piece.xid)
                        // Watermarks are transactional messages: they take effect at their commit.
                        for message in piece.messages { watermark(message, lsn: piece.endLSN, to: &batch) }
                        batch.checkpoint = max(batch.checkpoint ?? .zero, piece.endLSN)
                        if piece.commitTime > 0 { batch.commitTimes.append(piece.commitTime) }
                    }
                case .message(let message):
                    batch.checkpoint = max(batch.checkpoint ?? .zero, message.lsn)
                    watermark(message, lsn: message.lsn, to: &batch)
                case .idle(let lsn):
                    batch.checkpoint = max(batch.checkpoint ?? .zero, lsn)
                }
            }
        }
        try await submitIfFull()
    }

    /// Feeds rows read outside replication (initial load, retries). `checkpoint`, when given, is
    /// recorded with the batch that contains the last of these changes.
    public func ingest(_ changes: [RowChange], checkpoint: LSN? = nil) async throws {
        let map = partitions.withLock { $0 }
        pending.withLock { batch in
            for change in changes { add(change, partitions: map, to: &batch) }
            if let checkpoint { batch.checkpoint = max(batch.checkpoint ?? .zero, checkpoint) }
        }
        try await submitIfFull()
    }

    private func watermark(_ message: PgOutputMessage.LogicalMessage, lsn: LSN, to batch: inout PendingBatch) {
        guard message.prefix == BackfillCoordinator.prefix, let coordinator,
            let (token, release) = coordinator.watermark(message.content), let release
        else { return }
        addChunk(release, token: token, lsn: lsn, to: &batch)
    }

    /// Adds a backfill chunk released at its high watermark: its rows as upserts at that position.
    private func addChunk(_ release: BackfillCoordinator.Release, token: String, lsn: LSN, to batch: inout PendingBatch) {
        if release.retry {
            // Nothing of it applies; the worker learns once this batch is durable and reads it again.
            batch.chunkTokens.append(token)
            return
        }
        for row in release.rows {
            let values = row.values.mapValues { $0.map(ColumnValue.text) ?? .null }
            if let generation = release.generation {
                batch.upsertTargeted(
                    .init(entity: release.entity, id: row.id), generation: generation, values: values, lsn: lsn, partition: row.partition)
            } else {
                batch.upsert(.init(entity: release.entity, id: row.id), values: values, lsn: lsn, partition: row.partition)
            }
        }
        for id in release.missing { batch.delete(.init(entity: release.entity, id: id), lsn: lsn) }
        batch.jobs.append(release.job)
        batch.chunkTokens.append(token)
    }

    private func add(_ change: RowChange, partitions: PartitionMap, to batch: inout PendingBatch) {
        // A change of a leaf partition belongs to its partitioned root's entities.
        var partition: String?
        var mappings = entitiesByTable[change.table]
        if mappings == nil, let root = partitions.root(of: change.table) {
            mappings = entitiesByTable[root]
            partition = String(change.schema.id)
        }
        guard let mappings else { return }
        let watching = coordinator?.isActive ?? false
        for entity in mappings {
            if change.operation == .truncate {
                if watching { coordinator?.observeTruncate(xid: change.xid, entity: entity.name, partition: partition) }
                if let partition {
                    batch.truncate(entity.name, partition: partition)
                } else {
                    batch.truncate(entity.name)
                }
                continue
            }
            let (documentID, oldID) = ids(of: change, entity: entity)
            if watching, let coordinator {
                coordinator.observe(xid: change.xid, entity: entity.name, id: documentID)
                if let oldID, oldID != documentID { coordinator.observe(xid: change.xid, entity: entity.name, id: oldID) }
            }
            switch change.operation {
            case .truncate:
                break
            case .delete:
                batch.delete(.init(entity: entity.name, id: documentID), lsn: change.commitLSN, partition: partition)
            case .insert, .update:
                guard let newValues = change.newValues else { continue }
                if let oldID { batch.delete(.init(entity: entity.name, id: oldID), lsn: change.commitLSN, partition: partition) }
                var values: [String: ColumnValue] = [:]
                for column in entity.selectColumns {
                    if let index = change.schema.index(of: column), index < newValues.count {
                        values[column] = newValues[index]
                    }
                }
                batch.upsert(
                    .init(entity: entity.name, id: documentID), values: values, lsn: change.commitLSN, partition: partition, xid: change.xid)
            }
        }
    }

    /// The document id a change writes, and the id it leaves behind when it changed the entity's key.
    ///
    /// When the stream's key is the entity's key, both come from the change's key tuples. Otherwise
    /// (another entity of the same table keyed by other columns, under `REPLICA IDENTITY FULL`) the
    /// new id is read by name from the new row and the old id from the old row, so a key change
    /// removes the old document and a delete finds it.
    private func ids(of change: RowChange, entity: EntityMapping) -> (id: String, oldID: String?) {
        if change.schema.keyColumns == entity.keyColumns {
            let id = DocumentID.make(change.key.map(\.text))
            let oldID = change.oldKey.map { DocumentID.make($0.map(\.text)) }
            return (id, oldID == id ? nil : oldID)
        }
        func fromRow(_ row: [ColumnValue]?) -> String? {
            guard let row else { return nil }
            var texts: [String?] = []
            for column in entity.keyColumns {
                guard let index = change.schema.index(of: column), index < row.count, row[index] != .unchangedToast else { return nil }
                texts.append(row[index].text)
            }
            return DocumentID.make(texts)
        }
        func fromKey(_ key: [ColumnValue]?) -> String? {
            guard let key else { return nil }
            let streamKey = change.schema.keyColumns
            var texts: [String?] = []
            for column in entity.keyColumns {
                guard let index = streamKey.firstIndex(of: column), index < key.count else { return nil }
                texts.append(key[index].text)
            }
            return DocumentID.make(texts)
        }
        if change.operation == .delete {
            return (fromRow(change.oldValues) ?? fromKey(change.key) ?? DocumentID.make(change.key.map(\.text)), nil)
        }
        let id = fromRow(change.newValues) ?? fromKey(change.key) ?? DocumentID.make(change.key.map(\.text))
        let oldID = fromRow(change.oldValues) ?? fromKey(change.oldKey)
        return (id, oldID == id ? nil : oldID)
    }

    // MARK: - Stages

    /// Runs the apply stage while `body` feeds the pipeline; when `body` returns, flushes and waits
    /// until everything is durable. An apply failure makes feeding calls throw it.
    public func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.applyLoop() }
            for _ in 0..<max(1, configuration.embeddingConcurrency) {
                group.addTask { await self.embedLoop() }
            }
            do {
                let result = try await body()
                try await flush()
                embedQueue.finish()
                handoff.finish()
                try await group.waitForAll()
                return result
            } catch {
                embedQueue.finish()
                handoff.finish()
                group.cancelAll()
                throw error
            }
        }
    }

    /// One embedding worker: takes resolved batches in turn, embeds what they need, and hands them
    /// to the apply stage (which restores their order).
    private func embedLoop() async {
        while let resolved = await embedQueue.pop() {
            do {
                let prepared = try await embed(resolved)
                handoff.put(prepared, sequence: resolved.sequence)
            } catch {
                // Only cancellation ends an embedding call: the pipeline is stopping.
                return
            }
        }
    }

    /// Commit → searchable latency from which a batch is logged (`notice`) with its apply time.
    static let slowBatchMicroseconds: Int64 = 250_000

    /// Logs a batch whose oldest change took ``slowBatchMicroseconds`` or more from its commit to
    /// being searchable, at most once per 10 s (a catch-up after downtime makes every batch slow).
    private func logIfSlow(_ prepared: PreparedBatch, appliedAt: Int64, applyDuration: Duration) {
        guard let oldest = prepared.commitTimes.min(), appliedAt - oldest >= Self.slowBatchMicroseconds else { return }
        let now = ContinuousClock.now
        let slow = slowBatches.withLock { slow -> Int? in
            slow.count += 1
            guard slow.lastLogged.map({ now - $0 >= .seconds(10) }) ?? true else { return nil }
            defer { slow.count = 0 }
            slow.lastLogged = now
            return slow.count
        }
        guard let slow else { return }
        logger.notice(
            "slow batch: committed changes took long to become searchable",
            metadata: [
                "latency.ms": "\((appliedAt - oldest) / 1000)", "apply.ms": "\(Int(applyDuration.inSeconds * 1000))",
                "transactions": "\(prepared.commitTimes.count)", "upserts": "\(prepared.work.upserts.count)",
                "slow.batches": "\(slow)",
            ])
    }

    private func applyLoop() async {
        var next = 1
        while let prepared = await handoff.take(next) {
            next += 1
            var state: [String: String] = [:]
            if let checkpoint = prepared.checkpoint { state["checkpoint"] = checkpoint.description }
            let applyStarted = ContinuousClock.now
            do {
                try await applyWithRetry(prepared.work, state: state)
            } catch {
                let waiters = progress.withLock { progress -> [CheckedContinuation<Void, any Error>] in
                    progress.failure = error
                    defer { progress.waiters.removeAll() }
                    return progress.waiters.map(\.continuation)
                }
                embedQueue.finish()
                handoff.finish()
                for waiter in waiters { waiter.resume(throwing: error) }
                return
            }
            let appliedAt = PostgresClock.now()
            let applyDuration = ContinuousClock.now - applyStarted
            let work = prepared.work
            logIfSlow(prepared, appliedAt: appliedAt, applyDuration: applyDuration)
            counters.withLock {
                for commitTime in prepared.commitTimes {
                    $0.latency.record(milliseconds: Double(appliedAt - commitTime) / 1000)
                }
                $0.batches += 1
                $0.upserts += work.upserts.count
                $0.deletes += work.deletes.values.reduce(0) { $0 + $1.count }
                $0.truncates += work.truncates.count
                $0.deadLetters += work.deadLetters.count
                if let checkpoint = prepared.checkpoint { $0.checkpoint = checkpoint }
            }
            if let checkpoint = prepared.checkpoint { onDurable(checkpoint) }
            if let observer { observer(Self.report(prepared, appliedAt: appliedAt, duration: applyDuration)) }
            if !prepared.chunkTokens.isEmpty { coordinator?.applied(prepared.chunkTokens) }
            let ready = progress.withLock { progress -> [CheckedContinuation<Void, any Error>] in
                progress.applied = prepared.sequence
                // The store now holds this batch: overlay entries from it (and older) are redundant.
                progress.overlay = progress.overlay.filter { $0.value.sequence > prepared.sequence }
                progress.truncated = progress.truncated.filter { $0.value > prepared.sequence }
                progress.deadLettered = progress.deadLettered.filter { $0.value > prepared.sequence }
                progress.truncatedPartitions = progress.truncatedPartitions
                    .mapValues { $0.filter { $0.value > prepared.sequence } }.filter { !$0.value.isEmpty }
                let done = progress.waiters.filter { $0.sequence <= prepared.sequence }
                progress.waiters.removeAll { $0.sequence <= prepared.sequence }
                return done.map(\.continuation)
            }
            for waiter in ready { waiter.resume() }
        }
    }

    private static func report(_ prepared: PreparedBatch, appliedAt: Int64, duration: Duration) -> AppliedBatchReport {
        var report = AppliedBatchReport()
        let work = prepared.work
        for upsert in work.upserts { report.changes[upsert.document.entity, default: .init()].upserts += 1 }
        for (entity, ids) in work.deletes { report.changes[entity, default: .init()].deletes += ids.count }
        for entity in work.truncates { report.changes[entity, default: .init()].truncates += 1 }
        for letter in work.deadLetters { report.changes[letter.entity, default: .init()].deadLetters += 1 }
        report.size = work.upserts.count + work.deletes.values.reduce(0) { $0 + $1.count } + work.truncates.count
        report.applyDuration = duration
        report.checkpoint = prepared.checkpoint
        report.latencies = prepared.commitTimes.map { Double(appliedAt - $0) / 1000 }
        return report
    }

    private func submitIfFull() async throws {
        let full = pending.withLock { batch in
            batch.changeCount >= configuration.batchSize || batch.bytes >= configuration.batchBytes
                || (batch.startedAt.map { ContinuousClock.now - $0 >= configuration.batchDelay } ?? false)
        }
        if full { _ = try await submit() }
    }

    /// Resolves the pending batch and hands it to the embedding stage; returns its sequence number
    /// (`nil` when nothing was pending). Waits first while ``Configuration/maxBatchesInFlight(backfilling:)``
    /// batches are between resolve and apply.
    private func submit() async throws -> Int? {
        if let failure = progress.withLock({ $0.failure }) { throw failure }
        let empty = pending.withLock { $0.isEmpty }
        guard !empty else { return nil }
        let upcoming = progress.withLock { $0.submitted + 1 }
        try await waitUntilApplied(upcoming - configuration.maxBatchesInFlight(backfilling: coordinator?.isActive ?? false))
        let batch = pending.withLock { current -> PendingBatch in
            defer { current = PendingBatch() }
            return current
        }
        guard !batch.isEmpty else { return nil }
        let (work, targets, kept) = try await resolve(batch)
        let sequence = progress.withLock { progress -> Int in
            progress.submitted += 1
            let sequence = progress.submitted
            for entity in work.truncates {
                progress.truncated[entity] = sequence
                progress.overlay = progress.overlay.filter { $0.key.entity != entity }
            }
            for (entity, partitions) in work.partitionTruncates {
                for partition in partitions { progress.truncatedPartitions[entity, default: [:]][partition] = sequence }
                progress.overlay = progress.overlay.filter { key, entry in
                    key.entity != entity || !(entry.state?.partition.map(partitions.contains) ?? false)
                }
            }
            for (entity, ids) in work.deletes {
                for id in ids { progress.overlay[.init(entity: entity, id: id)] = (sequence, nil) }
            }
            // As if every embedding succeeds: a later batch that keeps a vector this one failed to
            // make finds it missing when it is written (MissingStoredVectors) and embeds it then.
            for upsert in work.upserts {
                let document = upsert.document
                progress.overlay[document.key] = (
                    sequence,
                    StoredDocumentState(
                        contentHash: document.contentHash, model: upsert.model, sourceValues: document.sourceValues, lsn: document.lsn,
                        partition: document.partition, chunkHashes: document.chunks.map(\.hash))
                )
            }
            for letter in work.deadLetters {
                progress.deadLettered[.init(entity: letter.entity, id: letter.id)] = sequence
            }
            return sequence
        }
        do {
            try await embedQueue.push(ResolvedBatch(
                sequence: sequence, work: work, targets: targets, kept: kept, checkpoint: batch.checkpoint, commitTimes: batch.commitTimes,
                chunkTokens: batch.chunkTokens))
        } catch {
            throw progress.withLock { $0.failure } ?? SyncError(.apply, "the pipeline is not running: feed it inside Pipeline.run")
        }
        return sequence
    }

    /// Waits until every batch up to `sequence` is durable (at once when it is 0 or less).
    private func waitUntilApplied(_ sequence: Int) async throws {
        guard sequence > 0 else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let immediate: Result<Void, any Error>? = progress.withLock { progress in
                if let failure = progress.failure { return .failure(failure) }
                if progress.applied >= sequence { return .success(()) }
                progress.waiters.append((sequence, continuation))
                return nil
            }
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    /// Applies whatever is pending now and waits until it, and everything before it, is durable.
    public func flush() async throws {
        guard let sequence = try await submit() ?? progress.withLock({ $0.submitted > $0.applied ? $0.submitted : nil }) else { return }
        try await waitUntilApplied(sequence)
    }

    /// Stored state for `ids`, with documents prepared but not yet applied taken from the overlay.
    ///
    /// The overlay is read *before* the store: a batch applied while the store is read then shows
    /// in one or the other (its overlay entries are only dropped once it is applied), never in
    /// neither — reading the overlay afterwards could miss a batch applied in between and see the
    /// store from before it.
    private func currentStates(entity: String, ids: [String]) async throws -> [String: StoredDocumentState] {
        let (pending, truncatedInFlight, truncatedPartitions, failed) = progress.withLock { progress in
            var pending: [String: (sequence: Int, state: StoredDocumentState?)] = [:]
            var failed: [String: Int] = [:]
            for id in ids {
                let key = PendingBatch.Key(entity: entity, id: id)
                if let entry = progress.overlay[key] { pending[id] = entry }
                if let sequence = progress.deadLettered[key] { failed[id] = sequence }
            }
            return (pending, progress.truncated[entity] != nil, Set(progress.truncatedPartitions[entity].map { Array($0.keys) } ?? []), failed)
        }
        // Truncated by a batch still in flight: only what was written after it counts.
        var states = truncatedInFlight ? [:] : try await store.storedStates(entity: entity, ids: ids)
        if !truncatedPartitions.isEmpty {
            states = states.filter { !($0.value.partition.map(truncatedPartitions.contains) ?? false) }
        }
        for (id, entry) in pending { states[id] = entry.state }
        for (id, sequence) in failed where sequence >= pending[id]?.sequence ?? 0 {
            states[id]?.isLatest = false
        }
        return states
    }

    private func applyWithRetry(_ batch: IndexBatch, state: [String: String]) async throws {
        var work = batch
        var delay = Duration.milliseconds(100)
        var attempt = 1
        while true {
            do {
                try await store.apply(work, state: state)
                return
            } catch let missing as MissingStoredVectors {
                // Nothing was written: embed what lost its stored vector and write the batch again.
                logger.debug("stored vectors gone since prepare; embedding them", metadata: ["documents": "\(missing.documents.count)"])
                try await embedMissing(missing.documents, in: &work)
                continue
            } catch {
                if attempt >= configuration.applyAttempts {
                    throw SyncError(.apply, "writing to the index failed \(attempt) times; stopping so that a restart resumes from the last checkpoint", underlying: error)
                }
                logger.warning("index write failed; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try await Task.sleep(for: delay)
                delay *= 2
                attempt += 1
            }
        }
    }

    /// Renders and chunks documents, looks up stored state, and builds the store batch with every
    /// upsert in `upserts` (no vectors yet), the generation each one goes to (`nil`: every
    /// maintained one), and the hashes of the chunks whose stored vectors each one keeps.
    private func resolve(_ batch: PendingBatch) async throws -> (IndexBatch, [Int?], [Set<String>]) {
        var work = IndexBatch()
        work.truncates = batch.truncates
        work.partitionTruncates = batch.partitionTruncates
        work.jobs = batch.jobs
        let now = Date().timeIntervalSince1970

        // The generation each of work.upserts goes to: nil for every maintained one.
        var targets: [Int?] = []
        // For each of work.upserts: the chunk hashes whose stored vectors it keeps.
        var kept: [Set<String>] = []
        let byEntity = Dictionary(grouping: batch.entries, by: { $0.key.entity })
        let targetedByEntity = Dictionary(grouping: batch.targeted, by: { $0.key.entity })
        for entityName in Set(byEntity.keys).union(targetedByEntity.keys).sorted() {
            guard let entity = entitiesByName[entityName] else { continue }
            var upserts: [(id: String, values: [String: ColumnValue], lsn: LSN, generation: Int?, partition: String?, xid: UInt32)] = []
            var replacingDeleted = Set<String>()
            for (key, entry) in byEntity[entityName] ?? [] {
                switch entry.operation {
                case .delete:
                    work.deletes[entityName, default: []].append(key.id)
                    work.resolved[entityName, default: []].append(key.id)
                case .upsert(let values):
                    upserts.append((key.id, values, entry.lsn, nil, entry.partition, entry.xid))
                    if entry.followsDelete { replacingDeleted.insert(key.id) }
                }
            }
            for (key, row) in targetedByEntity[entityName] ?? [] {
                upserts.append((key.id, row.values, row.lsn, row.generation, row.partition, 0))
            }
            guard !upserts.isEmpty else { continue }
            // Truncated earlier in this very batch (the truncate is applied first): nothing stored
            // counts, every upsert of the entity comes after it. Likewise for documents of a
            // partition truncated in this batch.
            var stored = batch.truncates.contains(entityName) ? [:] : try await currentStates(entity: entityName, ids: upserts.map(\.id))
            if let truncatedPartitions = batch.partitionTruncates[entityName].map(Set.init) {
                stored = stored.filter { !($0.value.partition.map(truncatedPartitions.contains) ?? false) }
            }
            /// A stored source value may stand in for an unchanged TOAST value only when the stored
            /// document is the row's latest version.
            func storedValue(_ id: String, _ column: String) -> String?? {
                guard let state = stored[id], state.isLatest, !replacingDeleted.contains(id) else { return nil }
                return state.sourceValues[column]
            }

            // Unchanged TOAST values: take the stored source value, else re-read the row.
            var reread: [String: [String: String?]] = [:]
            var rereadFailure: (any Error)?
            let missing = upserts.filter { upsert in
                upsert.values.contains { column, value in
                    value == .unchangedToast && storedValue(upsert.id, column) == nil
                }
            }.map(\.id)
            if !missing.isEmpty, let rowSource {
                let missingSet = Set(missing)
                let xids = Set(upserts.filter { missingSet.contains($0.id) }.map(\.xid))
                do {
                    try await rowSource.waitUntilVisible(xids)
                    reread = try await rereadRows(entity, ids: missing, from: rowSource)
                } catch {
                    rereadFailure = error
                }
                counters.withLock { $0.toastRereads += missing.count }
            }

            for upsert in upserts {
                var values: [String: String?] = [:]
                var unresolved = false
                for (column, value) in upsert.values {
                    switch value {
                    case .text(let text): values[column] = .some(text)
                    case .null: values[column] = .some(nil)
                    case .binary(let bytes): values[column] = .some(bytes.map { String(format: "%02x", $0) }.joined())
                    case .unchangedToast:
                        if let previous = storedValue(upsert.id, column) {
                            values[column] = .some(previous)
                        } else if let row = reread[upsert.id], let current = row[column] {
                            values[column] = .some(current)
                        } else {
                            unresolved = true
                        }
                    }
                }
                if unresolved, let rereadFailure {
                    // The row could not be read again: it waits in the dead letters (a retry reads it).
                    work.deadLetters.append(DeadLetter(
                        entity: entityName, id: upsert.id, stage: "reread",
                        error: "an unchanged TOAST value could not be read again from the source: \(rereadFailure)",
                        lsn: upsert.lsn, firstFailedAt: now, lastFailedAt: now))
                    continue
                }
                if unresolved && reread[upsert.id] == nil && !missing.isEmpty && rowSource != nil {
                    // The row is gone: its delete follows in the stream.
                    continue
                }
                do {
                    var document = try entity.document(id: upsert.id, values: values, lsn: upsert.lsn, partition: upsert.partition)
                    chunk(&document)
                    // A chunk keeps its stored vector when a stored chunk of the document has its text
                    // and the model is the same; an empty slot is embedded by the next stage.
                    let previous = stored[upsert.id]
                    let keep = previous.flatMap { $0.model == embedder.model ? Set($0.chunkHashes) : nil } ?? []
                    let vectors: [[Float]?] = Array(repeating: nil, count: document.chunks.count)
                    work.upserts.append(EmbeddedDocument(document: document, vectors: vectors, model: embedder.model))
                    targets.append(upsert.generation)
                    if document.chunks.allSatisfy({ keep.contains($0.hash) }) {
                        counters.withLock { $0.embeddingsSkipped += 1 }
                    }
                    kept.append(keep)
                } catch {
                    work.deadLetters.append(DeadLetter(
                        entity: entityName, id: upsert.id, stage: "render", error: "\(error)", lsn: upsert.lsn,
                        firstFailedAt: now, lastFailedAt: now))
                }
            }
        }

        return (work, targets, kept)
    }

    /// Splits a long document into chunks (short content stays one chunk: the content).
    private func chunk(_ document: inout Document) {
        let pieces = chunker.chunks(of: document.content, tokens: { self.embedder.tokenCount(String($0)) })
        guard pieces.count > 1 else { return }
        document.chunks = pieces.map { piece in
            let text = String(piece)
            return DocumentChunk(text: text, hash: EntityMapping.hash(text))
        }
        counters.withLock { $0.chunkedDocuments += 1 }
    }

    /// The embedding stage of one batch: embeds every chunk without a vector — each distinct text
    /// once (a rebuild chunk's row and a stream change of the same row, or rows that render alike,
    /// share it), in calls of the embedder's batch size run concurrently — and builds the store
    /// batch. A text the embedder fails on (after its own retries) makes its documents dead letters;
    /// the rest of the batch is stored.
    private func embed(_ resolved: ResolvedBatch) async throws -> PreparedBatch {
        var work = resolved.work
        let now = Date().timeIntervalSince1970
        var texts: [String] = []
        var slot: [String: Int] = [:]
        for (index, upsert) in work.upserts.enumerated() {
            for chunk in upsert.document.chunks where !resolved.kept[index].contains(chunk.hash) {
                if slot[chunk.hash] == nil {
                    slot[chunk.hash] = texts.count
                    texts.append(chunk.text)
                }
            }
        }
        let outcomes = try await embedConcurrently(texts)
        var failed = Set<Int>()
        for index in work.upserts.indices {
            let document = work.upserts[index].document
            var failure: EmbeddingError?
            for (position, chunk) in document.chunks.enumerated() where !resolved.kept[index].contains(chunk.hash) {
                guard let outcome = slot[chunk.hash].map({ outcomes[$0] }) else { continue }
                switch outcome {
                case .success(let vector): work.upserts[index].vectors[position] = vector
                case .failure(let error): failure = failure ?? error
                }
            }
            if let failure {
                failed.insert(index)
                let chunkNote = document.chunks.count > 1 ? " (a chunk of \(document.chunks.count))" : ""
                work.deadLetters.append(DeadLetter(
                    entity: document.entity, id: document.id, stage: "embed", error: "\(failure)\(chunkNote)",
                    lsn: document.lsn, firstFailedAt: now, lastFailedAt: now))
            }
        }
        var general: [EmbeddedDocument] = []
        for (index, upsert) in work.upserts.enumerated() where !failed.contains(index) {
            if let generation = resolved.targets[index] {
                work.targetedUpserts[generation, default: []].append(upsert)
            } else {
                general.append(upsert)
            }
            work.resolved[upsert.document.entity, default: []].append(upsert.document.id)
        }
        work.upserts = general
        return PreparedBatch(
            sequence: resolved.sequence, work: work, checkpoint: resolved.checkpoint, commitTimes: resolved.commitTimes,
            chunkTokens: resolved.chunkTokens)
    }

    /// One outcome per text: calls of at most the embedder's batch size, all in flight at once (a
    /// provider paces them by its own budgets).
    private func embedConcurrently(_ texts: [String]) async throws -> [Result<[Float], EmbeddingError>] {
        guard !texts.isEmpty else { return [] }
        let size = max(1, embedder.maxBatchSize)
        let ranges = stride(from: 0, to: texts.count, by: size).map { $0..<min($0 + size, texts.count) }
        counters.withLock {
            $0.embeddingCalls += ranges.count
            $0.embeddedDocuments += texts.count
        }
        if ranges.count == 1 { return try await checkedEach(texts) }
        var outcomes = [Result<[Float], EmbeddingError>?](repeating: nil, count: texts.count)
        try await withThrowingTaskGroup(of: (Range<Int>, [Result<[Float], EmbeddingError>]).self) { group in
            for range in ranges {
                let slice = Array(texts[range])
                group.addTask { (range, try await self.checkedEach(slice)) }
            }
            for try await (range, results) in group {
                for (offset, result) in results.enumerated() { outcomes[range.lowerBound + offset] = result }
            }
        }
        return outcomes.map { $0 ?? .failure(EmbeddingError(.invalidResponse, "no outcome for a text")) }
    }

    /// ``Embedder/embedEach(_:)`` with its answer checked: one outcome per text, vectors of the
    /// embedder's length.
    private func checkedEach(_ texts: [String]) async throws -> [Result<[Float], EmbeddingError>] {
        let outcomes = try await embedder.embedEach(texts)
        guard outcomes.count == texts.count else {
            let error = EmbeddingError(.invalidResponse, "the embedder returned \(outcomes.count) outcomes for \(texts.count) texts")
            return Array(repeating: .failure(error), count: texts.count)
        }
        return outcomes.map { outcome in
            if case .success(let vector) = outcome, vector.count != embedder.dimensions {
                return .failure(EmbeddingError(
                    .invalidResponse, "the embedder returned a vector of \(vector.count) dimensions (expected \(embedder.dimensions))"))
            }
            return outcome
        }
    }

    /// Reads rows again for unchanged TOAST values; a connection problem is retried a few times
    /// (the row source reconnects), anything else is the caller's to record.
    private func rereadRows(_ entity: EntityMapping, ids: [String], from rowSource: RowSource) async throws -> [String: [String: String?]] {
        var delay = Duration.milliseconds(100)
        var attempt = 1
        while true {
            do {
                return try await rowSource.fetch(entity, ids: ids)
            } catch where ReplicationReader.isRetryable(error) && attempt < 4 {
                logger.warning("re-reading rows failed; retrying", metadata: ["entity": "\(entity.name)", "error": "\(error)", "attempt": "\(attempt)"])
                try await Task.sleep(for: delay)
                delay *= 2
                attempt += 1
            }
        }
    }

    /// Embeds the chunks of upserts the store found no stored vector for (their stored document went
    /// away after resolve looked); a document that cannot be embedded becomes a dead letter.
    private func embedMissing(_ missing: Set<DocumentKey>, in work: inout IndexBatch) async throws {
        let now = Date().timeIntervalSince1970
        var texts: [String] = []
        var slot: [String: Int] = [:]
        let all = work.upserts + work.targetedUpserts.values.joined()
        for upsert in all where missing.contains(upsert.document.key) {
            for (position, chunk) in upsert.document.chunks.enumerated() where upsert.vectors[position] == nil && slot[chunk.hash] == nil {
                slot[chunk.hash] = texts.count
                texts.append(chunk.text)
            }
        }
        let outcomes = try await embedConcurrently(texts)
        var failed: [DocumentKey: (error: EmbeddingError, lsn: LSN)] = [:]
        func fill(_ upserts: inout [EmbeddedDocument]) {
            for index in upserts.indices where missing.contains(upserts[index].document.key) {
                let document = upserts[index].document
                for (position, chunk) in document.chunks.enumerated() where upserts[index].vectors[position] == nil {
                    guard let outcome = slot[chunk.hash].map({ outcomes[$0] }) else { continue }
                    switch outcome {
                    case .success(let vector): upserts[index].vectors[position] = vector
                    case .failure(let error): failed[document.key] = (error, document.lsn)
                    }
                }
            }
            upserts.removeAll { failed[$0.document.key] != nil && !$0.isComplete }
        }
        fill(&work.upserts)
        for generation in work.targetedUpserts.keys.sorted() {
            var upserts = work.targetedUpserts[generation] ?? []
            fill(&upserts)
            work.targetedUpserts[generation] = upserts
        }
        for (key, failure) in failed {
            work.resolved[key.entity]?.removeAll { $0 == key.id }
            work.deadLetters.append(DeadLetter(
                entity: key.entity, id: key.id, stage: "embed", error: "\(failure.error)", lsn: failure.lsn,
                firstFailedAt: now, lastFailedAt: now))
        }
    }
}
