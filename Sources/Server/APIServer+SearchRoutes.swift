import Foundation
import Hummingbird
import Indexing
import Sync

extension APIServer {
    /// `GET /api/ai/search` and `GET /api/ai/documents/{entity}/{id}`.
    func addSearchRoutes(to router: Router<BasicRequestContext>) {
        router.get("/api/ai/search") { request, _ -> Response in
            let query = request.uri.queryParameters
            guard let entityName = query["entity"].map(String.init), !entityName.isEmpty else {
                throw ServerError(.badRequest, "entity is missing: GET /api/ai/search?entity=product&q=desk+lamp")
            }
            let entity = try self.entity(entityName).name
            guard let text = query["q"].map(String.init), !text.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ServerError(.badRequest, "q is missing or empty: the text to search for")
            }
            guard text.utf8.count <= 8_192 else { throw ServerError(.badRequest, "q is longer than 8192 bytes") }
            let k = try Self.integer(query["k"].map(String.init), name: "k", range: 1...1_000) ?? 10
            var filter: [String: String] = [:]
            for (key, value) in query where key.hasPrefix("filter.") {
                let name = String(key.dropFirst("filter.".count))
                guard !name.isEmpty else { throw ServerError(.badRequest, "filter needs a metadata key: filter.category_id=7") }
                filter[name.removingPercentEncoding ?? name] = String(value)
            }
            let runtime = try self.runtime()
            let vector: [Float]
            do {
                vector = try await runtime.embedder.embed([text])[0]
            } catch {
                throw ServerError(.unavailable, "the embedder cannot embed the query right now: \(error)", underlying: error)
            }
            let started = ContinuousClock.now
            let hits = try await runtime.store.search(entity: entity, vector: vector, k: k, filter: filter)
            struct Hit: Encodable {
                var id: String
                var score: Double
                var content: String
                var metadata: [String: String?]
            }
            struct Hits: Encodable {
                var entity: String
                var query: String
                var k: Int
                var tookMs: Double
                var hits: [Hit]
            }
            let took = Double(MetricsRecorder.nanoseconds(ContinuousClock.now - started)) / 1_000_000
            return try JSONBody.response(Hits(
                entity: entity, query: text, k: k, tookMs: (took * 100).rounded() / 100,
                hits: hits.map { Hit(id: $0.id, score: Double($0.score), content: $0.content, metadata: $0.metadata) }))
        }
        router.get("/api/ai/documents/:entity/:id") { _, context -> Response in
            let entity = try self.entity(try context.parameters.require("entity")).name
            let raw = try context.parameters.require("id")
            let id = raw.removingPercentEncoding ?? raw
            guard let document = try await self.runtime().store.document(entity: entity, id: id) else {
                throw ServerError(.notFound, "entity \(entity) has no document '\(id)' (composite keys are JSON arrays, URL-encoded)")
            }
            return try JSONBody.response(document)
        }
    }
}
