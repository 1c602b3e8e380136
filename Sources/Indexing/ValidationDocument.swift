import Postgres

/// A document as validation reads it from the index store: its id and the source values it was
/// rendered from, with its content, content hash, metadata and position when asked for.
public struct ValidationDocument: Sendable, Equatable {
    public var id: String
    /// The source values (``Document/sourceValues``) as the store keeps them: a flat JSON object
    /// `{"column": "text" | null}` (any key order, whitespace allowed).
    public var sourceJSON: String
    public var content: String?
    public var contentHash: String?
    /// The metadata (``Document/metadata``) as a flat JSON object like ``sourceJSON``.
    public var metadataJSON: String?
    /// The commit position of the row version the document reflects.
    public var lsn: LSN?

    public init(id: String, sourceJSON: String, content: String? = nil, contentHash: String? = nil, metadataJSON: String? = nil, lsn: LSN? = nil) {
        self.id = id
        self.sourceJSON = sourceJSON
        self.content = content
        self.contentHash = contentHash
        self.metadataJSON = metadataJSON
        self.lsn = lsn
    }
}
