/// The one error type of the `Indexing` module.
public struct IndexingError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A content template does not parse or names something that is not a column.
        public static let template = Code("template")
        /// A row could not be rendered into a document.
        public static let render = Code("render")
        /// The embedding provider failed or returned something unusable.
        public static let embedding = Code("embedding")
        /// The index store could not be opened, read or written.
        public static let store = Code("store")
        /// A search request is invalid (unknown entity, wrong dimensions, bad filter).
        public static let search = Code("search")
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let underlying { text += " [caused by: \(underlying)]" }
        return text
    }
}
