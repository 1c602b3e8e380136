import Foundation
import Hummingbird
import Indexing
import Sync

extension APIServer {
    /// `GET /api/jobs`, `GET /api/jobs/{id}`, `POST /api/jobs/{id}/{pause|resume|cancel|retry-failed|rollback}`.
    func addJobRoutes(to router: Router<BasicRequestContext>) {
        router.get("/api/jobs") { request, _ -> Response in
            let query = request.uri.queryParameters
            var entity: String?
            if let name = query["entity"].map(String.init) { entity = try self.entity(name).name }
            var status: JobRecord.Status?
            if let text = query["status"].map(String.init) {
                guard let parsed = JobRecord.Status(rawValue: text) else {
                    throw ServerError(
                        .badRequest, "status '\(text)' is not a job status; use one of \(JobRecord.Status.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                status = parsed
            }
            let limit = try Self.integer(query["limit"].map(String.init), name: "limit", range: 1...1_000) ?? 100
            var jobs = try await self.runtime().store.jobs(entity: entity)
            if let status { jobs = jobs.filter { $0.status == status } }
            struct Jobs: Encodable {
                var jobs: [JobView]
            }
            return try JSONBody.response(Jobs(jobs: jobs.prefix(limit).map(JobView.init)))
        }
        router.get("/api/jobs/:id") { _, context -> Response in
            try JSONBody.response(JobView(try await self.jobOperator().job(try context.parameters.require("id"))))
        }
        router.post("/api/jobs/:id/:action") { request, context -> Response in
            let id = try context.parameters.require("id")
            let name = try context.parameters.require("action")
            guard let action = JobOperator.Action(rawValue: name) else {
                throw ServerError(
                    .notFound, "no job action '\(name)'; use one of \(JobOperator.Action.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            try JSONBody.checkKeys(try await JSONBody.object(request) ?? [:], allowed: [])
            let outcome = try await self.jobOperator().perform(action, on: id)
            struct Outcome: Encodable {
                var job: JobView
                var queued: JobView?
                var message: String
            }
            return try JSONBody.response(Outcome(job: JobView(outcome.job), queued: outcome.queued.map(JobView.init), message: outcome.message))
        }
    }

    /// A whole-number query parameter within `range`, or a 400 that says so.
    static func integer(_ text: String?, name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw ServerError(.badRequest, "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound) (got '\(text)')")
        }
        return value
    }
}
