import Foundation
import Indexing
import Postgres

/// Re-checking candidates: what decides that a difference is drift and not a change in flight.
extension Validator {
    /// The candidates a re-check settled.
    struct RecheckOutcome: Sendable {
        var missing: [String] = []
        var orphaned: [String] = []
        var stale: [String] = []
        /// Still changing after the last round.
        var unsettled: [String] = []
    }

    /// What one round saw of an id that differed.
    struct Observation: Sendable, Equatable {
        /// The row's hash, `nil` when there is no row.
        var row: UInt64?
        /// The document's hash, content hash and position, `nil` when there is no document.
        var document: UInt64?
        var contentHash: String?
        var lsn: LSN?
    }

    /// Re-reads `ids` on both sides in rounds. Each round first waits until the transactions in
    /// progress have ended (so its snapshot sees every version the index applied before the round),
    /// reads the rows in one snapshot, waits until the index has passed a position written after that
    /// read, then reads the documents. An id that compares equal is settled; an id that shows the
    /// same difference in two consecutive rounds is drift (a change in flight would have reached
    /// both sides by the second one); the rest go to the next round.
    func recheck(_ ids: [String], entity: EntityMapping, source: inout SourceDigest, index: inout IndexDigest) async throws -> RecheckOutcome {
        var outcome = RecheckOutcome()
        var pending: [String: Observation?] = Dictionary(ids.map { ($0, Observation?.none) }, uniquingKeysWith: { first, _ in first })
        let rounds = max(2, configuration.recheckRounds)
        for round in 1...rounds where !pending.isEmpty {
            if round > 1 { try await Task.sleep(for: .milliseconds(min(500, 50 * round))) }
            let inProgress = try await source.snapshot()
            guard try await source.waitForEnd(of: inProgress, timeout: configuration.settleTimeout) else {
                logger.warning(
                    "validation re-check stopped: transactions stayed in progress for \(configuration.settleTimeout) (a commit waiting for a synchronous standby?)",
                    metadata: ["entity": "\(entity.name)", "validation.pending": "\(pending.count)"])
                break
            }
            let batch = pending.keys.sorted()
            let read = try await source.read(ids: batch)
            try await catchUp(&source)
            let documents = try await index.documents(ids: batch)
            for id in batch {
                guard let observation = observe(id, row: read.rows[id], document: documents[id], entity: entity, index: &index) else {
                    pending[id] = nil
                    continue
                }
                if let previous = pending[id] ?? nil, previous == observation {
                    pending[id] = nil
                    switch (observation.row, observation.document) {
                    case (nil, _): outcome.orphaned.append(id)
                    case (_, nil): outcome.missing.append(id)
                    default: outcome.stale.append(id)
                    }
                } else {
                    pending[id] = .some(observation)
                }
            }
        }
        outcome.unsettled = pending.keys.sorted()
        return outcome
    }

    /// `nil` when the row and the document agree (both absent, or the document is what the row
    /// renders to); otherwise what differs.
    private func observe(
        _ id: String, row: [String: String?]?, document: ValidationDocument?, entity: EntityMapping, index: inout IndexDigest
    ) -> Observation? {
        var observation = Observation()
        var rendered: Document?
        if let row {
            var hash = RowHash()
            for column in entity.keyColumns + entity.sourceColumns { hash.add(row[column] ?? nil) }
            observation.row = hash.value
            if configuration.checkContent { rendered = try? entity.document(id: id, values: row, lsn: .zero) }
        }
        if let document {
            observation.document = index.hash(id: id, sourceJSON: document.sourceJSON)?.hash ?? 0
            observation.contentHash = document.contentHash
            observation.lsn = document.lsn
        }
        switch (observation.row, observation.document) {
        case (nil, nil):
            return nil
        case (let row?, let stored?) where row == stored:
            guard configuration.checkContent, let document else { return nil }
            let consistent = rendered.map { rendered in
                document.content == rendered.content && document.contentHash == rendered.contentHash
                    && FlatJSON.decode(document.metadataJSON ?? "{}") == rendered.metadata
            } ?? false
            return consistent ? nil : observation
        default:
            return observation
        }
    }
}
