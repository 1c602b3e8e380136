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
    private(set) var reads = ValidationResult.Reads()

    init(store: any IndexStore, entity: EntityMapping, pageSize: Int) {
        self.store = store
        self.entity = entity
        self.pageSize = max(1, pageSize)
        order = KeyOrder(keyTypes: entity.keyTypes, keyCount: entity.keyColumns.count)
        scanner = SourceValueScanner(columns: entity.sourceColumns)
    }

    /// The key texts and row hash of a document; `nil` when its id is no key of the entity.
    /// `hash` is `nil` when its source values do not parse.
    mutating func hash(id: String, sourceJSON: String) -> (key: [String], hash: UInt64?)? {
        guard let key = SourceValueScanner.keyTexts(id, keyCount: entity.keyColumns.count) else { return nil }
        var hash = RowHash()
        for text in key { hash.add(text) }
        return (key, scanner.hash(sourceJSON, into: &hash) ? hash.value : nil)
    }

    /// Whether a document's content and metadata are what its source values render to now (the
    /// current template): a document edited, or rendered by an older template, is not.
    func rendersConsistently(_ document: ValidationDocument) -> Bool {
        let values = FlatJSON.decode(document.sourceJSON)
        guard let rendered = try? entity.document(id: document.id, values: values, lsn: .zero) else { return false }
        if let content = document.content, content != rendered.content { return false }
        if let metadata = document.metadataJSON, FlatJSON.decode(metadata) != rendered.metadata { return false }
        return true
    }

    /// The first pass: the digest of every range (ranges end at `upperBounds`, ascending, and the
    /// last one is open), over every document of the active generation.
    mutating func digests(upperBounds: [[KeyOrder.Part]], checkContent: Bool) async throws -> Pass {
        var pass = Pass(digests: Array(repeating: RangeDigest(), count: upperBounds.count + 1))
        let started = ContinuousClock.now
        defer { reads.seconds += (ContinuousClock.now - started).validationSeconds }
        var after: String?
        while true {
            let page = try await store.validationPage(entity: entity.name, after: after, limit: pageSize, content: checkContent)
            reads.queries += 1
            for document in page {
                reads.rows += 1
                reads.bytes += document.id.utf8.count + document.sourceJSON.utf8.count
                    + (document.content?.utf8.count ?? 0) + (document.metadataJSON?.utf8.count ?? 0)
                pass.documents += 1
                guard let placed = hash(id: document.id, sourceJSON: document.sourceJSON) else {
                    pass.foreignIDs.append(document.id)
                    continue
                }
                let range = KeyOrder.rangeIndex(of: order.key(placed.key), upperBounds: upperBounds)
                guard let hash = placed.hash else {
                    pass.inconsistent.append(document.id)
                    pass.digests[range].add(0)
                    continue
                }
                pass.digests[range].add(hash)
                if checkContent && !rendersConsistently(document) { pass.inconsistent.append(document.id) }
            }
            guard page.count == pageSize, let last = page.last else { return pass }
            after = last.id
        }
    }

    /// The ids of the documents in the ranges `wanted` (indexes into the ranges `upperBounds`
    /// end), by range: a pass over ids only.
    mutating func ids(inRanges wanted: Set<Int>, upperBounds: [[KeyOrder.Part]]) async throws -> [Int: [String]] {
        var found: [Int: [String]] = [:]
        guard !wanted.isEmpty else { return found }
        let started = ContinuousClock.now
        defer { reads.seconds += (ContinuousClock.now - started).validationSeconds }
        var after: String?
        while true {
            let page = try await store.documentIDs(entity: entity.name, after: after, limit: pageSize * 4)
            reads.queries += 1
            for id in page {
                reads.bytes += id.utf8.count
                guard let key = SourceValueScanner.keyTexts(id, keyCount: entity.keyColumns.count) else { continue }
                let range = KeyOrder.rangeIndex(of: order.key(key), upperBounds: upperBounds)
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
        defer { reads.seconds += (ContinuousClock.now - started).validationSeconds }
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
