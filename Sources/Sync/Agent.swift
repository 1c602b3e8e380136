import Embedding
import Capture
import Foundation
import Indexing
import Logging
import Postgres
import ServiceLifecycle
import Synchronization

/// The long-running agent: prepares the source (publication, slot, initial load), then streams
/// committed changes through the pipeline into the index until shut down.
///
/// Runs as a `Service`: on graceful shutdown (SIGTERM, SIGINT) it stops reading, applies what it has
/// read, records the checkpoint, confirms the slot, and returns.
public final class Agent: Service, Sendable {
    public let configuration: AgentConfiguration
    private let logger: Logger
    private let progress = Mutex<Progress>(Progress())
    private let lastActivity = Mutex(ContinuousClock.now)
    /// Backfill jobs whose worker ended, for the scheduler to reap.
    private let finishedWorkers = Mutex<[String]>([])
    /// Set on graceful shutdown: the reader's last calls flush, so the final status update confirms
    /// everything applied.
    private let draining = Mutex(false)
    /// Leaf partitions of the partitioned entity tables, as last read from the catalog.
    private let partitionMap = Mutex(PartitionMap())

    /// What the agent is doing, for status output.
    public struct Progress: Sendable {
        public var phase = "starting"
        public var checkpoint: LSN?
    }

    /// The embedder given to ``init(configuration:logger:embedder:)``; otherwise the configured one
    /// is made when the agent starts (a missing model file stops start-up with the fix).
    private let embedderOverride: (any Embedder)?
    private let pipelineStatistics = Mutex<Pipeline?>(nil)
    /// The reader of the current run, so the pipeline can confirm durable positions to it.
    private let currentReader = Mutex<ReplicationReader?>(nil)

    /// Told about every batch the pipeline applies (the metrics endpoint counts changes with it).
    private let observer: (@Sendable (AppliedBatchReport) -> Void)?
    private let runtimeState = Mutex<Runtime?>(nil)

    /// What the running agent works with, for the HTTP API: available once the store is open and
    /// the entities are resolved, `nil` before.
    public struct Runtime: Sendable {
        public var store: any IndexStore
        public var embedder: any Embedder
        public var entities: [EntityMapping]
    }

