import Foundation
import Hummingbird
import ServiceLifecycle
import Sync

extension APIServer {
    /// Longest one event stream stays open; the page reconnects (bounds what a forgotten tab holds).
    static let eventStreamLifetime: Duration = .seconds(600)

    /// `GET /api/events`: server-sent events, one `update` event every ``Configuration/eventInterval``
    /// with the status report and the most recent jobs (progress, rate, ETA). Ends on graceful
    /// shutdown, when the client goes away, or after ``eventStreamLifetime``.
    func addEventRoutes(to router: Router<BasicRequestContext>) {
        router.get("/api/events") { _, _ -> Response in
            _ = try self.runtime()
            let interval = self.configuration.eventInterval
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody { writer in
                    let deadline = ContinuousClock.now + Self.eventStreamLifetime
                    try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                    while !Task.isCancelled && !Task.isShuttingDownGracefully && ContinuousClock.now < deadline {
                        let payload = try await self.eventPayload()
                        try await writer.write(ByteBuffer(string: "event: update\ndata: \(payload)\n\n"))
                        do {
                            try await Task.sleep(for: interval)
                        } catch {
                            break
                        }
                    }
                    try await writer.finish(nil)
                })
        }
    }

    /// One event's data: `{"status": …, "jobs": […]}` on a single line.
    func eventPayload() async throws -> String {
        struct Update: Encodable {
            var status: StatusReport
            var jobs: [JobView]
        }
        let status = try await reporter.report()
        let jobs = try await runtime().store.jobs(entity: nil).prefix(20).map(JobView.init)
        let data = try JSONBody.encoder.encode(Update(status: status, jobs: jobs))
        return String(decoding: data, as: UTF8.self)
    }
}
