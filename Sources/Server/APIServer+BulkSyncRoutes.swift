import Capture
import Foundation
import Hummingbird
import Sync

extension APIServer {
    /// The paths of the bulk-sync proposal (kept as they were, so its runbooks work as written).
    func addBulkSyncRoutes(to router: Router<BasicRequestContext>) {
        let group = router.group("/api/ai/bulk-sync")
        group.get("/discover") { _, _ -> Response in
            let configuration = self.agent.configuration
            let discovery = CatalogDiscovery(configuration: .init(publication: configuration.source.publication), logger: self.logger)
            let tables: [TableDescription]
            do {
                tables = try await self.probe.with { try await discovery.discover(on: $0) }
            } catch {
                throw ServerError(.unavailable, "cannot read the source's catalog: \(error)", underlying: error)
            }
            let entityByTable = Dictionary(configuration.entities.map { ($0.table, $0.name) }, uniquingKeysWith: { first, _ in first })
            struct Discovery: Encodable {
                var tables: [DiscoveredTable]
            }
            return try JSONBody.response(Discovery(tables: tables.map { DiscoveredTable($0, entity: entityByTable[$0.table]) }))
        }
        group.post("/index/:entity") { request, context -> Response in
            let entity = try self.entity(try context.parameters.require("entity")).name
            let body = try await JSONBody.object(request) ?? [:]
            try JSONBody.checkKeys(body, allowed: ["ids"])
            let ids = try JSONBody.ids(body["ids"], field: "ids") ?? []
            let job = try await self.jobOperator().queue(entity: entity, ids: ids)
            return try JSONBody.response(JobView(job), status: .accepted)
        }
        group.post("/rebuild/:entity") { request, context -> Response in
            let entity = try self.entity(try context.parameters.require("entity")).name
            try JSONBody.checkKeys(try await JSONBody.object(request) ?? [:], allowed: [])
            let job = try await self.jobOperator().queue(entity: entity, rebuild: true)
            return try JSONBody.response(JobView(job), status: .accepted)
        }
        group.get("/status/:jobId") { _, context -> Response in
            let job = try await self.jobOperator().job(try context.parameters.require("jobId"))
            return try JSONBody.response(JobView(job))
        }
        group.post("/validate/:entity") { request, context -> Response in
            let entity = try self.entity(try context.parameters.require("entity")).name
            try JSONBody.checkKeys(try await JSONBody.object(request) ?? [:], allowed: [])
            return try JSONBody.response(try await self.requireValidator().validate(entity: entity))
        }
        group.post("/validate-all") { request, _ -> Response in
            try JSONBody.checkKeys(try await JSONBody.object(request) ?? [:], allowed: [])
            let validator = try self.requireValidator()
            var reports: [DriftReport] = []
            for entity in self.agent.configuration.entities { reports.append(try await validator.validate(entity: entity.name)) }
            struct Reports: Encodable {
                var reports: [DriftReport]
            }
            return try JSONBody.response(Reports(reports: reports))
        }
        group.post("/fix-drift/:entity") { request, context -> Response in
            let entity = try self.entity(try context.parameters.require("entity")).name
            try JSONBody.checkKeys(try await JSONBody.object(request) ?? [:], allowed: [])
            return try JSONBody.response(try await self.requireValidator().fixDrift(entity: entity), status: .accepted)
        }
    }

    func requireValidator() throws -> any DriftValidation { validator }
}
