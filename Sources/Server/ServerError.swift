import Hummingbird

/// The one error type of the `Server` module: a code, the HTTP status it answers with, and a
/// message a person can act on. Every failure of a request becomes one of these before it is
/// rendered as `{"error": {"code", "message"}}`.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The request is malformed: a body that is not the documented JSON, a bad parameter. 400.
        public static let badRequest = Code("bad_request")
        /// No token, or a wrong one, where one is needed. 401.
        public static let unauthorized = Code("unauthorized")
        /// No such entity, job, document or path. 404.
        public static let notFound = Code("not_found")
        /// The path exists, but not for this method. 405.
        public static let methodNotAllowed = Code("method_not_allowed")
        /// The request conflicts with the current state (a job already finished). 409.
        public static let conflict = Code("conflict")
        /// The body is larger than the API accepts. 413.
        public static let contentTooLarge = Code("content_too_large")
        /// The feature is not in this build yet (drift validation). 501.
        public static let notImplemented = Code("not_implemented")
        /// The agent is starting or the source is unreachable: try again shortly. 503.
        public static let unavailable = Code("unavailable")
        /// Anything else (a bug, or an I/O failure of the store). 500.
        public static let internalError = Code("internal_error")
        /// The server could not start (the address is taken, a bad configuration).
        public static let startup = Code("startup")
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// The HTTP status the code answers with.
    public var status: HTTPResponse.Status {
        switch code {
        case .badRequest: .badRequest
        case .unauthorized: .unauthorized
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .conflict: .conflict
        case .contentTooLarge: .contentTooLarge
        case .notImplemented: .notImplemented
        case .unavailable: .serviceUnavailable
        default: .internalServerError
        }
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let underlying { text += " [caused by: \(underlying)]" }
        return text
    }
}
