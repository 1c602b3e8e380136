import Foundation
import Indexing

/// A job as the API shows it: progress, rate and ETA, without the worker's internal cursor.
struct JobView: Codable, Sendable, Equatable {
    var id: String
    var entity: String
    var kind: String
    var status: String
    var control: String
    var createdAt: Double
    var startedAt: Double?
    var finishedAt: Double?
    var estimatedTotal: Int
    var processed: Int
    var succeeded: Int
    var failed: Int
    /// 0…100.
    var percent: Double
    /// Rows per second over the job's running time.
    var rate: Double
    var etaSeconds: Double?
    var lastError: String?
    /// For `ids` jobs: how many ids it covers.
    var idsCount: Int?
    var generation: Int?
    var rolledBack: Bool

    init(_ job: JobRecord) {
        id = job.id
        entity = job.entity
        kind = job.kind.rawValue
        status = job.status.rawValue
        control = job.control.rawValue
        createdAt = job.createdAt
        startedAt = job.startedAt
        finishedAt = job.finishedAt
        estimatedTotal = job.estimatedTotal
        processed = job.processed
        succeeded = job.succeeded
        failed = job.failed
        if job.status == .completed {
            percent = 100
        } else if job.estimatedTotal > 0 {
            percent = min(100, (Double(job.processed) * 1000 / Double(job.estimatedTotal)).rounded() / 10)
        } else {
            percent = 0
        }
        rate = (job.rate * 10).rounded() / 10
        etaSeconds = job.eta.map { ($0 * 10).rounded() / 10 }
        lastError = job.lastError
        idsCount = job.ids?.count
        generation = job.generation
        rolledBack = job.rolledBack
    }
}
