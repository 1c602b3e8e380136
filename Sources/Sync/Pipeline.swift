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
/// Calls must not overlap: one consumer feeds the pipeline (the reader's handler, or a loader).
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

        public init() {}
    }

    /// Counters for metrics, tests and benchmarks.
    public struct Statistics: Sendable, Equatable {
        public var batches = 0
        public var upserts = 0
        public var deletes = 0
        public var truncates = 0
        /// Calls to the embedder and the documents they carried.
        public var embeddingCalls = 0
        public var embeddedDocuments = 0
        /// Documents whose content and model were unchanged, so no embedding was needed.
        public var embeddingsSkipped = 0
        public var deadLetters = 0
        public var toastRereads = 0
        public var checkpoint: LSN?
    }

    public let configuration: Configuration
    private let entitiesByTable: [TableName: [EntityMapping]]
    private let entitiesByName: [String: EntityMapping]
    private let embedder: any Embedder
    private let store: any IndexStore
    private let rowSource: RowSource?
    private let logger: Logger
    private let pending = Mutex(PendingBatch())
    private let counters = Mutex(Statistics())

    public init(
        configuration: Configuration, entities: [EntityMapping], embedder: any Embedder, store: any IndexStore,
        rowSource: RowSource?, logger: Logger
    ) {
        self.configuration = configuration
        self.entitiesByTable = Dictionary(grouping: entities, by: \.table)
        self.entitiesByName = Dictionary(entities.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.embedder = embedder
        self.store = store
        self.rowSource = rowSource
        self.logger = logger
    }

    public var statistics: Statistics { counters.withLock { $0 } }

    // MARK: - Input

    /// Feeds events from the replication reader, in order. An empty array means "no more input right
    /// now": the partial batch is flushed. Returns the checkpoint made durable, if any.
    public func handle(_ events: [CaptureEvent]) async throws -> LSN? {
        if events.isEmpty { return try await flush() }
        pending.withLock { batch in
            for event in events {
                switch event {
                case .transaction(let piece):
                    for change in piece.changes { add(change, to: &batch) }
                    if piece.isFinal { batch.checkpoint = max(batch.checkpoint ?? .zero, piece.endLSN) }
                case .message(let message):
                    batch.checkpoint = max(batch.checkpoint ?? .zero, message.lsn)
                }
            }
        }
        return try await flushIfFull()
    }

    /// Feeds rows read outside replication (initial load, retries). `checkpoint`, when given, is
    /// recorded with the batch that contains the last of these changes.
    public func ingest(_ changes: [RowChange], checkpoint: LSN? = nil) async throws {
        pending.withLock { batch in
            for change in changes { add(change, to: &batch) }
            if let checkpoint { batch.checkpoint = max(batch.checkpoint ?? .zero, checkpoint) }
        }
        _ = try await flushIfFull()
    }

    private func add(_ change: RowChange, to batch: inout PendingBatch) {
        guard let mappings = entitiesByTable[change.table] else { return }
        for entity in mappings {
            switch change.operation {
            case .truncate:
                batch.truncate(entity.name)
            case .delete:
                batch.delete(.init(entity: entity.name, id: id(of: change, key: change.key, entity: entity)), lsn: change.commitLSN)
            case .insert, .update:
                guard let newValues = change.newValues else { continue }
                if let oldKey = change.oldKey {
                    batch.delete(.init(entity: entity.name, id: id(of: change, key: oldKey, entity: entity)), lsn: change.commitLSN)
                }
                var values: [String: ColumnValue] = [:]
                for column in entity.selectColumns {
                    if let index = change.schema.index(of: column), index < newValues.count {
                        values[column] = newValues[index]
                    }
                }
                batch.upsert(.init(entity: entity.name, id: id(of: change, key: change.key, entity: entity)), values: values, lsn: change.commitLSN)
            }
        }
    }

    /// The document id of a change: from the entity's key columns when the change carries them.
    private func id(of change: RowChange, key: [ColumnValue], entity: EntityMapping) -> String {
        if change.schema.keyColumns == entity.keyColumns { return DocumentID.make(key.map(\.text)) }
        // The stream's key differs from the entity's (e.g. REPLICA IDENTITY FULL): pick by name.
        let source = change.newValues ?? change.oldValues ?? []
        let texts = entity.keyColumns.map { column -> String? in
            guard let index = change.schema.index(of: column), index < source.count else { return nil }
            return source[index].text
        }
        return DocumentID.make(texts)
    }

    // MARK: - Flushing

    private func flushIfFull() async throws -> LSN? {
        let full = pending.withLock { batch in
            batch.changeCount >= configuration.batchSize || batch.bytes >= configuration.batchBytes
                || (batch.startedAt.map { ContinuousClock.now - $0 >= configuration.batchDelay } ?? false)
        }
        return full ? try await flush() : nil
    }

    /// Applies whatever is pending now. Returns the checkpoint recorded, if the batch had one.
    @discardableResult
    public func flush() async throws -> LSN? {
        let batch = pending.withLock { current -> PendingBatch in
            defer { current = PendingBatch() }
            return current
        }
        guard !batch.isEmpty else { return nil }
        let work = try await prepare(batch)
        var state: [String: String] = [:]
        if let checkpoint = batch.checkpoint { state["checkpoint"] = checkpoint.description }
        try await applyWithRetry(work, state: state)
        counters.withLock {
            $0.batches += 1
            $0.upserts += work.upserts.count
            $0.deletes += work.deletes.values.reduce(0) { $0 + $1.count }
            $0.truncates += work.truncates.count
            $0.deadLetters += work.deadLetters.count
            if let checkpoint = batch.checkpoint { $0.checkpoint = checkpoint }
        }
        return batch.checkpoint
    }

    private func applyWithRetry(_ work: IndexBatch, state: [String: String]) async throws {
        var delay = Duration.milliseconds(100)
        for attempt in 1...max(1, configuration.applyAttempts) {
            do {
                try await store.apply(work, state: state)
                return
            } catch {
                if attempt == configuration.applyAttempts {
                    throw SyncError(.apply, "writing to the index failed \(attempt) times; stopping so that a restart resumes from the last checkpoint", underlying: error)
                }
                logger.warning("index write failed; retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try await Task.sleep(for: delay)
                delay *= 2
            }
        }
    }

    /// Renders, looks up stored state, embeds what changed, and builds the store batch.
    private func prepare(_ batch: PendingBatch) async throws -> IndexBatch {
        var work = IndexBatch()
        work.truncates = batch.truncates
        let now = Date().timeIntervalSince1970
        var toEmbed: [(document: Document, index: Int)] = []

        let byEntity = Dictionary(grouping: batch.entries, by: { $0.key.entity })
        for (entityName, entries) in byEntity.sorted(by: { $0.key < $1.key }) {
            guard let entity = entitiesByName[entityName] else { continue }
            var upserts: [(id: String, values: [String: ColumnValue], lsn: LSN)] = []
            for (key, entry) in entries {
                switch entry.operation {
                case .delete:
                    work.deletes[entityName, default: []].append(key.id)
                    work.resolved[entityName, default: []].append(key.id)
                case .upsert(let values):
                    upserts.append((key.id, values, entry.lsn))
                }
            }
            guard !upserts.isEmpty else { continue }
            let stored = try await store.storedStates(entity: entityName, ids: upserts.map(\.id))

            // Unchanged TOAST values: take the stored source value, else re-read the row.
            var reread: [String: [String: String?]] = [:]
            let missing = upserts.filter { upsert in
                upsert.values.contains { column, value in
                    value == .unchangedToast && stored[upsert.id]?.sourceValues[column] == nil
                }
            }.map(\.id)
            if !missing.isEmpty, let rowSource {
                reread = try await rowSource.fetch(entity, ids: missing)
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
                        if let previous = stored[upsert.id]?.sourceValues[column] {
                            values[column] = .some(previous)
                        } else if let row = reread[upsert.id], let current = row[column] {
                            values[column] = .some(current)
                        } else {
                            unresolved = true
                        }
                    }
                }
                if unresolved && reread[upsert.id] == nil && !missing.isEmpty && rowSource != nil {
                    // The row is gone: its delete follows in the stream.
                    continue
                }
                do {
                    let document = try entity.document(id: upsert.id, values: values, lsn: upsert.lsn)
                    let previous = stored[upsert.id]
                    let needsVector = previous == nil || previous?.contentHash != document.contentHash || previous?.model != embedder.model
                    work.upserts.append(EmbeddedDocument(document: document, vector: nil, model: embedder.model))
                    if needsVector {
                        toEmbed.append((document, work.upserts.count - 1))
                    } else {
                        counters.withLock { $0.embeddingsSkipped += 1 }
                    }
                } catch {
                    work.deadLetters.append(DeadLetter(
                        entity: entityName, id: upsert.id, stage: "render", error: "\(error)", lsn: upsert.lsn,
                        firstFailedAt: now, lastFailedAt: now))
                }
            }
        }

        // Embed in provider-sized chunks; a failing chunk is retried document by document so that one
        // bad row does not fail its neighbours.
        var failed = Set<Int>()
        let chunkSize = max(1, embedder.maxBatchSize)
        var start = 0
        while start < toEmbed.count {
            let chunk = Array(toEmbed[start..<min(start + chunkSize, toEmbed.count)])
            start += chunkSize
            do {
                let vectors = try await embedChecked(chunk.map(\.document.content))
                for (item, vector) in zip(chunk, vectors) { work.upserts[item.index].vector = vector }
            } catch {
                for item in chunk {
                    do {
                        let vector = try await embedChecked([item.document.content])
                        work.upserts[item.index].vector = vector[0]
                    } catch {
                        failed.insert(item.index)
                        work.deadLetters.append(DeadLetter(
                            entity: item.document.entity, id: item.document.id, stage: "embed", error: "\(error)",
                            lsn: item.document.lsn, firstFailedAt: now, lastFailedAt: now))
                    }
                }
            }
        }
        if !failed.isEmpty {
            work.upserts = work.upserts.enumerated().filter { !failed.contains($0.offset) }.map(\.element)
        }
        for upsert in work.upserts {
            work.resolved[upsert.document.entity, default: []].append(upsert.document.id)
        }
        return work
    }

    private func embedChecked(_ texts: [String]) async throws -> [[Float]] {
        counters.withLock {
            $0.embeddingCalls += 1
            $0.embeddedDocuments += texts.count
        }
        let vectors = try await embedder.embed(texts)
        guard vectors.count == texts.count, vectors.allSatisfy({ $0.count == embedder.dimensions }) else {
            throw IndexingError(.embedding, "the embedder returned \(vectors.count) vectors for \(texts.count) texts, or vectors of the wrong length (expected \(embedder.dimensions))")
        }
        return vectors
    }
}
