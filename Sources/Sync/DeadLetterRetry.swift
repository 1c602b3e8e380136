import Foundation
import Indexing

/// Reprocesses dead letters through the running agent.
///
/// A retry never writes the index itself: it queues one `ids` backfill job per entity, which the
/// agent runs like every other write — watermarked chunks read in their own short transactions and
/// applied in stream order. So a row deleted (or changed) while the retry is pending is never brought
/// back in an older version; rows that no longer exist are removed from the index and the list.
public enum DeadLetterRetry {
    /// Queues `ids` jobs for `letters` (one per entity, ids in the order given, without repeats).
    /// Returns the queued jobs; the agent picks them up within a second.
    @discardableResult
    public static func queue(_ letters: [DeadLetter], store: any IndexStore) async throws -> [JobRecord] {
        var order: [String] = []
        var idsByEntity: [String: [String]] = [:]
        var seen = Set<String>()
        for letter in letters where seen.insert(letter.entity + "\u{0}" + letter.id).inserted {
            if idsByEntity[letter.entity] == nil { order.append(letter.entity) }
            idsByEntity[letter.entity, default: []].append(letter.id)
        }
        var jobs: [JobRecord] = []
        for entity in order {
            let ids = idsByEntity[entity] ?? []
            var job = JobRecord(id: JobRecord.newID(), entity: entity, kind: .ids)
            job.ids = ids
            job.estimatedTotal = ids.count
            try await store.saveJob(job)
            jobs.append(job)
        }
        return jobs
    }
}
