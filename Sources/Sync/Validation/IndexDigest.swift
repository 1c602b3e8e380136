import Foundation
import Indexing
import Postgres

/// The index side of a validation: passes over the documents of an entity's active generation,
/// hashing the source values each one keeps (``RowHash``) and placing it into key ranges by
/// ``KeyOrder``.
///
/// Reads the store in pages (each its own read), so it never holds a read transaction for the
/// length of the entity; memory is bounded by a page and by the ranges.
struct IndexDigest {
    /// A document placed: its id, its key parsed for ordering, its row hash.
    struct Entry: Sendable {
        var id: String
        var key: [KeyOrder.Part]
        var hash: UInt64
    }

    /// What a first pass found.
    struct Pass: Sendable {
        /// One per range.
        var digests: [RangeDigest]
        var documents = 0
        /// Documents whose id is no key of the entity: no row can have them.
        var foreignIDs: [String] = []
        /// Documents whose stored source values do not parse, or whose content or metadata is not
        /// what those values render to.
        var inconsistent: [String] = []
    }

    let store: any IndexStore
    let entity: EntityMapping
    let order: KeyOrder
    let pageSize: Int
    private var scanner: SourceValueScanner
    private var metadataScanner: SourceValueScanner
    private(set) var reads = ValidationResult.Reads()

    init(store: any IndexStore, entity: EntityMapping, pageSize: Int) {
        self.store = store
        self.entity = entity
        self.pageSize = max(1, pageSize)
        order = KeyOrder(keyTypes: entity.keyTypes, keyCount: entity.keyColumns.count)
        scanner = SourceValueScanner(columns: entity.sourceColumns)
        metadataScanner = SourceValueScanner(columns: entity.metadataColumns)
    }

    /// The key texts and row hash of a document; `nil` when its id is no key of the entity.
    /// `hash` is `nil` when its source values do not parse.
    mutating func hash(id: String, sourceJSON: String) -> (key: [String], hash: UInt64?)? {
        guard let key = SourceValueScanner.keyTexts(id, keyCount: entity.keyColumns.count) else { return nil }
        var hash = RowHash()
        for text in key { hash.add(text) }
        return (key, scanner.hash(sourceJSON, into: &hash) ? hash.value : nil)
    }

    /// The row hash of a document whose id is known to be a key (`nil`: its source values do not
    /// parse), without splitting a one-column id.
    private mutating func rowHash(id: String, sourceJSON: String) -> UInt64? {
        var hash = RowHash()
        if entity.keyColumns.count == 1 {
            hash.add(id)
        } else {
            guard let key = SourceValueScanner.keyTexts(id, keyCount: entity.keyColumns.count) else { return nil }
            for text in key { hash.add(text) }
        }
        return scanner.hash(sourceJSON, into: &hash) ? hash.value : nil
    }

    /// Whether a document's content and metadata are what its source values render to now (the
    /// current template): a document edited, or rendered by an older template, is not.
    mutating func rendersConsistently(_ document: ValidationDocument) -> Bool {
        // What EntityMapping.document renders, without hashing the content (the hot path of a pass).
        let values = FlatJSON.decode(document.sourceJSON)
        for column in entity.sourceColumns where values[column] == nil { return false }
        if let content = document.content {
            guard content == entity.template.render(values, booleans: entity.booleanColumns) else { return false }
            // A content hash that is not the content's would make the pipeline misjudge whether to embed.
            if let hash = document.contentHash, hash != EntityMapping.hash(content) { return false }
        }
        if let stored = document.metadataJSON {
            // The metadata values hashed as stored and as the source values say, without building them.
            var expected = RowHash()
            for column in entity.metadataColumns { expected.add(values[column] ?? nil) }
            var found = RowHash()
            guard metadataScanner.hash(stored, into: &found), found == expected else { return false }
        }
        return true
    }

    /// The first pass: the digest of every range of `locator`, over every document of the active
    /// generation.
    mutating func digests(_ locator: RangeLocator, checkContent: Bool) async throws -> Pass {
        var pass = Pass(digests: Array(repeating: RangeDigest(), count: locator.count))
        let started = ContinuousClock.now
        defer { reads.seconds += (ContinuousClock.now - started).inSeconds }
        var after: String?
        while true {
            let page = try await store.validationPage(entity: entity.name, after: after, limit: pageSize, content: checkContent)
            reads.queries += 1
            for document in page {
                pass.documents += 1
                place(document, into: &pass, locator, checkContent: checkContent)
            }
            guard page.count == pageSize, let last = page.last else { return pass }
            after = last.id
        }
    }

