import Capture
import Foundation
import Indexing
import Logging
import Postgres

/// Proves that an entity's index equals its table, or finds exactly where it does not: ids missing
/// from the index, orphaned in it, stale (their stored source values, content or metadata differ
/// from what the row renders to now), and rows in the dead letters.
///
/// The comparison is cheap when nothing differs: the key space is cut into ranges of about
/// ``Configuration/segmentRows`` rows (boundaries walked along the key's index); PostgreSQL hashes
/// every row of a range and returns one digest per range (``RangeDigest``); the index side digests
/// its documents' stored source values the same way (``IndexDigest``); only ranges whose digests
/// differ are descended into — split again while large, then listed row by row. No statement or
/// transaction covers more than a bounded stretch of keys.
///
/// It is exact while the agent streams: each comparison waits until the index's checkpoint has passed
/// a position written after the source read, and every candidate id is re-read on both sides in
/// rounds (after the transactions in progress have ended) until it compares equal, or shows the same
/// difference twice in a row — only then is it drift. Ids still changing after
/// ``Configuration/recheckRounds`` rounds are reported as unsettled, not as drift. The argument is in
/// `Docs/validation.md`.
///
/// A validator only reads; ``DriftRepair`` repairs. Runs of one validator may overlap (each opens its
/// own source connection), but the agent runs one at a time (``ValidationRunner``).
public final class Validator: Sendable {
    public struct Configuration: Sendable {
        /// Rows per key range at the first level. Default 1 024.
        public var segmentRows = 1_024
        /// Largest differing range listed row by row; larger ones are split first. Default 4 096.
        public var leafRows = 4_096
        /// Ranges a large differing range is split into. Default 16.
        public var fanout = 16
        /// Also compare each document's content and metadata with what its stored source values
        /// render to (catches documents edited in the index, or rendered by an older template).
        /// Costs a template render per document. Default `true`.
        public var checkContent = true
        /// Re-check rounds before a candidate that keeps changing is reported as unsettled (at least
        /// 2: a difference counts only when two consecutive rounds see it alike). Default 5.
        public var recheckRounds = 5
        /// Wait for the index's checkpoint to pass each source position compared, as when an agent
        /// streams. Without an agent the checkpoint stands still: turn it off, and the index is
        /// compared as it stands. Default `true`.
        public var waitForIndex = true
        /// Longest wait for the index's checkpoint to pass a source position. Default 60 s.
        public var catchUpTimeout: Duration = .seconds(60)
        /// Longest wait for the transactions in progress at a re-check to end. Default 10 s.
        public var settleTimeout: Duration = .seconds(10)
        /// Documents per index read. Default 5 000.
        public var pageSize = 5_000
        /// Source connections the first level's digests are spread over when there are more ranges
        /// than one statement covers: PostgreSQL hashes rows on one core per connection. Default 2.
        public var sourceConnections = 2
        /// Bounds of the source statements.
        var source = SourceDigest.Configuration()

        public init() {}
    }

    /// A validation's result with every id of each class (the result keeps a sample).
    struct Inspection: Sendable {
        var result: ValidationResult
        var missing: [String] = []
        var orphaned: [String] = []
        var stale: [String] = []
        var deadLettered: [String] = []

        /// Every id a repair should feed back through the backfill path, without repeats.
        var drifted: [String] { Array(Set(missing + orphaned + stale + deadLettered)).sorted() }
    }

    public let configuration: Configuration
    private let entities: [String: EntityMapping]
    let store: any IndexStore
    private let sourceURL: String
    let logger: Logger

