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

/// A key range in ``KeyOrder/encoded(_:)`` bytes: keys above `lower` (exclusive) up to `upper`
/// (inclusive); `nil` is open.
public struct OrderKeyRange: Sendable, Equatable {
    public var lower: [UInt8]?
    public var upper: [UInt8]?

    public init(lower: [UInt8]?, upper: [UInt8]?) {
        self.lower = lower
        self.upper = upper
    }
}

/// A key range's digest as an index store computes it from the documents' checks
/// (``IndexStore/checkedDigests(entity:render:ranges:)``).
public struct CheckedDigest: Sendable, Equatable {
    /// Documents in the range.
    public var documents: Int
    /// Of those, documents with a complete check under the current fingerprint.
    public var verified: Int
    /// The wrapping sum of the verified documents' row hashes.
    public var sum: UInt64

    public init(documents: Int, verified: Int, sum: UInt64) {
        self.documents = documents
        self.verified = verified
        self.sum = sum
    }

    /// Combines the two halves a store sums separately (`h >> 32` arithmetic, `h & 0xFFFFFFFF`),
    /// which no 64-bit accumulator overflows, into the wrapping sum of the hashes.
    public static func sum(high: Int64, low: Int64) -> UInt64 {
        (UInt64(bitPattern: high) << 32) &+ UInt64(bitPattern: low)
    }
}