    /// - Parameters:
    ///   - embedder: overrides the configured embedder (tests wrap one to count calls).
    ///   - observer: called after each batch the pipeline applies, on its apply task (keep it quick).
    public init(
        configuration: AgentConfiguration, logger: Logger, embedder: (any Embedder)? = nil,
        observer: (@Sendable (AppliedBatchReport) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.embedderOverride = embedder
        self.observer = observer
    }

    /// The store, embedder and entities of the running agent; `nil` until they are ready.
    public var runtime: Runtime? { runtimeState.withLock { $0 } }

    /// The pipeline's counters (zero before streaming starts).
    public var statistics: Pipeline.Statistics {
        pipelineStatistics.withLock { $0?.statistics } ?? Pipeline.Statistics()
    }

    public var currentProgress: Progress { progress.withLock { $0 } }

    /// Opens the configured index store.
    public static func openStore(_ configuration: AgentConfiguration, logger: Logger) async throws -> any IndexStore {
        switch configuration.index {
        case .sqlite(let path):
            return try SQLiteIndexStore(configuration: .init(path: path), logger: logger)
        case .pgvector(let url, let schema):
            return try await PgVectorIndexStore.open(configuration: .init(url: url, schema: schema), logger: logger)
        }
    }

    /// The configured embedder.
    ///
    /// - Throws: ``SyncError`` `configuration` when it cannot be made (a model file missing, an
    ///   unknown tokenizer type), with the fix.
    public static func makeEmbedder(_ configuration: AgentConfiguration, logger: Logger) throws -> any Embedder {
        do {
            switch configuration.embedder.kind {
            case .builtin:
                return BuiltinEmbedder()
            case .static:
                return try StaticEmbedder(configuration: configuration.embedder.staticModel, logger: logger)
            case .openai:
                guard let openai = configuration.embedder.openai else {
                    throw SyncError(.configuration, "embedder.url and embedder.model are needed for embedder.kind openai")
                }
                return try OpenAIEmbedder(configuration: openai, logger: logger)
            }
        } catch let error as SyncError {
            throw error
        } catch let error as EmbeddingError {
            // Its message says what to do already; no second copy as the cause.
            throw SyncError(.configuration, "embedder: \(error.message)")
        } catch {
            throw SyncError(.configuration, "embedder: \(error)", underlying: error)
        }
    }

    /// The active (queued, running or paused) rebuild of `entity`, if any: two rebuilds of one
    /// entity never run at once (each would drop the other's generation), so a second one waits.
    public static func activeRebuild(of entity: String, in store: any IndexStore) async throws -> JobRecord? {
        try await store.activeJobs().first { $0.entity == entity && $0.kind == .rebuild }
    }

    /// Reads the catalog and resolves the configured entities against it.
    public static func resolveEntities(_ configuration: AgentConfiguration, on connection: PostgresConnection, logger: Logger) async throws -> [EntityMapping] {
        let schemas = Array(Set(configuration.entities.map(\.table.schema))).sorted()
        let catalog = try await CatalogDiscovery(configuration: .init(schemas: schemas), logger: logger).discover(on: connection)
        return try EntityResolver.resolve(configuration.entities, catalog: catalog)
    }

    public func run() async throws {
        let source = configuration.source
        logger.info("starting", metadata: ["source": "\(source.redactedURL)", "slot.name": "\(source.slot)"])
        let connection = try await PostgresConnection.connect(source.url, logger: logger)
        do {
            try await run(connection: connection)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    private func run(connection: PostgresConnection) async throws {
        let source = configuration.source
        let embedder = try embedderOverride ?? Self.makeEmbedder(configuration, logger: logger)
        let entities = try await Self.resolveEntities(configuration, on: connection, logger: logger)
        let store = try await Self.openStore(configuration, logger: logger)
        runtimeState.withLock { $0 = Runtime(store: store, embedder: embedder, entities: entities) }
        let rowSource = RowSource(url: source.url, logger: logger)
        var pipelineConfiguration = Pipeline.Configuration()
        pipelineConfiguration.batchSize = configuration.pipeline.batchSize
        pipelineConfiguration.batchBytes = configuration.pipeline.batchBytes
        pipelineConfiguration.batchDelay = configuration.pipeline.batchDelay
        pipelineConfiguration.embeddingConcurrency = configuration.embeddingConcurrency
        pipelineConfiguration.chunking = TextChunker.Configuration(
            maxTokens: configuration.chunking.maxTokens, overlapTokens: configuration.chunking.overlapTokens)
        let coordinator = BackfillCoordinator()
        let pipeline = Pipeline(
            configuration: pipelineConfiguration, entities: entities, embedder: embedder, store: store,
            rowSource: rowSource, logger: logger, coordinator: coordinator,
            onDurable: { [weak self] checkpoint in
                self?.currentReader.withLock { $0 }?.confirm(checkpoint)
                self?.progress.withLock { $0.checkpoint = checkpoint }
            }, observer: observer)
        pipelineStatistics.withLock { $0 = pipeline }
        let partitions = try await PartitionMap.load(Array(Set(entities.map(\.table))).sorted(), on: connection)
        partitionMap.withLock { $0 = partitions }
        pipeline.updatePartitions(partitions)
        rowSource.setPartitionedTables(Set(partitions.leaves.keys))
        try await pipeline.run {
            try await stream(
                connection: connection, entities: entities, store: store, pipeline: pipeline, coordinator: coordinator,
                embedder: embedder)
        }
        await rowSource.close()
        logger.info("stopped", metadata: ["lsn.checkpoint": "\(progress.withLock { $0.checkpoint?.description ?? "none" })"])
    }

    private func stream(
        connection: PostgresConnection, entities: [EntityMapping], store: any IndexStore, pipeline: Pipeline,
        coordinator: BackfillCoordinator, embedder: any Embedder
    ) async throws {
        let source = configuration.source

        let setup = ReplicationSetup(
            configuration: .init(slotName: source.slot, publicationName: source.publication, tables: Array(Set(entities.map(\.table))).sorted()),
            logger: logger)
        let unpublished = try await setup.ensurePublication(on: connection)
        let start = try await prepareSlot(setup: setup, connection: connection, entities: entities, store: store)
        try await reconcileConfiguration(entities: entities, store: store)
        try await reconcileSource(entities: entities, unpublished: unpublished, store: store, connection: connection)

        var readerConfiguration = ReplicationReader.Configuration(
            connectionString: source.url, slotName: source.slot, publicationNames: [source.publication])
        readerConfiguration.startLSN = start
        readerConfiguration.assembler.keyColumns = Dictionary(
            entities.map { ($0.table, $0.keyColumns) }, uniquingKeysWith: { first, _ in first })
        let reader = ReplicationReader(configuration: readerConfiguration, logger: logger)
        currentReader.withLock { $0 = reader }
        defer { currentReader.withLock { $0 = nil } }
        progress.withLock {
            $0.phase = "streaming"
            $0.checkpoint = start
        }
        logger.info("streaming", metadata: ["lsn.start": "\(start)", "entities": "\(entities.map(\.name))"])

        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await reader.run { events in
                        if !events.isEmpty { self.lastActivity.withLock { $0 = .now } }
                        try await pipeline.handle(events)
                        // Shutting down: make what was read durable before the reader's final
                        // status update, so the server is told the last position.
                        if events.isEmpty && self.draining.withLock({ $0 }) { try await pipeline.flush() }
                    }
                }
                group.addTask {
                    try await self.heartbeat()
                }
                group.addTask {
                    try await self.watchSource(setup: setup, connection: connection, entities: entities, store: store, pipeline: pipeline)
                }
                group.addTask {
                    try await self.scheduleBackfills(entities: entities, store: store, coordinator: coordinator, embedder: embedder)
                }
                group.addTask {
                    // Queued and scheduled validations and repairs, one at a time (Docs/validation.md).
                    try await ValidationRunner(agent: self.configuration, entities: entities, store: store, logger: self.logger).run()
                }
                // The reader returns after stop() or fails; heartbeat and backfills end with it (an
                // interrupted job resumes from its last durable chunk on the next start).
                _ = try await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: draining the in-flight batch")
            self.draining.withLock { $0 = true }
            reader.stop()
        }
    }

    /// Makes sure the slot exists and that nothing lies between the index's checkpoint and the slot;
    /// queues a backfill for every entity not loaded since this slot was created. Returns where to
    /// stream from.
    ///
    /// A *gap* — the slot missing or invalidated, or the slot confirmed beyond the index's checkpoint
    /// (an index restored from a backup, an index file that lost writes, another index that used the
    /// slot) — means changes were consumed that this index never applied. It is healed, never resumed
    /// over: a new slot, every unfinished job cancelled (its rows before the cursor may be stale), and
    /// a full backfill with a sweep of every entity. The slot never confirms more than the index
    /// recorded (``ReplicationReader``), so a clean restart is never mistaken for a gap.
    ///
    /// Streaming starts at once: a new database's existing rows arrive through watermarked backfill
    /// chunks while live changes already flow.
    private func prepareSlot(
        setup: ReplicationSetup, connection: PostgresConnection, entities: [EntityMapping], store: any IndexStore
    ) async throws -> LSN {
        let slotName = configuration.source.slot
        let slotRows = try await connection.query(
            "SELECT confirmed_flush_lsn::text, wal_status, database = current_database(), database FROM pg_replication_slots WHERE slot_name = $1",
            [slotName])
        if let row = slotRows.rows.first, row[2] != "t" {
            throw SyncError(
                .configuration,
                "source.slot: a replication slot named \"\(slotName)\" already belongs to database \(row[3] ?? "(none)"); slot names are shared by the whole server, so choose another source.slot")
        }
        var checkpoint = try await store.state("checkpoint").flatMap { LSN($0) }
        var incarnation = try await store.state("slot.incarnation")
        var gap: String?
        if let row = slotRows.rows.first {
            let confirmed = row[0].flatMap { LSN($0) }
            if row[1] == "lost" {
                gap = "the replication slot was invalidated (its WAL was removed)"
            } else if incarnation == nil || checkpoint == nil {
                // A slot this index knows nothing about (e.g. a new index file): start over from a new one.
                if checkpoint != nil || incarnation != nil { gap = "the index has no record of this replication slot" }
            } else if let confirmed, let known = checkpoint, confirmed > known {
                gap = "the replication slot confirmed \(confirmed), beyond the index's checkpoint \(known) (an index restored from a backup, or one that lost writes)"
            }
            if gap != nil || incarnation == nil || checkpoint == nil { try await setup.dropSlot(on: connection) }
        } else if checkpoint != nil {
            gap = "the replication slot is gone"
        }
        if gap != nil || incarnation == nil || checkpoint == nil {
            if let gap {
                logger.warning(
                    "gap between the index and the replication slot: \(gap); re-creating the slot and backfilling every entity (with a sweep)",
                    metadata: ["slot.name": "\(slotName)", "lsn.checkpoint": "\(checkpoint?.description ?? "none")"])
                try await supersedeJobs(store: store, entities: entities, reason: "superseded: \(gap); every entity is backfilled again")
            }
            let slot = try await setup.ensureSlot(on: connection)
            let created = slot.confirmedFlush
            checkpoint = created
            incarnation = created.description
            try await store.apply(IndexBatch(), state: ["checkpoint": created.description, "slot.incarnation": created.description])
        }
        guard let start = checkpoint, let incarnation else {
            throw SyncError(.initialLoad, "no start position for the replication slot")
        }
        // Queue a full backfill for each entity not loaded under this slot (and with none under way).
        let jobs = try await store.activeJobs()
        for entity in entities {
            let loaded = try await store.state("loaded.\(entity.name)") == incarnation
            let underway = jobs.contains { $0.entity == entity.name && $0.kind == .backfill && $0.loadsIncarnation == incarnation }
            if !loaded && !underway {
                var job = JobRecord(id: JobRecord.newID(), entity: entity.name, kind: .backfill)
                job.loadsIncarnation = incarnation
                try await store.saveJob(job)
                logger.info("backfill queued", metadata: ["job.id": "\(job.id)", "entity": "\(entity.name)"])
            }
        }
        return start
    }

    /// Queues a full backfill (with a sweep) of `entity` unless one that has not started yet is
    /// queued: a job's sweep position and chunks are taken when it starts, so a job that starts after
    /// a change sees it. A job already under way may be past the keys concerned (its cursor) or have
    /// taken its sweep position before the change, so it never counts.
    private func queueFullBackfill(_ entity: String, store: any IndexStore, reason: String) async throws {
        let pending = try await store.activeJobs().first {
            $0.entity == entity && $0.kind == .backfill && $0.status == .queued && $0.sweepBefore == nil && $0.cursor == nil
        }
        if let pending {
            logger.warning("\(reason); the queued backfill covers it", metadata: ["job.id": "\(pending.id)", "entity": "\(entity)"])
            return
        }
        let job = JobRecord(id: JobRecord.newID(), entity: entity, kind: .backfill)
        try await store.saveJob(job)
        logger.warning("\(reason); backfilling the entity", metadata: ["job.id": "\(job.id)", "entity": "\(entity)"])
    }

    /// What identifies an entity's configuration: table, key columns, template, metadata columns and
    /// how content is chunked.
    func configurationFingerprint(_ mapping: EntityMapping, _ entity: AgentConfiguration.Entity?) -> String {
        let chunking = configuration.chunking
        let text = [
            mapping.table.quoted, mapping.keyColumns.joined(separator: ","), entity?.content ?? "",
            mapping.metadataColumns.joined(separator: ","), "chunks:\(chunking.maxTokens)/\(chunking.overlapTokens)",
        ].joined(separator: "\u{1F}")
        return EntityMapping.hash(text)
    }

    /// Compares each entity's configuration (table, key, template, metadata) with the one its
    /// documents were made with, recorded in the index. A different one is healed with a full
    /// backfill of the entity, whose chunks render every row anew (unchanged content costs no
    /// embedding) and whose sweep removes documents under keys that no longer exist.
    ///
    /// An entity that was configured before and is no longer has its recorded state cleared, so that
    /// configuring it again loads it fully (the stream did not follow it meanwhile).
    private func reconcileConfiguration(entities: [EntityMapping], store: any IndexStore) async throws {
        let configured = Dictionary(configuration.entities.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var state: [String: String] = [:]
        for entity in entities {
            let key = "config.\(entity.name)"
            let current = configurationFingerprint(entity, configured[entity.name])
            let recorded = try await store.state(key)
            if let recorded, !recorded.isEmpty, recorded != current {
                try await queueFullBackfill(entity.name, store: store, reason: "the configuration of entity \(entity.name) changed")
            }
            if recorded != current { state[key] = current }
        }
        let names = entities.map(\.name).sorted()
        let before = try await store.state("entities").map { $0.split(separator: ",").map(String.init) } ?? []
        for removed in before where !names.contains(removed) {
            // Nothing followed the entity meanwhile: forget that it was ever loaded.
            for key in ["loaded", "config", "source", "partitions"] { state["\(key).\(removed)"] = "" }
            logger.info("entity no longer configured; its load is forgotten (configuring it again loads it fully)", metadata: ["entity": "\(removed)"])
        }
        state["entities"] = names.joined(separator: ",")
        try await store.apply(IndexBatch(), state: state)
    }

    /// Compares each entity table's identity (``TableIdentity``: OID, storage, partitions and their
    /// attachments) with the one recorded in the index, and heals any difference — and a table that
    /// was missing from the publication (`unpublished`) — with a full backfill of the entity. None of
    /// these changes leaves a trace in the stream: a partition attached or detached, a table swapped
    /// for another of the same name, a rewriting `ALTER TABLE`, a table dropped from the publication.
    private func reconcileSource(
        entities: [EntityMapping], unpublished: [TableName], store: any IndexStore, connection: PostgresConnection
    ) async throws {
        let identities = try await TableIdentity.load(Array(Set(entities.map(\.table))).sorted(), on: connection)
        for entity in entities {
            let key = "source.\(entity.name)"
            let current = identities[entity.table]?.fingerprint ?? ""
            let recorded = try await store.state(key)
            var reasons: [String] = []
            if let recorded, !recorded.isEmpty, recorded != current {
                if let earlier = TableIdentity(fingerprint: recorded), let now = identities[entity.table] {
                    reasons += now.changes(since: earlier)
                } else {
                    reasons.append("the table changed")
                }
            }
            if unpublished.contains(entity.table) {
                // A first start creates the publication; the initial load covers that.
                let loaded = try await store.state("loaded.\(entity.name)") ?? ""
                let known = !(recorded ?? "").isEmpty || !loaded.isEmpty
                if known { reasons.append("the table was not in the publication (added again)") }
            }
            if !reasons.isEmpty {
                try await queueFullBackfill(
                    entity.name, store: store, reason: "\(entity.table): \(reasons.joined(separator: "; ")) — no change in the stream tells")
            }
            if recorded != current { try await store.apply(IndexBatch(), state: [key: current]) }
        }
    }

    /// Reads the source's catalog again every `partition_check_interval`: the partition trees (for
    /// the pipeline's mapping of partitions to entities), the publication (a table dropped from it
    /// is added again) and each entity table's identity, and reconciles them.
    private func watchSource(
        setup: ReplicationSetup, connection: PostgresConnection, entities: [EntityMapping], store: any IndexStore, pipeline: Pipeline
    ) async throws {
        let tables = Array(Set(entities.map(\.table))).sorted()
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.source.partitionCheckInterval)
            } catch {
                return
            }
            do {
                let map = try await PartitionMap.load(tables, on: connection)
                let changed = partitionMap.withLock { known -> Bool in
                    defer { known = map }
                    return known != map
                }
                if changed { pipeline.updatePartitions(map) }
                let unpublished = try await setup.ensurePublication(on: connection)
                try await reconcileSource(entities: entities, unpublished: unpublished, store: store, connection: connection)
            } catch where !Task.isCancelled {
                logger.warning("cannot read the catalog of the entity tables; will retry", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Cancels every unfinished job (a gap makes their progress meaningless); a rebuild's half-built
    /// generation is dropped, the live one keeps answering.
    private func supersedeJobs(store: any IndexStore, entities: [EntityMapping], reason: String) async throws {
        for var job in try await store.activeJobs() {
            job.status = .cancelled
            job.lastError = reason
            job.finishedAt = Date().timeIntervalSince1970
            var batch = IndexBatch()
            if job.kind == .rebuild, let building = job.generation {
                let active = try await store.activeGeneration(job.entity)
                let keep = try await store.generations(job.entity).filter { $0 != building }
                batch.generationChanges[job.entity] = GenerationChange(active: active, maintained: keep.isEmpty ? [active] : keep)
            }
            try await store.apply(batch, state: [:])
            try await store.saveJob(job)
            logger.warning("job cancelled", metadata: ["job.id": "\(job.id)", "entity": "\(job.entity)", "reason": "\(reason)"])
        }
    }

    /// Starts queued and interrupted backfill jobs, at most `backfill.max_concurrent` at a time, and
    /// picks up jobs queued later (by `tidemark backfill`).
    private func scheduleBackfills(
        entities: [EntityMapping], store: any IndexStore, coordinator: BackfillCoordinator, embedder: any Embedder
    ) async throws {
        let byName = Dictionary(entities.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        var workerConfiguration = BackfillWorker.Configuration()
        workerConfiguration.targetChunkDuration = configuration.backfill.chunkDuration
        workerConfiguration.maximumChunkBytes = configuration.backfill.maxChunkBytes
        let limit = max(1, configuration.backfill.maxConcurrent)
        try await withThrowingDiscardingTaskGroup { group in
            // Entities loaded before this start get their search index if they have none yet (an
            // index store that needs one, created after an upgrade or lost); the others get it when
            // their load completes.
            group.addTask {
                for entity in entities {
                    guard let incarnation = try? await store.state("slot.incarnation"),
                        (try? await store.state("loaded.\(entity.name)")) == incarnation
                    else { continue }
                    await self.ensureSearchIndex(entity.name, store: store, dimensions: embedder.dimensions)
                }
            }
            var running = Set<String>()
            var retryAfter: [String: ContinuousClock.Instant] = [:]
            while !Task.isCancelled {
                for finished in self.finishedWorkers.withLock({ list in defer { list.removeAll() }; return list }) {
                    running.remove(finished)
                    retryAfter[finished] = .now + .seconds(2)
                }
                let active = try await store.activeJobs()
                // Whole-table jobs (backfills and rebuilds) of one entity run one at a time: two
                // rebuilds would drop each other's generation, and a backfill's sweep at its end
                // would remove what a rebuild running beside it had just written to its generation
                // (found by the differential test). The later one waits; `ids` jobs run beside them.
                var wholeTable = Set(active.filter { running.contains($0.id) && $0.kind != .ids }.map(\.entity))
                let candidates = active.reversed().filter { !running.contains($0.id) }
                for job in candidates where running.count < limit {
                    if let wait = retryAfter[job.id], wait > .now { continue }
                    if job.kind != .ids {
                        guard !wholeTable.contains(job.entity) else { continue }
                        wholeTable.insert(job.entity)
                    }
                    guard let entity = byName[job.entity] else {
                        var failed = job
                        failed.status = .failed
                        failed.lastError = "entity \(job.entity) is not in the configuration"
                        failed.finishedAt = Date().timeIntervalSince1970
                        try await store.saveJob(failed)
                        continue
                    }
                    running.insert(job.id)
                    var worker = BackfillWorker(
                        configuration: workerConfiguration, entity: entity, sourceURL: configuration.source.url, store: store,
                        coordinator: coordinator, runID: runID, logger: logger)
                    worker.partitioned = self.partitionMap.withLock { $0.isPartitioned(entity.table) }
                    group.addTask {
                        defer { self.finishedWorkers.withLock { $0.append(job.id) } }
                        do {
                            // A load's `loaded.<entity>` is recorded by the worker in the transaction that
                            // completes the job, so a crash cannot separate the two.
                            let finished = try await worker.run(job)
                            if finished.status == .completed && finished.kind != .ids {
                                await self.ensureSearchIndex(finished.entity, store: store, dimensions: embedder.dimensions)
                            }
                        } catch is CancellationError {
                        } catch {
                            if Task.isCancelled { return }
                            var failed = try await store.job(job.id) ?? job
                            failed.lastError = "\(error)"
                            if ReplicationReader.isRetryable(error) {
                                // The source went away for a moment: the job resumes from its cursor.
                                failed.status = .queued
                                self.logger.warning("backfill interrupted; will resume", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
                            } else {
                                failed.status = .failed
                                failed.finishedAt = Date().timeIntervalSince1970
                                self.logger.error("backfill failed", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
                            }
                            try? await store.saveJob(failed)
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            group.cancelAll()
        }
    }

    /// Builds the store's search index of an entity (once its rows are loaded: much faster than
    /// growing it row by row during the load). A failure is logged; searches still work, slower.
    private func ensureSearchIndex(_ entity: String, store: any IndexStore, dimensions: Int) async {
        do {
            try await store.ensureSearchIndex(entity: entity, dimensions: dimensions)
        } catch where !Task.isCancelled {
            logger.warning("cannot build the search index; searches scan every vector until it exists", metadata: ["entity": "\(entity)", "error": "\(error)"])
        } catch {}
    }

    /// While nothing arrives, writes a logical message now and then so the checkpoint and the slot
    /// keep advancing on a database whose WAL is all about other tables or databases.
    ///
    /// Runs on a connection of its own (`application_name` `tidemark-heartbeat`), reopened after any
    /// failure; a failure is logged as a warning once, and its recovery once.
    private func heartbeat() async throws {
        let interval = configuration.source.heartbeatInterval
        let connection = LazyConnection(url: configuration.source.url, applicationName: "tidemark-heartbeat", logger: logger)
        var failing = false
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                break
            }
            let idle = ContinuousClock.now - lastActivity.withLock { $0 } >= interval
            guard idle else { continue }
            do {
                _ = try await connection.get().query("SELECT pg_logical_emit_message(false, 'tidemark.heartbeat', now()::text)::text")
                if failing {
                    failing = false
                    logger.info("heartbeat recovered")
                }
            } catch where Task.isCancelled {
                break
            } catch {
                await connection.close()
                if !failing {
                    failing = true
                    logger.warning(
                        "heartbeat failed; reconnecting (an idle slot does not advance meanwhile)",
                        metadata: ["error": "\(error)", "source": "\(configuration.source.redactedURL)"])
                }
            }
        }
        await connection.close()
    }
}