    public init(configuration: Configuration, entities: [EntityMapping], store: any IndexStore, sourceURL: String, logger: Logger) {
        self.configuration = configuration
        self.entities = Dictionary(entities.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.store = store
        self.sourceURL = sourceURL
        self.logger = logger
    }

    /// A validator for the configured entities (resolved against the source's catalog), with the
    /// configuration's `validation` settings.
    public static func make(
        _ agent: AgentConfiguration, store: any IndexStore, waitForIndex: Bool = true, logger: Logger
    ) async throws -> Validator {
        let connection = try await PostgresConnection.connect(agent.source.url, applicationName: "tidemark-validation", logger: logger)
        let entities: [EntityMapping]
        do {
            entities = try await Agent.resolveEntities(agent, on: connection, logger: logger)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        var configuration = Configuration()
        configuration.segmentRows = agent.validation.segmentRows
        configuration.checkContent = agent.validation.checkContent
        configuration.waitForIndex = waitForIndex
        return Validator(configuration: configuration, entities: entities, store: store, sourceURL: agent.source.url, logger: logger)
    }

    /// The mapping of an entity it validates.
    func entity(_ name: String) -> EntityMapping? { entities[name] }

    /// The entities it can validate, sorted.
    public var entityNames: [String] { entities.keys.sorted() }

    /// Validates one entity.
    ///
    /// - Throws: ``SyncError`` `validation` for an unknown entity, a source that cannot hash like the
    ///   agent, or an index that did not catch up within ``Configuration/catchUpTimeout``; the
    ///   source's and the store's errors as they come.
    public func validate(entity: String) async throws -> ValidationResult {
        try await inspect(entity: entity).result
    }

    func inspect(entity name: String) async throws -> Inspection {
        guard let entity = entities[name] else {
            throw SyncError(.validation, "unknown entity '\(name)'; configured: \(entityNames.joined(separator: ", "))")
        }
        let startedAt = Date().timeIntervalSince1970
        let started = ContinuousClock.now
        var source = try await SourceDigest.open(url: sourceURL, entity: entity, configuration: configuration.source, logger: logger)
        do {
            let inspection = try await inspect(entity, source: &source, startedAt: startedAt, started: started)
            await source.close()
            return inspection
        } catch {
            await source.close()
            throw error
        }
    }

    private func inspect(_ entity: EntityMapping, source: inout SourceDigest, startedAt: Double, started: ContinuousClock.Instant) async throws -> Inspection {
        var index = IndexDigest(store: store, entity: entity, pageSize: configuration.pageSize)

        // First level: ranges of about segmentRows rows, digested on both sides at once (PostgreSQL
        // hashes while the validator reads the index), after the index has caught up with the
        // source as it is now. A change in flight between the two reads only makes its range differ:
        // the descent and the re-checks sort it out.
        let t0 = ContinuousClock.now
        let boundaries = try await source.boundaries(every: configuration.segmentRows)
        let t1 = ContinuousClock.now
        let ranges = KeyRange.split(at: boundaries)
        let locator = RangeLocator(order: index.order, boundaries: boundaries)
        try await catchUp(&source)
        let t2 = ContinuousClock.now
        let sourceSide = source
        let sourceURL = sourceURL
        let logger = logger
        let connections = max(1, min(configuration.sourceConnections, ranges.count / max(1, configuration.source.rangesPerStatement)))
        async let sourceRead = sourceSide.digests(ranges, connections: connections, url: sourceURL, logger: logger)
        let pass: IndexDigest.Pass
        if let checked = try await index.checkedDigests(ranges, locator, checkContent: configuration.checkContent) {
            pass = checked
        } else {
            pass = try await index.digests(locator, checkContent: configuration.checkContent)
        }
        let t3 = ContinuousClock.now
        let digested = try await sourceRead
        logger.debug(
            "validation first level",
            metadata: [
                "entity": "\(entity.name)", "seconds.open": "\((t0 - started).inSeconds)", "seconds.walk": "\((t1 - t0).inSeconds)",
                "seconds.catch_up": "\((t2 - t1).inSeconds)", "seconds.index": "\((t3 - t2).inSeconds)",
                "seconds.source": "\((ContinuousClock.now - t2).inSeconds)",
            ])
        source.reads = digested.reads
        let sourceDigests = digested.digests

        var candidates = Set(pass.foreignIDs + pass.inconsistent)
        let differing = ranges.indices.filter { sourceDigests[$0] != pass.digests[$0] }
        if !differing.isEmpty {
            // Descend: the documents of the differing ranges (ids first, then those documents).
            let idsByRange = try await index.ids(inRanges: Set(differing), locator)
            var leaves: [Leaf] = []
            for range in differing {
                let documents = try await index.documents(ids: idsByRange[range] ?? [])
                let entries = index.entries(documents.values)
                try await descend(
                    ranges[range], digest: sourceDigests[range], entries: entries, depth: 0, source: &source, order: index.order,
                    leaves: &leaves)
            }
            let listed = try await source.rows(in: leaves.map(\.range), expected: leaves.map(\.expected))
            for (leaf, rows) in zip(leaves, listed) {
                candidates.formUnion(Self.differences(rows, leaf.entries))
            }
        }

        let deadLettered = Set(try await store.deadLetters(entity: entity.name).map(\.id))
        candidates.subtract(deadLettered)
        let outcome = try await recheck(candidates.sorted(), entity: entity, source: &source, index: &index)

        let sourceRows = sourceDigests.reduce(0) { $0 + $1.count }
        var inspection = Inspection(
            result: ValidationResult(entity: entity.name, status: .inSync, startedAt: startedAt, duration: 0),
            missing: outcome.missing.sorted(), orphaned: outcome.orphaned.sorted(), stale: outcome.stale.sorted(),
            deadLettered: deadLettered.sorted())
        var result = inspection.result
        result.missing = .init(ids: inspection.missing)
        result.orphaned = .init(ids: inspection.orphaned)
        result.stale = .init(ids: inspection.stale)
        result.deadLettered = .init(ids: inspection.deadLettered)
        result.unsettled = .init(ids: outcome.unsettled)
        result.status = result.driftCount > 0 ? .drifted : outcome.unsettled.isEmpty ? .inSync : .unsettled
        result.sourceRows = sourceRows
        result.documents = pass.documents
        result.ranges = ranges.count
        result.differingRanges = differing.count
        result.candidates = candidates.count
        result.source = source.reads
        result.index = index.reads
        result.waitedForIndex = configuration.waitForIndex
        result.checkpoint = try await store.state("checkpoint")
        if !configuration.waitForIndex {
            result.note = "no agent was streaming: the index was compared as it stands, so changes it has not applied yet count as drift"
        }
        result.duration = (ContinuousClock.now - started).inSeconds
        inspection.result = result
        logger.info(
            "validation finished",
            metadata: [
                "entity": "\(entity.name)", "validation.status": "\(result.status.rawValue)", "validation.missing": "\(result.missing.count)",
                "validation.orphaned": "\(result.orphaned.count)", "validation.stale": "\(result.stale.count)",
                "validation.dead_letters": "\(result.deadLettered.count)", "validation.unsettled": "\(result.unsettled.count)",
                "validation.ranges": "\(result.ranges)", "validation.differing_ranges": "\(result.differingRanges)",
                "validation.seconds": "\(result.duration)",
            ])
        return inspection
    }

    /// A range to list row by row, with the source's row count and the index's documents in it.
    private struct Leaf {
        var range: KeyRange
        var expected: Int
        var entries: [IndexDigest.Entry]
    }

    /// Splits a differing range until its parts are small enough to list, descending only into the
    /// parts whose digests differ.
    private func descend(
        _ range: KeyRange, digest: RangeDigest, entries: [IndexDigest.Entry], depth: Int, source: inout SourceDigest, order: KeyOrder,
        leaves: inout [Leaf]
    ) async throws {
        guard digest.count > configuration.leafRows && depth < 8 else {
            leaves.append(Leaf(range: range, expected: digest.count, entries: entries))
            return
        }
        let every = max(64, digest.count / max(2, configuration.fanout))
        let boundaries = try await source.boundaries(every: every, within: range)
        guard !boundaries.isEmpty else {
            leaves.append(Leaf(range: range, expected: digest.count, entries: entries))
            return
        }
        let parts = KeyRange.split(range, at: boundaries)
        let digests = try await source.digests(parts)
        let upperBounds = boundaries.map(order.key)
        var partEntries = Array(repeating: [IndexDigest.Entry](), count: parts.count)
        var indexDigests = Array(repeating: RangeDigest(), count: parts.count)
        for entry in entries {
            let part = KeyOrder.rangeIndex(of: entry.key, upperBounds: upperBounds)
            partEntries[part].append(entry)
            indexDigests[part].add(entry.hash)
        }
        for part in parts.indices where digests[part] != indexDigests[part] {
            try await descend(
                parts[part], digest: digests[part], entries: partEntries[part], depth: depth + 1, source: &source, order: order, leaves: &leaves)
        }
    }

    /// Ids whose row and document differ in a listed range: only on one side, or hashed differently.
    static func differences(_ rows: [SourceDigest.ListedRow], _ entries: [IndexDigest.Entry]) -> Set<String> {
        var sourceHashes: [String: UInt64] = [:]
        for row in rows { sourceHashes[DocumentID.make(row.key)] = row.hash }
        var different = Set<String>()
        var seen = Set<String>()
        for entry in entries {
            seen.insert(entry.id)
            if sourceHashes[entry.id] != entry.hash { different.insert(entry.id) }
        }
        for id in sourceHashes.keys where !seen.contains(id) { different.insert(id) }
        return different
    }

    /// Makes sure the index has applied every transaction the source reads so far could see: writes a
    /// position after them and waits for the checkpoint to pass it (when ``Configuration/waitForIndex``).
    func catchUp(_ source: inout SourceDigest) async throws {
        guard configuration.waitForIndex else { return }
        let target = try await source.mark()
        let deadline = ContinuousClock.now + configuration.catchUpTimeout
        var pause = Duration.milliseconds(5)
        while true {
            let checkpoint = try await store.state("checkpoint").flatMap { LSN($0) }
            if let checkpoint, checkpoint >= target { return }
            guard ContinuousClock.now < deadline else {
                throw SyncError(
                    .validation,
                    "the index did not reach the source position \(target) within \(configuration.catchUpTimeout) (checkpoint \(checkpoint?.description ?? "none")): is tidemark run streaming into this index?")
            }
            try await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(50))
        }
    }
}

