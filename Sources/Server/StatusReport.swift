import Embedding
import Foundation
import Sync

/// What `GET /api/status` answers: the agent, the replication slot on the source, each entity's
/// documents and sync state, dead letters, the embedder's health and counters, the pipeline's
/// counters. Every field is documented in `Docs/openapi.yaml` (schema `Status`).
struct StatusReport: Codable, Sendable {
    struct AgentSection: Codable, Sendable {
        /// `starting` or `streaming`.
        var phase: String
        /// The index's checkpoint: every change before it is applied.
        var checkpoint: String?
        var uptimeSeconds: Double
        var version: String
    }

    struct Entity: Codable, Sendable {
        var name: String
        var table: String
        var documents: Int
        /// `loaded`, `loading` (its first backfill runs), `backfilling` (a later one), `rebuilding`, or `not_loaded`.
        var state: String
        var job: JobView?
        var deadLetters: Int
    }

    struct EmbedderSection: Codable, Sendable {
        var model: String
        var dimensions: Int
        var healthy: Bool
        var lastError: String?
        var lastSuccessAt: Double?
        var requests: Int
        var inputs: Int
        var tokens: Int
        var errors: Int
        var retries: Int
        var rateLimited: Int
    }

    struct PipelineSection: Codable, Sendable {
        var batches: Int
        var upserts: Int
        var deletes: Int
        var truncates: Int
        var embeddingCalls: Int
        var embeddingsSkipped: Int
        var deadLetters: Int
        /// Commit → searchable of streamed transactions since start.
        var latencyP50Ms: Double
        var latencyP99Ms: Double
    }

    var agent: AgentSection
    /// `nil` when the source could not be asked (see ``sourceError``).
    var replication: ReplicationStatus?
    var sourceError: String?
    var entities: [Entity]
    var deadLetters: Int
    var embedder: EmbedderSection?
    var pipeline: PipelineSection
    /// Per entity validated at least once: the drift its latest validation found (missing,
    /// orphaned, stale and dead-lettered ids). `null` while the agent starts.
    var drift: [String: Int]?
    var generatedAt: Double
}
