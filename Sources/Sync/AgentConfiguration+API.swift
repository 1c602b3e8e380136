import Foundation

extension AgentConfiguration {
    /// Where the agent serves its HTTP API, admin page and metrics, and who may call it.
    ///
    /// Guarantees enforced by ``ConfigurationLoader``: an address other than loopback is accepted
    /// only with a token (the agent refuses to start without one); the token is read from an
    /// environment variable or a file, never from the configuration file, and never printed.
    public struct API: Sendable, Equatable {
        /// Serve the API at all. Default `true`.
        public var enabled = true
        /// Address to bind. Default `127.0.0.1` (loopback).
        public var host = "127.0.0.1"
        /// Port to bind; 0 picks a free one. Default 7601.
        public var port = 7601
        /// The bearer token callers present, if one is configured (`api.token_env`, `api.token_file`,
        /// or `TIDEMARK_API_TOKEN`). Never printed: ``description`` and logs show `set` or `none`.
        public var token: String?
        /// `/readyz` answers 503 while the slot's confirmed position is more than this many bytes
        /// behind the server's WAL. Default 1 GiB.
        public var readyMaxLagBytes: Int64 = 1 << 30
        /// `/readyz` answers 503 while the replication lag is longer than this. Default 5 min.
        public var readyMaxLag: Duration = .seconds(300)

        public init() {}

        /// `host:port` as configured (`api.listen`).
        public var listen: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        /// Whether ``host`` is the loopback address (`127.0.0.1`, `::1`, `localhost`): only this
        /// machine can connect, so reads may be served without a token. Any other address —
        /// other 127.x addresses included, which containers and port forwarders use to publish a
        /// service — counts as exposed.
        public var isLoopback: Bool { Self.isLoopback(host) }

        public static func isLoopback(_ host: String) -> Bool {
            host == "127.0.0.1" || host == "localhost" || host == "::1"
        }

        /// Parses `host:port`, `[v6]:port`, `host` or `:port` (the missing part keeps its default).
        public static func parseListen(_ text: String) -> (host: String, port: Int)? {
            var host = "127.0.0.1"
            var portText: Substring = "7601"
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("[") {
                guard let close = trimmed.firstIndex(of: "]") else { return nil }
                host = String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])
                let rest = trimmed[trimmed.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":") else { return nil }
                    portText = rest.dropFirst()
                }
            } else if let colon = trimmed.lastIndex(of: ":") {
                let hostPart = trimmed[..<colon]
                guard !hostPart.contains(":") else { return nil }
                if !hostPart.isEmpty { host = String(hostPart) }
                portText = trimmed[trimmed.index(after: colon)...]
            } else if !trimmed.isEmpty {
                host = trimmed
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" }),
                let port = Int(portText), (0...65_535).contains(port)
            else { return nil }
            return (host, port)
        }
    }
}
