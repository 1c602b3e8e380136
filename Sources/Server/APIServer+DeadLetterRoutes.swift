import Foundation
import Hummingbird
import Indexing
import Sync

extension APIServer {
    /// `GET /api/dead-letters` and `POST /api/dead-letters/retry`.
    func addDeadLetterRoutes(to router: Router<BasicRequestContext>) {
        router.get("/api/dead-letters") { request, _ -> Response in
            var entity: String?
            if let name = request.uri.queryParameters["entity"].map(String.init) { entity = try self.entity(name).name }
            let letters = try await self.runtime().store.deadLetters(entity: entity)
            struct Letters: Encodable {
                var deadLetters: [DeadLetterView]
            }
            return try JSONBody.response(Letters(deadLetters: letters.map(DeadLetterView.init)))
        }
        router.post("/api/dead-letters/retry") { request, _ -> Response in
            let body = try await JSONBody.object(request) ?? [:]
            try JSONBody.checkKeys(body, allowed: ["entity", "ids"])
            var entity: String?
            if let value = body["entity"], !(value is NSNull) {
                guard let name = value as? String else { throw ServerError(.badRequest, "'entity' must be a string") }
                entity = try self.entity(name).name
            }
            let ids = try JSONBody.ids(body["ids"], field: "ids").map(Set.init)
            if ids != nil && entity == nil { throw ServerError(.badRequest, "'ids' needs 'entity' (ids are per entity)") }
            var letters = try await self.runtime().store.deadLetters(entity: entity)
            if let ids { letters = letters.filter { ids.contains($0.id) } }
            // The same path as `tidemark dead-letters --retry`: an ids job per entity, run by the agent in stream order.
            let jobs = letters.isEmpty ? [] : try await DeadLetterRetry.queue(letters, store: try self.runtime().store)
            struct Retry: Encodable {
                var jobs: [JobView]
                var message: String
            }
            let message = jobs.isEmpty ? "no dead letters to retry" : "queued \(jobs.count) job(s) for \(letters.count) rows; the agent reprocesses them from the source"
            return try JSONBody.response(Retry(jobs: jobs.map(JobView.init), message: message), status: jobs.isEmpty ? .ok : .accepted)
        }
    }
}
