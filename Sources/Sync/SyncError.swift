/// The one error type of the `Sync` module.
public struct SyncError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The configuration file or environment is invalid; the message names the key path.
        public static let configuration = Code("configuration")
        /// The configuration does not match the source database (missing table, column, key).
        public static let schema = Code("schema")
        /// The initial load failed.
        public static let initialLoad = Code("initial_load")
        /// Writing to the index kept failing.
        public static let apply = Code("apply")
        /// A job, entity or document asked for does not exist.
        public static let notFound = Code("not_found")
        /// The request conflicts with the current state (a job already finished, a rebuild under way).
        public static let conflict = Code("conflict")
        /// The request itself is malformed (an empty id list, contradictory options).
        public static let invalidRequest = Code("invalid_request")
        /// A validation or repair could not run (the source cannot hash like the agent, the index did
        /// not catch up, an unknown entity).
        public static let validation = Code("validation")
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
