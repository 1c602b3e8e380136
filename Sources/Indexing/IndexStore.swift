import Postgres

/// A search hit: a document, scored by its best chunk.
public struct SearchHit: Sendable, Equatable {
    public var id: String
    /// Cosine similarity in [-1, 1] of the best-matching chunk.
    public var score: Float
    public var content: String
    public var metadata: [String: String?]
    /// Position of the best-matching chunk (0 for one-chunk documents).
    public var chunk: Int = 0
    /// The best-matching chunk's text when the document has several chunks; `nil` otherwise.
    public var chunkText: String?

    public init(id: String, score: Float, content: String, metadata: [String: String?], chunk: Int = 0, chunkText: String? = nil) {
        self.id = id
        self.score = score
        self.content = content
        self.metadata = metadata
        self.chunk = chunk
        self.chunkText = chunkText
    }
}

/// A stored document as exported for scripting and checks.
public struct ExportedDocument: Sendable, Equatable, Codable {
    public var id: String
    public var content: String
    public var contentHash: String
    public var metadata: [String: String?]
    public var model: String
    public var lsn: String
    /// The chunks' texts when the content was split into several; `nil` for one-chunk documents.
    public var chunks: [String]?

    public init(id: String, content: String, contentHash: String, metadata: [String: String?], model: String, lsn: String, chunks: [String]? = nil) {
        self.id = id
        self.content = content
        self.contentHash = contentHash
        self.metadata = metadata
        self.model = model
        self.lsn = lsn
        self.chunks = chunks
    }

    enum CodingKeys: String, CodingKey {
        case id, content, metadata, model, lsn, chunks
        case contentHash = "content_hash"
    }
}

/// A document's entity and id.
public struct DocumentKey: Sendable, Hashable {
    public var entity: String
    public var id: String

    public init(entity: String, id: String) {
        self.entity = entity
        self.id = id
    }
}

/// Thrown by ``IndexStore/apply(_:state:)`` when upserts without a vector (content and model
/// unchanged, "keep the stored vector") find no stored vector to keep: the document was deleted or
/// truncated after the pipeline looked. Nothing of the batch was written; the pipeline embeds these
/// documents and applies the batch again.
public struct MissingStoredVectors: Error, Sendable, CustomStringConvertible {
    public var documents: Set<DocumentKey>

    public init(documents: Set<DocumentKey>) { self.documents = documents }

    public var description: String { "\(documents.count) upserts found no stored vector to keep" }
}

/// Where documents, vectors, the checkpoint and dead letters live.
///
/// The one guarantee everything else builds on: ``apply(_:state:)`` writes a batch and the state
/// entries (the checkpoint among them) in one transaction: after a crash, either both are there or
/// neither is.
public protocol IndexStore: Sendable {
    /// Writes the batch and `state` (e.g. `checkpoint` → LSN) atomically.
    ///
    /// An upsert never silently writes nothing: one without a vector that finds no stored document
    /// with the same content hash and model makes the whole call throw ``MissingStoredVectors``,
    /// writing nothing.
    func apply(_ batch: IndexBatch, state: [String: String]) async throws
    /// A state entry written by ``apply(_:state:)``.
    func state(_ key: String) async throws -> String?
    /// What is stored for these ids of `entity` (missing ids are absent from the result); a state is
    /// not ``StoredDocumentState/isLatest`` when the id has a dead letter.
    func storedStates(entity: String, ids: [String]) async throws -> [String: StoredDocumentState]
    /// The `k` documents most similar to `vector` (cosine), optionally only those whose metadata
    /// equals every entry of `filter`.
    func search(entity: String, vector: [Float], k: Int, filter: [String: String]) async throws -> [SearchHit]
    /// Every document of `entity`, ordered by id, in pages.
    func export(entity: String, after: String?, limit: Int) async throws -> [ExportedDocument]
    /// One document of `entity` (active generation) by id, `nil` when there is none. A default
    /// implementation pages through ``export(entity:after:limit:)``; stores override it with a lookup.
    func document(entity: String, id: String) async throws -> ExportedDocument?
    /// Number of documents of `entity`.
    func count(entity: String) async throws -> Int
    /// Dead letters, optionally of one entity.
    func deadLetters(entity: String?) async throws -> [DeadLetter]
    /// Dead letters of an entity recorded at or after `lsn` (the failures of a job).
    func deadLetterCount(entity: String, since lsn: LSN) async throws -> Int

    // MARK: Generations

    /// The generation search and export read for `entity` (0 until a rebuild switches).
    func activeGeneration(_ entity: String) async throws -> Int
    /// The generations the pipeline currently writes for `entity`: the active one, a rebuild in
    /// progress, the previous one kept for rollback.
    func generations(_ entity: String) async throws -> [Int]

    // MARK: Jobs

