import AsyncHTTPClient
import Foundation
import Indexing
import Logging
import NIOCore
import Sync

/// A client of a running agent's API, for the command line: when an agent answers at the
/// configured `api.listen`, `tidemark backfill`, `tidemark job …` and `tidemark dead-letters --retry`
/// go through it (the agent validates and records the request exactly as the store path would).
public struct AgentClient: Sendable {
    public struct Configuration: Sendable {
        /// `http://host:port` of the agent.
        public var baseURL: String
        /// Sent as `Authorization: Bearer …` when set.
        public var token: String?
        /// Longest a call may take. Default 10 s.
        public var timeout: Duration = .seconds(10)
        /// Longest ``AgentClient/isUp(slot:entities:)`` waits for a listening agent's answer.
        /// Default 10 s.
        public var probeTimeout: Duration = .seconds(10)

        public init(baseURL: String, token: String? = nil) {
            self.baseURL = baseURL
            self.token = token
        }

        /// The address of the configuration's `api` section, as a client reaches it (a wildcard
        /// bind address is reached over loopback).
        public init(api: AgentConfiguration.API) {
            var host = api.host
            if host == "0.0.0.0" { host = "127.0.0.1" }
            if host == "::" { host = "::1" }
            self.init(baseURL: host.contains(":") ? "http://[\(host)]:\(api.port)" : "http://\(host):\(api.port)", token: api.token)
        }
    }

    /// What a job action answered.
    public struct ActionResult: Sendable {
        public var message: String
        public var queued: JobRecord?
    }

    public let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Whether the agent of replication slot `slot` with these `entities` answers `/healthz` (another
    /// agent at the address does not count).
    ///
    /// Nothing listening is known at once (a refused connection, checked before any HTTP). An agent
    /// that listens answers, but a busy one (a large backfill on a small machine) may take seconds,
    /// and taking it for absent would send the command to the index file behind the agent's back,
    /// where no agent ever runs the job: its answer is awaited for up to
    /// ``Configuration/probeTimeout``.
    public func isUp(slot: String, entities: [String]) async -> Bool {
        guard let url = URL(string: configuration.baseURL), let host = url.host, let port = url.port,
            TCPProbe.accepts(host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
        else { return false }
        var request = HTTPClientRequest(url: configuration.baseURL + "/healthz")
        request.method = .GET
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(configuration.probeTimeout.components.seconds)),
            let body = try? await response.body.collect(upTo: 1 << 16), response.status == .ok,
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        else { return false }
        return object["slot"] as? String == slot && (object["entities"] as? [String]).map(Set.init) == Set(entities)
    }

    /// `POST /api/ai/bulk-sync/index/{entity}` (or `/rebuild/{entity}`).
    public func queue(entity: String, ids: [String], rebuild: Bool) async throws -> JobRecord {
        let path = (rebuild ? "/api/ai/bulk-sync/rebuild/" : "/api/ai/bulk-sync/index/") + Self.segment(entity)
        let body: [String: Any]? = ids.isEmpty ? nil : ["ids": ids]
        return try Self.job(try await call("POST", path, body: body))
    }

    /// `GET /api/ai/bulk-sync/status/{jobId}`.
    public func job(_ id: String) async throws -> JobRecord {
        try Self.job(try await call("GET", "/api/ai/bulk-sync/status/" + Self.segment(id)))
    }

    /// `POST /api/jobs/{id}/{action}`.
    public func perform(_ action: JobOperator.Action, on id: String) async throws -> ActionResult {
        let answer = try await call("POST", "/api/jobs/\(Self.segment(id))/\(action.rawValue)")
        let queued = try (answer["queued"] as? [String: Any]).map(Self.job)
        return ActionResult(message: answer["message"] as? String ?? "\(id): \(action.rawValue) done", queued: queued)
    }

    /// `POST /api/dead-letters/retry`; the queued jobs.
    public func retryDeadLetters(entity: String?) async throws -> [JobRecord] {
        let answer = try await call("POST", "/api/dead-letters/retry", body: entity.map { ["entity": $0] })
        return try (answer["jobs"] as? [[String: Any]] ?? []).map(Self.job)
    }

    private func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: configuration.baseURL + path)
        request.method = .init(rawValue: method)
        if let token = configuration.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            let data = try JSONSerialization.data(withJSONObject: body)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(configuration.timeout.components.seconds))
        } catch {
            throw ServerError(.unavailable, "the agent at \(configuration.baseURL) does not answer: \(error)", underlying: error)
        }
        let buffer = try await response.body.collect(upTo: 16 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
        guard (200..<300).contains(Int(response.status.code)) else {
            let error = object["error"] as? [String: Any]
            let message = error?["message"] as? String ?? "HTTP \(response.status.code)"
            throw ServerError(.init(error?["code"] as? String ?? "http_\(response.status.code)"), message)
        }
        return object
    }

    private static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? text
    }

    /// A job of the API (``JobView``) as the command line's progress display needs it.
    static func job(_ object: [String: Any]) throws -> JobRecord {
        guard let id = object["id"] as? String, let entity = object["entity"] as? String,
            let kind = (object["kind"] as? String).flatMap(JobRecord.Kind.init), let status = (object["status"] as? String).flatMap(JobRecord.Status.init)
        else { throw ServerError(.internalError, "the agent answered a job this client does not understand") }
        var job = JobRecord(id: id, entity: entity, kind: kind, status: status, createdAt: object["created_at"] as? Double ?? 0)
        job.estimatedTotal = object["estimated_total"] as? Int ?? 0
        job.processed = object["processed"] as? Int ?? 0
        job.succeeded = object["succeeded"] as? Int ?? 0
        job.failed = object["failed"] as? Int ?? 0
        job.rate = object["rate"] as? Double ?? 0
        job.lastError = object["last_error"] as? String
        if let count = object["ids_count"] as? Int { job.ids = Array(repeating: "", count: count) }
        return job
    }
}
