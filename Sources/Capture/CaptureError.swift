/// The one error type of the `Capture` module.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    /// Stable kinds of capture failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Bytes from the replication stream do not form a valid pgoutput or walsender message.
        public static let malformedMessage = Code("malformed_message")
        /// A change names a relation the stream never described (a protocol violation).
        public static let unknownRelation = Code("unknown_relation")
        /// The publication or slot is missing, of the wrong plugin, or cannot be created.
        public static let replicationSetup = Code("replication_setup")
        /// The replication slot was invalidated or dropped: the WAL it needed is gone.
        public static let slotLost = Code("slot_lost")
        /// The server is misconfigured for logical replication (e.g. `wal_level` is not `logical`).
        public static let serverConfiguration = Code("server_configuration")
        /// Spilling a large transaction to disk failed.
        public static let spool = Code("spool")
        /// A catalog query failed or returned something unexpected.
        public static let catalog = Code("catalog")
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