    /// Creates or updates a job outside a batch (queueing, retrying, final states); unlike the
    /// progress records of ``IndexBatch/jobs``, it may change the status of a finished job.
    func saveJob(_ job: JobRecord) async throws
    /// Records what the operator wants (pause, resume, cancel); `false` when there is no such job.
    func setJobControl(_ id: String, _ control: JobRecord.Control) async throws -> Bool
    /// One job, with the operator's control.
    func job(_ id: String) async throws -> JobRecord?
    /// Jobs, newest first, optionally of one entity.
    func jobs(entity: String?) async throws -> [JobRecord]
    /// Jobs that can still do work (queued, running, paused), newest first.
    func activeJobs() async throws -> [JobRecord]

    // MARK: Search index

    /// Makes searches of `entity`'s vectors of `dimensions` floats fast (an approximate nearest
    /// neighbour index) unless they are already; called once an entity's load completes, since
    /// building such an index over a loaded table is much faster than growing it row by row. Stores
    /// whose search needs no such index do nothing (the default).
    func ensureSearchIndex(entity: String, dimensions: Int) async throws
    // MARK: Validation (`Docs/validation.md`)

    /// One page of the documents of `entity`'s *active* generation, for a pass over all of them:
    /// those whose id is greater than `after` (`nil`: from the first), ascending by id in the byte
    /// order of its UTF-8 text (SQL `COLLATE "C"`), at most `limit`. Each has ``ValidationDocument/id``
    /// and ``ValidationDocument/sourceJSON``; with `content`, also content, content hash and metadata
    /// (``ValidationDocument/lsn`` may be left `nil`). A pass that pages with the last id of each
    /// page as the next `after` meets every document that exists throughout it exactly once; each
    /// page may be read in its own transaction (documents written meanwhile may be met or not).
    func validationPage(entity: String, after: String?, limit: Int, content: Bool) async throws -> [ValidationDocument]
    /// The ids of the documents of `entity`'s active generation greater than `after`, ascending in
    /// the same byte order, at most `limit` (a pass like ``validationPage(entity:after:limit:content:)``
    /// that reads ids only).
    func documentIDs(entity: String, after: String?, limit: Int) async throws -> [String]
    /// The documents of `entity`'s active generation with these ids, complete (source values,
    /// content, content hash, metadata and ``ValidationDocument/lsn``), by id; ids without a
    /// document are absent. Read in one transaction.
    func validationDocuments(entity: String, ids: [String]) async throws -> [String: ValidationDocument]
    /// The digests of key ranges of `entity`'s active generation computed inside the store from the
    /// documents' ``DocumentCheck``s, without reading the documents: for each range (bounds in
    /// ``KeyOrder/encoded(_:)`` bytes, lower exclusive, upper inclusive, `nil` open), how many
    /// documents have an order key in it, and of those whose check is complete with `render` as its
    /// fingerprint (``CheckedDigest/verified``), the count and the wrapping sum of their row hashes.
    /// The last element counts the documents with no order key (`documents` only). `nil` when the
    /// store keeps no checks: the validator then reads every document (``validationPage(entity:after:limit:content:)``).
    /// Ranges may be read in separate transactions.
    func checkedDigests(entity: String, render: Int64, ranges: [OrderKeyRange]) async throws -> [CheckedDigest]?
    /// The documents of `entity`'s active generation in `range` (`nil`: those with no order key)
    /// whose check is missing or has another fingerprint than `render`: what
    /// ``checkedDigests(entity:render:ranges:)`` left out. Each with content, content hash and
    /// metadata when `content`.
    func uncheckedDocuments(entity: String, render: Int64, range: OrderKeyRange?, content: Bool) async throws -> [ValidationDocument]
    /// Creates or replaces a validation record (by ``ValidationRecord/id``).
    func saveValidation(_ record: ValidationRecord) async throws
    /// One validation record.
    func validation(_ id: String) async throws -> ValidationRecord?
    /// Validation records, newest first (by ``ValidationRecord/createdAt``), optionally of one
    /// entity, at most `limit`.
    func validations(entity: String?, limit: Int) async throws -> [ValidationRecord]
    /// Records with status ``ValidationRecord/Status/queued``, oldest first: the requests the
    /// running agent picks up.
    func queuedValidations() async throws -> [ValidationRecord]
}

extension IndexStore {
    public func ensureSearchIndex(entity: String, dimensions: Int) async throws {}

    public func checkedDigests(entity: String, render: Int64, ranges: [OrderKeyRange]) async throws -> [CheckedDigest]? { nil }

    public func uncheckedDocuments(entity: String, render: Int64, range: OrderKeyRange?, content: Bool) async throws -> [ValidationDocument] { [] }

    public func document(entity: String, id: String) async throws -> ExportedDocument? {
        var after: String?
        while true {
            let page = try await export(entity: entity, after: after, limit: 1_000)
            if let found = page.first(where: { $0.id == id }) { return found }
            guard let last = page.last else { return nil }
            after = last.id
        }
    }

    /// Every job, newest first.
    public func jobs() async throws -> [JobRecord] { try await jobs(entity: nil) }
}
