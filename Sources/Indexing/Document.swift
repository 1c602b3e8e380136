import Postgres

/// One indexed row: what the index stores for a live row of an entity.
public struct Document: Sendable, Equatable {
    /// Entity name from configuration (e.g. `product`).
    public var entity: String
    /// The row key's text form: the value for a one-column key, a JSON array of the values otherwise.
    public var id: String
    /// The rendered content, as plain text.
    public var content: String
    /// SHA-256 of ``content`` (hex): decides whether an embedding call is needed.
    public var contentHash: String
    /// Metadata columns' values (text form, `nil` for NULL).
    public var metadata: [String: String?]
    /// Values of the columns the template and metadata read, kept so that an update carrying an
    /// unchanged TOAST value can be rendered without re-reading the row.
    public var sourceValues: [String: String?]
    /// The commit LSN of the row version this document reflects.
    public var lsn: LSN
    /// For a partitioned table: the OID (as text) of the leaf partition holding the row, so that a
    /// `TRUNCATE` of that partition removes exactly its documents. `nil` otherwise.
    public var partition: String?
    /// The pieces of ``content`` that are embedded, each with its own vector: one chunk (the whole
    /// content) unless the content is longer than the chunking budget (see `TextChunker`).
    public var chunks: [DocumentChunk]
    /// What validation may trust about the document without reading it (see ``DocumentCheck``);
    /// `nil` when unknown.
    public var check: DocumentCheck?

    public init(
        entity: String, id: String, content: String, contentHash: String, metadata: [String: String?],
        sourceValues: [String: String?], lsn: LSN, partition: String? = nil
    ) {
        self.partition = partition
        self.entity = entity
        self.id = id
        self.content = content
        self.contentHash = contentHash
        self.metadata = metadata
        self.sourceValues = sourceValues
        self.lsn = lsn
        self.chunks = [DocumentChunk(text: content, hash: contentHash)]
    }
}

/// What an index store keeps with each document so that validation can compare a key range of the
/// index with the source inside the store, without reading the documents (`Docs/validation.md`):
///
/// - ``rowHash``: the ``RowHash`` of the key and source values the document was rendered from —
///   what the source side computes for the row;
/// - ``orderKey``: the key encoded by ``KeyOrder/encoded(_:)``, whose byte order places the document
///   into the validator's key ranges;
/// - ``render``: the fingerprint of the rendering (``EntityMapping/renderFingerprint``). Content and
///   metadata were rendered from the source values by that rendering, so a document whose
///   fingerprint is the current one needs no re-render to be known consistent.
///
/// A store clears ``rowHash`` when a document's content, metadata, source values or id are changed
/// by anything but a write that also replaces the check (a trigger), so an edit behind the agent's
/// back sends the document through the full comparison.
public struct DocumentCheck: Sendable, Equatable {
    public var rowHash: Int64
    public var orderKey: [UInt8]
    public var render: Int64

    public init(rowHash: Int64, orderKey: [UInt8], render: Int64) {
        self.rowHash = rowHash
        self.orderKey = orderKey
        self.render = render
    }
}

/// One embedded piece of a document's content.
public struct DocumentChunk: Sendable, Equatable {
    /// The chunk's text (the whole content for a one-chunk document).
    public var text: String
    /// SHA-256 of ``text`` (hex); equals the document's content hash for a one-chunk document. A
    /// chunk whose hash and model are stored already keeps its stored vector: no embedding call.
    public var hash: String

    public init(text: String, hash: String) {
        self.text = text
        self.hash = hash
    }
}

extension Document {
    /// The document's entity and id.
    public var key: DocumentKey { DocumentKey(entity: entity, id: id) }
}

/// What the index already holds for a document, to decide what work a change needs.
public struct StoredDocumentState: Sendable, Equatable {
    public var contentHash: String
    public var model: String
    public var sourceValues: [String: String?]
    public var lsn: LSN
    /// The leaf partition the stored document's row was in (see ``Document/partition``).
    public var partition: String?
    /// Hashes of the stored chunks, in order (`[contentHash]` for a one-chunk document).
    public var chunkHashes: [String]
    /// Whether the stored document is the row's latest known version. `false` when a later change of
    /// the row failed (it is in the dead letters): its source values must then not stand in for
    /// unchanged TOAST values, since the row has moved on.
    public var isLatest: Bool

