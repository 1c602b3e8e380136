import Foundation
import Hummingbird
import Sync

extension APIServer {
    /// `/api/status`, `/healthz`, `/readyz`, `/metrics`.
    func addStatusRoutes(to router: Router<BasicRequestContext>) {
        router.get("/api/status") { _, _ -> Response in
            try JSONBody.response(try await self.reporter.report())
        }
        router.get("/healthz") { _, _ -> Response in
            // The slot and entities identify the agent, so a command line never acts through
            // another agent that happens to listen at its configured address.
            struct Health: Encodable {
                var status = "ok"
                var slot: String
                var entities: [String]
            }
            let configuration = self.agent.configuration
            return try JSONBody.response(Health(slot: configuration.source.slot, entities: configuration.entities.map(\.name)))
        }
        router.get("/readyz") { _, _ -> Response in
            let reasons = await self.unreadiness()
            struct Readiness: Encodable {
                var ready: Bool
                var reasons: [String]
            }
            return try JSONBody.response(Readiness(ready: reasons.isEmpty, reasons: reasons), status: reasons.isEmpty ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ -> Response in
            guard let registry = self.configuration.registry else {
                throw ServerError(.notFound, "metrics are not enabled in this server")
            }
            if let metrics = self.metrics, let report = try? await self.reporter.report() { metrics.sample(report) }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16_384)
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }

    /// Why the agent is not ready (empty when it is): it is streaming, the source answers, the slot
    /// exists, is healthy and streamed from, and the lag is under the configured thresholds.
    func unreadiness() async -> [String] {
        var reasons: [String] = []
        let phase = agent.currentProgress.phase
        if agent.runtime == nil || phase != "streaming" { reasons.append("the agent is \(phase), not streaming yet") }
        let report: StatusReport
        do {
            report = try await reporter.report()
        } catch {
            return reasons + ["cannot build the status: \(error)"]
        }
        guard let replication = report.replication else {
            return reasons + [report.sourceError ?? "the source does not answer"]
        }
        if !replication.exists {
            reasons.append("the replication slot \(replication.slot) does not exist")
        } else {
            if replication.walStatus == "lost" { reasons.append("the replication slot \(replication.slot) was invalidated (wal_status lost)") }
            if !replication.active && phase == "streaming" { reasons.append("nothing streams from the replication slot \(replication.slot)") }
        }
        if replication.lagBytes > configuration.readyMaxLagBytes {
            reasons.append("replication lag \(replication.lagBytes) bytes exceeds api.ready_max_lag_bytes (\(configuration.readyMaxLagBytes))")
        }
        let limit = Double(configuration.readyMaxLag.components.seconds)
        if let seconds = replication.lagSeconds, seconds > limit {
            reasons.append("replication lag \(Int(seconds)) s exceeds api.ready_max_lag (\(Int(limit)) s)")
        }
        return reasons
    }
}
