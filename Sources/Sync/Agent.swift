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

    /// What the agent is doing, for status output.
    public struct Progress: Sendable {
        public var phase = "starting"
        public var checkpoint: LSN?
    }

    private let embedder: any Embedder
    private let pipelineStatistics = Mutex<Pipeline?>(nil)
    /// The reader of the current run, so the pipeline can confirm durable positions to it.
    private let currentReader = Mutex<ReplicationReader?>(nil)

    /// - Parameter embedder: overrides the configured embedder (tests wrap one to count calls).
    public init(configuration: AgentConfiguration, logger: Logger, embedder: (any Embedder)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.embedder = embedder ?? Self.makeEmbedder(configuration)
    }

    /// The pipeline's counters (zero before streaming starts).
    public var statistics: Pipeline.Statistics {
        pipelineStatistics.withLock { $0?.statistics } ?? Pipeline.Statistics()
    }

    public var currentProgress: Progress { progress.withLock { $0 } }

    /// Opens the configured index store.
    public static func openStore(_ configuration: AgentConfiguration, logger: Logger) throws -> SQLiteIndexStore {
        switch configuration.index {
        case .sqlite(let path):
            return try SQLiteIndexStore(configuration: .init(path: path), logger: logger)
        }
    }

    /// The configured embedder.
    public static func makeEmbedder(_ configuration: AgentConfiguration) -> any Embedder {
        switch configuration.embedder.kind {
        case .builtin: BuiltinEmbedder()
        }
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
        let entities = try await Self.resolveEntities(configuration, on: connection, logger: logger)
        let store = try Self.openStore(configuration, logger: logger)
        let rowSource = RowSource(url: source.url, logger: logger)
        var pipelineConfiguration = Pipeline.Configuration()
        pipelineConfiguration.batchSize = configuration.pipeline.batchSize
        pipelineConfiguration.batchBytes = configuration.pipeline.batchBytes
        pipelineConfiguration.batchDelay = configuration.pipeline.batchDelay
        let coordinator = BackfillCoordinator()
        let pipeline = Pipeline(
            configuration: pipelineConfiguration, entities: entities, embedder: embedder, store: store,
            rowSource: rowSource, logger: logger, coordinator: coordinator,
            onDurable: { [weak self] checkpoint in
                self?.currentReader.withLock { $0 }?.confirm(checkpoint)
                self?.progress.withLock { $0.checkpoint = checkpoint }
            })
        pipelineStatistics.withLock { $0 = pipeline }
        try await pipeline.run {
            try await stream(connection: connection, entities: entities, store: store, pipeline: pipeline, coordinator: coordinator)
        }
        await rowSource.close()
        logger.info("stopped", metadata: ["lsn.checkpoint": "\(progress.withLock { $0.checkpoint?.description ?? "none" })"])
    }

    private func stream(
        connection: PostgresConnection, entities: [EntityMapping], store: SQLiteIndexStore, pipeline: Pipeline,
        coordinator: BackfillCoordinator
    ) async throws {
        let source = configuration.source

        let setup = ReplicationSetup(
            configuration: .init(slotName: source.slot, publicationName: source.publication, tables: Array(Set(entities.map(\.table))).sorted()),
            logger: logger)
        try await setup.ensurePublication(on: connection)
        let start = try await prepareSlot(setup: setup, connection: connection, entities: entities, store: store)

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
                    }
                }
                group.addTask {
                    try await self.heartbeat(connection: connection)
                }
                group.addTask {
                    try await self.scheduleBackfills(entities: entities, store: store, coordinator: coordinator)
                }
                // The reader returns after stop() or fails; heartbeat and backfills end with it (an
                // interrupted job resumes from its last durable chunk on the next start).
                _ = try await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: draining the in-flight batch")
            reader.stop()
        }
    }

    /// Makes sure the slot exists; queues a backfill for every entity not loaded since this slot was
    /// created. Returns where to stream from.
    ///
    /// Streaming starts at once: a new database's existing rows arrive through watermarked backfill
    /// chunks while live changes already flow.
    private func prepareSlot(
        setup: ReplicationSetup, connection: PostgresConnection, entities: [EntityMapping], store: SQLiteIndexStore
    ) async throws -> LSN {
        let slotRows = try await connection.query(
            "SELECT confirmed_flush_lsn::text, wal_status, database = current_database(), database FROM pg_replication_slots WHERE slot_name = $1",
            [configuration.source.slot])
        if let row = slotRows.rows.first, row[2] != "t" {
            throw SyncError(
                .configuration,
                "source.slot: a replication slot named \"\(configuration.source.slot)\" already belongs to database \(row[3] ?? "(none)"); slot names are shared by the whole server, so choose another source.slot")
        }
        var checkpoint = try await store.state("checkpoint").flatMap { LSN($0) }
        var incarnation = try await store.state("slot.incarnation")
        if let row = slotRows.rows.first, row[1] == "lost" {
            logger.warning("the replication slot was invalidated; re-creating it and backfilling every entity", metadata: ["slot.name": "\(configuration.source.slot)"])
            try await setup.dropSlot(on: connection)
            incarnation = nil
        } else if slotRows.rows.isEmpty {
            if checkpoint != nil {
                logger.warning("the replication slot is gone; re-creating it and backfilling every entity", metadata: ["slot.name": "\(configuration.source.slot)"])
            }
            incarnation = nil
        } else if incarnation == nil || checkpoint == nil {
            // A slot this index knows nothing about (e.g. a new index file): start over from a new one.
            try await setup.dropSlot(on: connection)
        }
        if incarnation == nil || checkpoint == nil {
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
            let underway = jobs.contains { $0.entity == entity.name && $0.kind == .backfill }
            if !loaded && !underway {
                var job = JobRecord(id: JobRecord.newID(), entity: entity.name, kind: .backfill)
                job.loadsIncarnation = incarnation
                try await store.saveJob(job)
                logger.info("backfill queued", metadata: ["job.id": "\(job.id)", "entity": "\(entity.name)"])
            }
        }
        return start
    }

    /// Starts queued and interrupted backfill jobs, at most `backfill.max_concurrent` at a time, and
    /// picks up jobs queued later (by `tidemark backfill`).
    private func scheduleBackfills(entities: [EntityMapping], store: SQLiteIndexStore, coordinator: BackfillCoordinator) async throws {
        let byName = Dictionary(entities.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let runID = String(UUID().uuidString.prefix(8)).lowercased()
        var workerConfiguration = BackfillWorker.Configuration()
        workerConfiguration.targetChunkDuration = configuration.backfill.chunkDuration
        workerConfiguration.maximumChunkBytes = configuration.backfill.maxChunkBytes
        let limit = max(1, configuration.backfill.maxConcurrent)
        try await withThrowingDiscardingTaskGroup { group in
            var running = Set<String>()
            var retryAfter: [String: ContinuousClock.Instant] = [:]
            while !Task.isCancelled {
                for finished in self.finishedWorkers.withLock({ list in defer { list.removeAll() }; return list }) {
                    running.remove(finished)
                    retryAfter[finished] = .now + .seconds(2)
                }
                let candidates = try await store.activeJobs().reversed().filter { !running.contains($0.id) }
                for job in candidates where running.count < limit {
                    if let wait = retryAfter[job.id], wait > .now { continue }
                    guard let entity = byName[job.entity] else {
                        var failed = job
                        failed.status = .failed
                        failed.lastError = "entity \(job.entity) is not in the configuration"
                        failed.finishedAt = Date().timeIntervalSince1970
                        try await store.saveJob(failed)
                        continue
                    }
                    running.insert(job.id)
                    let worker = BackfillWorker(
                        configuration: workerConfiguration, entity: entity, sourceURL: configuration.source.url, store: store,
                        coordinator: coordinator, runID: runID, logger: logger)
                    group.addTask {
                        defer { self.finishedWorkers.withLock { $0.append(job.id) } }
                        do {
                            let finished = try await worker.run(job)
                            if finished.status == .completed, let incarnation = finished.loadsIncarnation {
                                try await store.apply(IndexBatch(), state: ["loaded.\(entity.name)": incarnation])
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

    /// While nothing arrives, writes a logical message now and then so the checkpoint and the slot
    /// keep advancing on a database whose WAL is all about other tables or databases.
    private func heartbeat(connection: PostgresConnection) async throws {
        let interval = configuration.source.heartbeatInterval
        while !Task.isCancelled {
            try await Task.sleep(for: interval)
            let idle = ContinuousClock.now - lastActivity.withLock { $0 } >= interval
            guard idle else { continue }
            do {
                _ = try await connection.query("SELECT pg_logical_emit_message(false, 'tidemark.heartbeat', now()::text)::text")
            } catch {
                logger.debug("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