    public init(
        contentHash: String, model: String, sourceValues: [String: String?], lsn: LSN, partition: String? = nil, isLatest: Bool = true,
        chunkHashes: [String]? = nil
    ) {
        self.chunkHashes = chunkHashes ?? [contentHash]
        self.partition = partition
        self.contentHash = contentHash
        self.model = model
        self.sourceValues = sourceValues
        self.lsn = lsn
        self.isLatest = isLatest
    }
}

/// A document ready to store: the document plus one vector per chunk, where `nil` keeps the stored
/// vector of a chunk with the same hash and model (its text did not change).
public struct EmbeddedDocument: Sendable {
    public var document: Document
    /// One entry per ``Document/chunks`` entry.
    public var vectors: [[Float]?]
    public var model: String

    public init(document: Document, vectors: [[Float]?], model: String) {
        self.document = document
        self.vectors = vectors
        self.model = model
    }

    /// A one-chunk document with its vector (`nil`: keep the stored one).
    public init(document: Document, vector: [Float]?, model: String) {
        self.init(document: document, vectors: Array(repeating: vector, count: max(1, document.chunks.count)), model: model)
    }

    /// Whether every chunk has its vector (none is to be taken from the store).
    public var isComplete: Bool { vectors.allSatisfy { $0 != nil } }
}

/// A row that could not be rendered, embedded or stored, kept with its error so it can be retried.
public struct DeadLetter: Sendable, Equatable, Codable {
    public var entity: String
    public var id: String
    /// `render`, `reread` (an unchanged TOAST value could not be read again), `embed` or `store`.
    public var stage: String
    public var error: String
    public var lsn: LSN
    public var attempts: Int
    /// Unix seconds.
    public var firstFailedAt: Double
    public var lastFailedAt: Double

    public init(entity: String, id: String, stage: String, error: String, lsn: LSN, attempts: Int = 1, firstFailedAt: Double, lastFailedAt: Double) {
        self.entity = entity
        self.id = id
        self.stage = stage
        self.error = error
        self.lsn = lsn
        self.attempts = attempts
        self.firstFailedAt = firstFailedAt
        self.lastFailedAt = lastFailedAt
    }
}

/// One unit of index work, applied atomically with a checkpoint.
public struct IndexBatch: Sendable {
    /// Documents to insert or replace.
    public var upserts: [EmbeddedDocument] = []
    /// Documents to remove: entity → ids.
    public var deletes: [String: [String]] = [:]
    /// Entities whose every document is removed (TRUNCATE), before the upserts of this batch.
    public var truncates: [String] = []
    /// Partitions whose documents are removed (TRUNCATE of one partition): entity → partition OIDs,
    /// after ``truncates`` and before the deletes and upserts of this batch.
    public var partitionTruncates: [String: [String]] = [:]
    /// Rows that failed, to record.
    public var deadLetters: [DeadLetter] = []
    /// Keys that succeeded and so leave the dead-letter list: entity → ids.
    public var resolved: [String: [String]] = [:]
    /// After a full reload: remove documents of the entity that reflect a position before this one
    /// (their rows no longer exist), in the same transaction.
    public var sweepBefore: [String: LSN] = [:]
    /// Job rows to write in the same transaction (progress that must match the documents).
    public var jobs: [JobRecord] = []
    /// Documents for one generation only (a rebuild's chunks), written before ``upserts``.
    public var targetedUpserts: [Int: [EmbeddedDocument]] = [:]
    /// Remove documents of one generation older than a position (end of a rebuild).
    public var generationSweeps: [String: (generation: Int, before: LSN)] = [:]
    /// New active and maintained generations of entities; documents of other generations are dropped.
    public var generationChanges: [String: GenerationChange] = [:]

    public init() {}

    public var isEmpty: Bool {
        upserts.isEmpty && deletes.isEmpty && truncates.isEmpty && partitionTruncates.isEmpty && deadLetters.isEmpty && resolved.isEmpty && sweepBefore.isEmpty && jobs.isEmpty && targetedUpserts.isEmpty && generationSweeps.isEmpty && generationChanges.isEmpty
    }
}

/// Which generation of an entity's documents answers searches, and which ones the pipeline keeps current.
public struct GenerationChange: Sendable, Equatable {
    public var active: Int
    /// Includes `active`; the others are a rebuild in progress or the previous generation kept for rollback.
    public var maintained: [Int]

    public init(active: Int, maintained: [Int]) {
        self.active = active
        self.maintained = maintained
    }
}