    /// Hashes a document read in full into its range's digest (or records it as foreign or
    /// inconsistent).
    private mutating func place(_ document: ValidationDocument, into pass: inout Pass, _ locator: RangeLocator, checkContent: Bool) {
        reads.rows += 1
        reads.bytes += document.id.utf8.count + document.sourceJSON.utf8.count
            + (document.content?.utf8.count ?? 0) + (document.metadataJSON?.utf8.count ?? 0)
        guard let range = locator.range(of: document.id) else {
            pass.foreignIDs.append(document.id)
            return
        }
        guard let hash = rowHash(id: document.id, sourceJSON: document.sourceJSON) else {
            pass.inconsistent.append(document.id)
            pass.digests[range].add(0)
            return
        }
        pass.digests[range].add(hash)
        if checkContent && !rendersConsistently(document) { pass.inconsistent.append(document.id) }
    }

    /// The first pass from the documents' checks (``Indexing/DocumentCheck``): the store digests
    /// each range of `ranges` itself (``IndexStore/checkedDigests(entity:render:ranges:)``), and
    /// only documents without a current check — written before checks existed, rendered under
    /// another template, edited behind the agent's back, or with no valid key — are read and placed
    /// here, as by ``digests(_:checkContent:)``. A document with a current check needs no content
    /// comparison: its content and metadata were rendered from the values its row hash covers, by
    /// the current rendering. `nil` when the store keeps no checks.
    mutating func checkedDigests(_ ranges: [KeyRange], _ locator: RangeLocator, checkContent: Bool) async throws -> Pass? {
        let started = ContinuousClock.now
        defer { reads.seconds += (ContinuousClock.now - started).inSeconds }
        let bounds = ranges.map { OrderKeyRange(lower: $0.lower.map(order.encoded), upper: $0.upper.map(order.encoded)) }
        let render = entity.renderFingerprint
        guard let stored = try await store.checkedDigests(entity: entity.name, render: render, ranges: bounds),
            stored.count == ranges.count + 1, locator.count == ranges.count
        else { return nil }
        reads.queries += (ranges.count + 63) / 64
        reads.bytes += stored.count * 24
        var pass = Pass(digests: Array(repeating: RangeDigest(), count: ranges.count))
        for (index, digest) in stored.enumerated() {
            pass.documents += digest.documents
            let range = index < ranges.count ? bounds[index] : nil
            if range != nil {
                pass.digests[index].count += digest.verified
                pass.digests[index].sum &+= digest.sum
                reads.rows += digest.verified
            }
            guard digest.documents > digest.verified else { continue }
            let unchecked = try await store.uncheckedDocuments(entity: entity.name, render: render, range: range, content: checkContent)
            reads.queries += 1
            for document in unchecked { place(document, into: &pass, locator, checkContent: checkContent) }
        }
        return pass
    }

    /// The ids of the documents in the ranges `wanted` (of `locator`), by range: a pass over ids only.
    mutating func ids(inRanges wanted: Set<Int>, _ locator: RangeLocator) async throws -> [Int: [String]] {
        var found: [Int: [String]] = [:]
        guard !wanted.isEmpty else { return found }
        let started = ContinuousClock.now
        defer { reads.seconds += (ContinuousClock.now - started).inSeconds }
        var after: String?
        while true {
            let page = try await store.documentIDs(entity: entity.name, after: after, limit: pageSize * 4)
            reads.queries += 1
            for id in page {
                reads.bytes += id.utf8.count
                guard let range = locator.range(of: id) else { continue }
                if wanted.contains(range) { found[range, default: []].append(id) }
            }
            guard page.count == pageSize * 4, let last = page.last else { return found }
            after = last
        }
    }

    /// The documents with these ids (those that exist), complete.
    mutating func documents(ids: [String]) async throws -> [String: ValidationDocument] {
        var documents: [String: ValidationDocument] = [:]
        let started = ContinuousClock.now
        defer { reads.seconds += (ContinuousClock.now - started).inSeconds }
        var start = 0
        while start < ids.count {
            let slice = Array(ids[start..<min(start + pageSize, ids.count)])
            start += pageSize
            let page = try await store.validationDocuments(entity: entity.name, ids: slice)
            reads.queries += 1
            for (id, document) in page {
                reads.rows += 1
                reads.bytes += id.utf8.count + document.sourceJSON.utf8.count + (document.content?.utf8.count ?? 0)
                    + (document.metadataJSON?.utf8.count ?? 0)
                documents[id] = document
            }
        }
        return documents
    }

    /// The entries of these documents, sorted by key. Documents whose source values do not parse
    /// get hash 0 (they are re-checked like any other difference).
    mutating func entries(_ documents: some Sequence<ValidationDocument>) -> [Entry] {
        var entries: [Entry] = []
        for document in documents {
            guard let placed = hash(id: document.id, sourceJSON: document.sourceJSON) else { continue }
            entries.append(Entry(id: document.id, key: order.key(placed.key), hash: placed.hash ?? 0))
        }
        entries.sort { KeyOrder.compare($0.key, $1.key) < 0 }
        return entries
    }
}
