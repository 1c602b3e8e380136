import Embedding
import Foundation
import Metrics
import Prometheus
import Sync
import Synchronization

/// Tidemark's metrics, made through swift-metrics with the factory it is given (the executable
/// bootstraps the `MetricsSystem` with a Prometheus factory and passes the same one here; tests
/// pass their own). Batches are counted as the pipeline applies them (``observe(_:)``); lag, WAL,
/// documents, jobs and the embedder's counters are sampled from the status report.
///
/// Names (all documented in `Docs/operations.md`):
/// `tidemark_changes_total{operation,entity}`, `tidemark_dead_letters_total{entity}`,
/// `tidemark_batch_size`, `tidemark_apply_duration_seconds`, `tidemark_commit_to_searchable_seconds`,
/// `tidemark_replication_lag_bytes`, `tidemark_replication_lag_seconds`, `tidemark_wal_retained_bytes`,
/// `tidemark_slot_active`, `tidemark_documents{entity}`, `tidemark_dead_letters{entity}`,
/// `tidemark_backfill_progress_ratio{entity}`, `tidemark_jobs_active`, `tidemark_drift_documents{entity}`,
/// `tidemark_embedding_{requests,inputs,tokens,errors,retries,rate_limited}_total`, `tidemark_embedder_healthy`.
public final class MetricsRecorder: Sendable {
    public struct Configuration: Sendable {
        /// Where the metrics are made. Default: the bootstrapped `MetricsSystem.factory`.
        public var factory: any MetricsFactory = MetricsSystem.factory
        public init() {}
    }

    /// Buckets of the histograms, for the Prometheus factory.
    public static let batchSizeBuckets: [Double] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000]
    public static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    /// A Prometheus factory writing into `registry` with the buckets above: what the executable
    /// bootstraps `MetricsSystem` with.
    public static func prometheusFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["tidemark_batch_size"] = batchSizeBuckets
        factory.durationHistogramBuckets["tidemark_apply_duration_seconds"] = durationBuckets
        factory.durationHistogramBuckets["tidemark_commit_to_searchable_seconds"] = durationBuckets
        return factory
    }

    public let configuration: Configuration
    private let counters = Mutex<[String: Metrics.Counter]>([:])
    private let gauges = Mutex<[String: Metrics.Gauge]>([:])
    private let batchSize: Metrics.Recorder
    private let applyDuration: Metrics.Timer
    private let commitToSearchable: Metrics.Timer
    private let lastEmbedder = Mutex(EmbedderStatistics())

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        batchSize = Metrics.Recorder(label: "tidemark_batch_size", aggregate: true, factory: configuration.factory)
        applyDuration = Metrics.Timer(label: "tidemark_apply_duration_seconds", factory: configuration.factory)
        commitToSearchable = Metrics.Timer(label: "tidemark_commit_to_searchable_seconds", factory: configuration.factory)
    }

    /// Counts an applied batch: the agent's pipeline observer.
    public func observe(_ report: AppliedBatchReport) {
        for (entity, changes) in report.changes {
            if changes.upserts > 0 { counter("tidemark_changes_total", [("operation", "upsert"), ("entity", entity)]).increment(by: changes.upserts) }
            if changes.deletes > 0 { counter("tidemark_changes_total", [("operation", "delete"), ("entity", entity)]).increment(by: changes.deletes) }
            if changes.truncates > 0 {
                counter("tidemark_changes_total", [("operation", "truncate"), ("entity", entity)]).increment(by: changes.truncates)
            }
            if changes.deadLetters > 0 { counter("tidemark_dead_letters_total", [("entity", entity)]).increment(by: changes.deadLetters) }
        }
        if report.size > 0 { batchSize.record(report.size) }
        applyDuration.recordNanoseconds(Self.nanoseconds(report.applyDuration))
        for latency in report.latencies { commitToSearchable.recordNanoseconds(Int64(max(0, latency) * 1_000_000)) }
    }

    /// Sets the gauges from a status report and adds the embedder's new calls to its counters.
    func sample(_ report: StatusReport) {
        if let replication = report.replication {
            gauge("tidemark_replication_lag_bytes").record(Double(replication.lagBytes))
            gauge("tidemark_wal_retained_bytes").record(Double(replication.retainedBytes))
            gauge("tidemark_slot_active").record(replication.active ? 1 : 0)
            if let seconds = replication.lagSeconds { gauge("tidemark_replication_lag_seconds").record(seconds) }
        }
        var active = 0
        for entity in report.entities {
            gauge("tidemark_documents", [("entity", entity.name)]).record(Double(entity.documents))
            gauge("tidemark_dead_letters", [("entity", entity.name)]).record(Double(entity.deadLetters))
            gauge("tidemark_backfill_progress_ratio", [("entity", entity.name)]).record((entity.job?.percent ?? 100) / 100)
            // 0 also while an entity was never validated.
            gauge("tidemark_drift_documents", [("entity", entity.name)]).record(Double(report.drift?[entity.name] ?? 0))
            if entity.job != nil { active += 1 }
        }
        gauge("tidemark_jobs_active").record(Double(active))
        if let embedder = report.embedder {
            gauge("tidemark_embedder_healthy").record(embedder.healthy ? 1 : 0)
            var now = EmbedderStatistics()
            now.requests = embedder.requests
            now.inputs = embedder.inputs
            now.tokens = embedder.tokens
            now.errors = embedder.errors
            now.retries = embedder.retries
            now.rateLimited = embedder.rateLimited
            let before = lastEmbedder.withLock { last -> EmbedderStatistics in
                defer { last = now }
                return last
            }
            let deltas: [(String, Int)] = [
                ("tidemark_embedding_requests_total", now.requests - before.requests),
                ("tidemark_embedding_inputs_total", now.inputs - before.inputs),
                ("tidemark_embedding_tokens_total", now.tokens - before.tokens),
                ("tidemark_embedding_errors_total", now.errors - before.errors),
                ("tidemark_embedding_retries_total", now.retries - before.retries),
                ("tidemark_embedding_rate_limited_total", now.rateLimited - before.rateLimited),
            ]
            // Counters only grow; a restarted embedder (smaller numbers) starts a new baseline.
            for (name, delta) in deltas { counter(name, []).increment(by: max(0, delta)) }
        }
    }

    private func counter(_ name: String, _ dimensions: [(String, String)]) -> Metrics.Counter {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { counters in
            if let existing = counters[key] { return existing }
            let made = Metrics.Counter(label: name, dimensions: dimensions, factory: configuration.factory)
            counters[key] = made
            return made
        }
    }

    private func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> Metrics.Gauge {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return gauges.withLock { gauges in
            if let existing = gauges[key] { return existing }
            let made = Metrics.Gauge(label: name, dimensions: dimensions, factory: configuration.factory)
            gauges[key] = made
            return made
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
