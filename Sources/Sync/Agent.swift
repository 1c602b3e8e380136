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

    /// What the agent is doing, for status output.
    public struct Progress: Sendable {
        public var phase = "starting"
        public var loadedRows = 0
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

    /// Identifies the set of entities a completed initial load covered.
    static func loadSignature(_ configuration: AgentConfiguration, _ entities: [EntityMapping]) -> String {
        ([configuration.source.slot] + entities.map { "\($0.name)=\($0.table)" }).joined(separator: ";")
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
        let pipeline = Pipeline(
            configuration: pipelineConfiguration, entities: entities, embedder: embedder, store: store,
            rowSource: rowSource, logger: logger,
            onDurable: { [weak self] checkpoint in
                self?.currentReader.withLock { $0 }?.confirm(checkpoint)
                self?.progress.withLock { $0.checkpoint = checkpoint }
            })
        pipelineStatistics.withLock { $0 = pipeline }
        try await pipeline.run {
            try await stream(connection: connection, entities: entities, store: store, pipeline: pipeline)
        }
        await rowSource.close()
        logger.info("stopped", metadata: ["lsn.checkpoint": "\(progress.withLock { $0.checkpoint?.description ?? "none" })"])
    }

    private func stream(connection: PostgresConnection, entities: [EntityMapping], store: SQLiteIndexStore, pipeline: Pipeline) async throws {
        let source = configuration.source

        let setup = ReplicationSetup(
            configuration: .init(slotName: source.slot, publicationName: source.publication, tables: Array(Set(entities.map(\.table))).sorted()),
            logger: logger)
        try await setup.ensurePublication(on: connection)
        let start = try await prepareSlot(setup: setup, connection: connection, entities: entities, store: store, pipeline: pipeline)

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
                // The reader returns after stop() or fails; either way the heartbeat ends with it.
                _ = try await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down: draining the in-flight batch")
            reader.stop()
        }
    }

    /// Makes sure the slot exists and the initial load is complete; returns where to stream from.
    private func prepareSlot(
        setup: ReplicationSetup, connection: PostgresConnection, entities: [EntityMapping], store: SQLiteIndexStore,
        pipeline: Pipeline
    ) async throws -> LSN {
        let signature = Self.loadSignature(configuration, entities)
        let slotRows = try await connection.query(
            "SELECT confirmed_flush_lsn::text, wal_status, active, database = current_database(), database FROM pg_replication_slots WHERE slot_name = $1",
            [configuration.source.slot])
        if let row = slotRows.rows.first, row[3] != "t" {
            throw SyncError(
                .configuration,
                "source.slot: a replication slot named \"\(configuration.source.slot)\" already belongs to database \(row[4] ?? "(none)"); slot names are shared by the whole server, so choose another source.slot")
        }
        let loaded = try await store.state("initial_load") == signature
        let checkpoint = try await store.state("checkpoint").flatMap { LSN($0) }
        if let row = slotRows.rows.first, row[1] != "lost", loaded, let checkpoint {
            return checkpoint
        }
        if !slotRows.rows.isEmpty {
            logger.warning(
                "re-initialising: the slot exists but the index has no complete load for these entities (or the slot was invalidated)",
                metadata: ["slot.name": "\(configuration.source.slot)"])
            try await setup.dropSlot(on: connection)
        } else if checkpoint != nil {
            logger.warning("the replication slot is gone; re-loading every entity", metadata: ["slot.name": "\(configuration.source.slot)"])
        }
        // Documents already indexed stay (and answer searches) during the reload; the load rewrites
        // each live row (an unchanged one costs no embedding) and then sweeps rows that are gone.
        try await store.reset(entities: [], stateKeys: ["initial_load"])
        progress.withLock { $0.phase = "initial load" }

        // Create the slot and read everything as of its exported snapshot.
        let replication = try await PostgresConnection.connect(
            configuration.source.url, kind: .logicalReplication, applicationName: "tidemark-setup", logger: logger)
        let created = try await replication.simpleQuery(
            "CREATE_REPLICATION_SLOT \(PostgresConnection.quoteIdentifier(configuration.source.slot)) LOGICAL pgoutput (SNAPSHOT 'export')")
        guard let consistent = created.value(0, "consistent_point").flatMap({ LSN($0) }),
            let snapshot = created.value(0, "snapshot_name")
        else {
            await replication.close()
            throw SyncError(.initialLoad, "the server did not return a consistent point and snapshot for the new slot")
        }
        let reader = try await PostgresConnection.connect(configuration.source.url, applicationName: "tidemark-load", logger: logger)
        do {
            try await reader.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try await reader.simpleQuery("SET TRANSACTION SNAPSHOT \(PostgresConnection.quoteLiteral(snapshot))")
            await replication.close()  // the snapshot now lives in the reader's transaction
            let rows = try await InitialLoad(logger: logger).load(entities, on: reader, lsn: consistent, pipeline: pipeline)
            try await pipeline.flush()
            try await reader.simpleQuery("COMMIT")
            await reader.close()
            var sweep = IndexBatch()
            for entity in entities { sweep.sweepBefore[entity.name] = consistent }
            try await store.apply(sweep, state: ["checkpoint": consistent.description, "initial_load": signature])
            progress.withLock { $0.loadedRows = rows }
            logger.info("initial load complete", metadata: ["rows": "\(rows)", "lsn.consistent": "\(consistent)"])
        } catch {
            await replication.close()
            await reader.close()
            throw SyncError(.initialLoad, "the initial load failed; the next start begins it again", underlying: error)
        }
        return consistent
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
