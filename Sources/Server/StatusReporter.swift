import Foundation
import Indexing
import Logging
import Sync
import Synchronization

/// Builds ``StatusReport``s, at most one every ``Configuration/cacheTTL``: a dashboard, the events
/// stream and `/readyz` polling together cost the source one catalog query and the store a few
/// counts per interval, however many clients there are.
final class StatusReporter: Sendable {
    struct Configuration: Sendable {
        /// How old a report may be. Default 250 ms.
        var cacheTTL: Duration = .milliseconds(250)
    }

    let configuration: Configuration
    private let agent: Agent
    private let probe: SourceProbe
    private let logger: Logger
    private let startedAt = Date()
    private let cache = Mutex<(report: StatusReport, at: ContinuousClock.Instant)?>(nil)

    init(configuration: Configuration, agent: Agent, probe: SourceProbe, logger: Logger) {
        self.configuration = configuration
        self.agent = agent
        self.probe = probe
        self.logger = logger
    }

    /// The current report (from the cache when fresh enough).
    func report() async throws -> StatusReport {
        if let cached = cache.withLock({ $0 }), ContinuousClock.now - cached.at < configuration.cacheTTL { return cached.report }
        let report = try await build()
        cache.withLock { $0 = (report, .now) }
        return report
    }

    private func build() async throws -> StatusReport {
        let configuration = agent.configuration
        let progress = agent.currentProgress
        let statistics = agent.statistics
        var replication: ReplicationStatus?
        var sourceError: String?
        do {
            replication = try await probe.with { try await ReplicationStatus.read(slot: configuration.source.slot, on: $0) }
        } catch {
            sourceError = "cannot read the replication slot on the source: \(error)"
        }
        var entities: [StatusReport.Entity] = []
        var deadLetterTotal = 0
        var embedder: StatusReport.EmbedderSection?
        var drift: [String: Int]?
        if let runtime = agent.runtime {
            let store = runtime.store
            let incarnation = try await store.state("slot.incarnation")
            let active = try await store.activeJobs()
            let letters = try await store.deadLetters(entity: nil)
            deadLetterTotal = letters.count
            let lettersByEntity = Dictionary(grouping: letters, by: \.entity)
            var driftCounts: [String: Int] = [:]
            for entity in configuration.entities {
                // The latest validation with a result (a repair's is its closing validation).
                if let latest = try await store.validations(entity: entity.name, limit: 5).first(where: { $0.result != nil })?.result {
                    driftCounts[entity.name] = latest.driftCount
                }
                let loadedUnder = try await store.state("loaded.\(entity.name)")
                let loaded = incarnation != nil && loadedUnder == incarnation
                let job = active.first { $0.entity == entity.name }
                let state: String
                switch job?.kind {
                case .rebuild: state = "rebuilding"
                case .backfill, .ids: state = loaded ? "backfilling" : "loading"
                case nil: state = loaded ? "loaded" : "not_loaded"
                }
                entities.append(.init(
                    name: entity.name, table: entity.table.description, documents: try await store.count(entity: entity.name), state: state,
                    job: job.map(JobView.init), deadLetters: lettersByEntity[entity.name]?.count ?? 0))
            }
            let health = runtime.embedder.health
            let counts = runtime.embedder.statistics
            embedder = .init(
                model: runtime.embedder.model, dimensions: runtime.embedder.dimensions, healthy: health.healthy, lastError: health.lastError,
                lastSuccessAt: health.lastSuccessAt, requests: counts.requests, inputs: counts.inputs, tokens: counts.tokens,
                errors: counts.errors, retries: counts.retries, rateLimited: counts.rateLimited)
            drift = driftCounts
        } else {
            entities = configuration.entities.map {
                .init(name: $0.name, table: $0.table.description, documents: 0, state: "starting", job: nil, deadLetters: 0)
            }
        }
        return StatusReport(
            agent: .init(
                phase: progress.phase, checkpoint: progress.checkpoint?.description,
                uptimeSeconds: (Date().timeIntervalSince(startedAt) * 10).rounded() / 10, version: APIServer.version),
            replication: replication, sourceError: sourceError, entities: entities, deadLetters: deadLetterTotal, embedder: embedder,
            pipeline: .init(
                batches: statistics.batches, upserts: statistics.upserts, deletes: statistics.deletes, truncates: statistics.truncates,
                embeddingCalls: statistics.embeddingCalls, embeddingsSkipped: statistics.embeddingsSkipped,
                deadLetters: statistics.deadLetters, latencyP50Ms: statistics.latency.percentile(0.5),
                latencyP99Ms: statistics.latency.percentile(0.99)),
            drift: drift, generatedAt: Date().timeIntervalSince1970)
    }
}
