import AsyncHTTPClient
import Foundation
import Indexing
import NIOCore
@testable import Server
import Synchronization
import Testing

@testable import Sync

/// The HTTP API over real HTTP on loopback, against an agent streaming from a live server: every
/// documented path, malformed bodies, unknown entities and jobs, and the token rules.
@Suite struct APITests {
    /// Path templates of Docs/openapi.yaml.
    static func documentedPaths() throws -> [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("Docs/openapi.yaml"), encoding: .utf8)
        var inPaths = false
        var paths: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") { inPaths = true; continue }
            if inPaths, let first = line.first, first != " " && first != "#" { inPaths = false }
            if inPaths, line.hasPrefix("  /"), line.hasSuffix(":") { paths.append(String(line.dropFirst(2).dropLast())) }
        }
        return paths
    }

    /// Records which documented paths a test called.
    final class Coverage: Sendable {
        let paths = Mutex<Set<String>>([])
        func hit(_ template: String) { paths.withLock { _ = $0.insert(template) } }
    }

    func expectError(_ answer: APIHarness.Answer, _ status: Int, _ code: String, _ fragment: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.status == status, "expected \(status), got \(answer.status): \(answer.text)", sourceLocation: sourceLocation)
        #expect(answer.errorCode == code, "expected error code \(code): \(answer.text)", sourceLocation: sourceLocation)
        #expect(!answer.errorMessage.isEmpty, "an error says what to do: \(answer.text)", sourceLocation: sourceLocation)
        if !fragment.isEmpty { #expect(answer.errorMessage.contains(fragment), "\(answer.errorMessage)", sourceLocation: sourceLocation) }
        #expect(answer.headers["content-type"]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    }

    @Test(arguments: LiveServer.all)
    func everyDocumentedPathAnswersAndBadRequestsAre4xx(server: LiveServer) async throws {
        let coverage = Coverage()
        try await withAPI(on: server) { api in
            try await api.waitUntilReady()
            // Status and probes.
            coverage.hit("/healthz")
            let health = try await api.get("/healthz")
            #expect(health.status == 200 && health.json["slot"] as? String == api.agent.configuration.source.slot)
            coverage.hit("/readyz")
            #expect(try await api.get("/readyz").json["ready"] as? Bool == true)
            coverage.hit("/api/status")
            // The report may be up to 250 ms old: wait until it shows the finished load.
            var status = try await api.get("/api/status")
            for _ in 0..<50 where !status.text.contains(#""state":"loaded""#) {
                try await Task.sleep(for: .milliseconds(100))
                status = try await api.get("/api/status")
            }
            #expect(status.status == 200)
            let replication = try #require(status.json["replication"] as? [String: Any], "\(status.text)")
            #expect(replication["exists"] as? Bool == true)
            #expect(replication["lag_bytes"] is Int)
            #expect(replication["retained_bytes"] is Int)
            #expect(replication["server_lsn"] is String && replication["confirmed_lsn"] is String)
            let entities = try #require(status.json["entities"] as? [[String: Any]])
            #expect(entities.first?["documents"] as? Int == 50 && entities.first?["state"] as? String == "loaded", "\(entities)")
            let embedder = try #require(status.json["embedder"] as? [String: Any])
            #expect(embedder["healthy"] as? Bool == true && embedder["model"] as? String == "tidemark-hash-384-v1")

            // Discovery: the table, the keyless one with its reason, and which entity reads what.
            coverage.hit("/api/ai/bulk-sync/discover")
            let discovery = try await api.get("/api/ai/bulk-sync/discover")
            let tables = try #require(discovery.json["tables"] as? [[String: Any]], "\(discovery.text)")
            let products = try #require(tables.first { $0["table"] as? String == "public.products" })
            #expect(products["entity"] as? String == "product" && products["syncable"] as? Bool == true && products["published"] as? Bool == true)
            let audit = try #require(tables.first { $0["table"] as? String == "public.audit_log" })
            #expect(audit["syncable"] as? Bool == false && (audit["reason"] as? String)?.contains("Fix") == true)

            // Queue a backfill (no body), an ids job (body), and watch both finish.
            coverage.hit("/api/ai/bulk-sync/index/{entity}")
            let queued = try await api.post("/api/ai/bulk-sync/index/product")
            #expect(queued.status == 202, "\(queued.text)")
            let jobID = try #require(queued.json["id"] as? String)
            let ids = try await api.post("/api/ai/bulk-sync/index/product", #"{"ids": ["1", 2, "3"]}"#)
            #expect(ids.status == 202 && ids.json["kind"] as? String == "ids" && ids.json["ids_count"] as? Int == 3, "\(ids.text)")
            coverage.hit("/api/ai/bulk-sync/status/{jobId}")
            let finished = try await api.waitForJob(jobID)
            #expect(finished["status"] as? String == "completed" && finished["percent"] as? Double == 100, "\(finished)")
            _ = try await api.waitForJob(try #require(ids.json["id"] as? String))

            // Malformed bodies, unknown entities and jobs: 4xx with a message.
            expectError(try await api.post("/api/ai/bulk-sync/index/product", "{not json"), 400, "bad_request", "not valid JSON")
            expectError(try await api.post("/api/ai/bulk-sync/index/product", "[1, 2]"), 400, "bad_request", "JSON object")
            expectError(try await api.post("/api/ai/bulk-sync/index/product", #"{"ids": "7"}"#), 400, "bad_request", "array")
            expectError(try await api.post("/api/ai/bulk-sync/index/product", #"{"ids": []}"#), 400, "bad_request", "empty")
            expectError(try await api.post("/api/ai/bulk-sync/index/product", #"{"ids": [true]}"#), 400, "bad_request", "ids[0]")
            expectError(try await api.post("/api/ai/bulk-sync/index/product", #"{"idz": ["1"]}"#), 400, "bad_request", "unknown field 'idz'")
            expectError(try await api.post("/api/ai/bulk-sync/index/nosuch"), 404, "not_found", "unknown entity 'nosuch'")
            expectError(try await api.get("/api/ai/bulk-sync/status/job-0000000000"), 404, "not_found", "no job")
            expectError(try await api.call("POST", "/api/ai/bulk-sync/index/product", body: String(repeating: "x", count: 2 << 20)), 413, "content_too_large")

            // Drift: the running agent validates and repairs; the status and metrics report the latest drift.
            coverage.hit("/api/ai/bulk-sync/validate/{entity}")
            let clean = try await api.post("/api/ai/bulk-sync/validate/product")
            #expect(clean.status == 200 && clean.json["status"] as? String == "in_sync" && clean.json["missing"] as? Int == 0, "\(clean.text)")
            #expect((clean.json["checked"] as? Int ?? 0) > 0 && clean.json["validation_id"] is String, "\(clean.text)")
            expectError(try await api.post("/api/ai/bulk-sync/validate/nosuch"), 404, "not_found")
            expectError(try await api.post("/api/ai/bulk-sync/validate/product", #"{"deep": true}"#), 400, "bad_request", "unknown field")
            // Two documents deleted from the index behind the agent's back.
            try await api.deleteDocumentsBehindTheAgent("product", ids: ["1", "2"])
            coverage.hit("/api/ai/bulk-sync/validate-all")
            let all = try await api.post("/api/ai/bulk-sync/validate-all")
            let reports = try #require(all.json["reports"] as? [[String: Any]], "\(all.text)")
            #expect(all.status == 200 && reports.count == 1 && reports.first?["missing"] as? Int == 2, "\(all.text)")
            #expect(reports.first?["status"] as? String == "drifted")
            try await Task.sleep(for: .milliseconds(300))  // past the status cache
            let drifted = try await api.get("/api/status")
            #expect((drifted.json["drift"] as? [String: Any])?["product"] as? Int == 2, "\(drifted.text)")
            coverage.hit("/api/ai/bulk-sync/fix-drift/{entity}")
            let fixed = try await api.post("/api/ai/bulk-sync/fix-drift/product")
            #expect(fixed.status == 202 && fixed.json["missing"] as? Int == 2 && fixed.json["repair_job_id"] is String, "\(fixed.text)")
            #expect(fixed.json["repair_job_status"] as? String == "completed" && fixed.json["status"] as? String == "in_sync", "\(fixed.text)")
            expectError(try await api.post("/api/ai/bulk-sync/fix-drift/nosuch"), 404, "not_found")

            // Rebuild, a second one refused while the first is active, then rollback of the completed one.
            coverage.hit("/api/ai/bulk-sync/rebuild/{entity}")
            let rebuild = try await api.post("/api/ai/bulk-sync/rebuild/product")
            #expect(rebuild.status == 202 && rebuild.json["kind"] as? String == "rebuild", "\(rebuild.text)")
            let rebuildID = try #require(rebuild.json["id"] as? String)
            let second = try await api.post("/api/ai/bulk-sync/rebuild/product")
            if second.status != 202 { expectError(second, 409, "conflict", "already") } else {
                // The first finished in between; fine, wait for the second as well.
                _ = try await api.waitForJob(try #require(second.json["id"] as? String))
            }
            expectError(try await api.post("/api/ai/bulk-sync/rebuild/product", #"{"ids": ["1"]}"#), 400, "bad_request", "unknown field")
            #expect(try await api.waitForJob(rebuildID)["status"] as? String == "completed")

            // Jobs.
            coverage.hit("/api/jobs")
            let jobs = try await api.get("/api/jobs")
            #expect((jobs.json["jobs"] as? [[String: Any]])?.contains { $0["id"] as? String == jobID } == true)
            #expect((try await api.get("/api/jobs?entity=product&status=completed&limit=2").json["jobs"] as? [Any])?.count == 2)
            expectError(try await api.get("/api/jobs?status=bogus"), 400, "bad_request", "not a job status")
            expectError(try await api.get("/api/jobs?limit=0"), 400, "bad_request", "limit")
            expectError(try await api.get("/api/jobs?entity=nosuch"), 404, "not_found")
            coverage.hit("/api/jobs/{id}")
            #expect(try await api.get("/api/jobs/\(jobID)").json["id"] as? String == jobID)
            expectError(try await api.get("/api/jobs/job-nosuch"), 404, "not_found")
            for action in ["pause", "resume", "cancel"] {
                coverage.hit("/api/jobs/{id}/\(action)")
                expectError(try await api.post("/api/jobs/\(jobID)/\(action)"), 409, "conflict", "only queued, running or paused")
                expectError(try await api.post("/api/jobs/job-nosuch/\(action)"), 404, "not_found")
            }
            coverage.hit("/api/jobs/{id}/retry-failed")
            let retry = try await api.post("/api/jobs/\(jobID)/retry-failed")
            #expect(retry.status == 200 && (retry.json["message"] as? String)?.contains("no failed rows") == true, "\(retry.text)")
            coverage.hit("/api/jobs/{id}/rollback")
            expectError(try await api.post("/api/jobs/\(jobID)/rollback"), 409, "conflict", "only a completed rebuild")
            let rolled = try await api.post("/api/jobs/\(rebuildID)/rollback")
            #expect(rolled.status == 200 && (rolled.json["job"] as? [String: Any])?["rolled_back"] as? Bool == true, "\(rolled.text)")
            expectError(try await api.post("/api/jobs/\(rebuildID)/rollback"), 409, "conflict", "already")
            expectError(try await api.post("/api/jobs/\(jobID)/explode"), 404, "not_found", "no job action")
            expectError(try await api.post("/api/jobs/\(jobID)/pause", "{bad"), 400, "bad_request")

            // Pause and cancel a job that is still queued or running: a large ids job.
            let many = (1...50).map { "\"\($0)\"" }.joined(separator: ",")
            let big = try await api.post("/api/ai/bulk-sync/index/product", "{\"ids\": [\(many)]}")
            let bigID = try #require(big.json["id"] as? String)
            let paused = try await api.post("/api/jobs/\(bigID)/pause")
            #expect(paused.status == 200 || paused.status == 409, "\(paused.text)")
            _ = try await api.post("/api/jobs/\(bigID)/cancel")

            // Search and one document.
            coverage.hit("/api/ai/search")
            let search = try await api.get("/api/ai/search?entity=product&q=quiet%20desk%20lamp&k=3")
            let hits = try #require(search.json["hits"] as? [[String: Any]], "\(search.text)")
            #expect(hits.count == 3 && (hits.first?["content"] as? String)?.contains("desk lamp") == true, "\(hits)")
            #expect((hits.first?["score"] as? Double ?? 0) > 0)
            let filtered = try await api.get("/api/ai/search?entity=product&q=lamp&k=50&filter.category_id=2")
            let filteredHits = try #require(filtered.json["hits"] as? [[String: Any]])
            #expect(!filteredHits.isEmpty && filteredHits.allSatisfy { ($0["metadata"] as? [String: Any])?["category_id"] as? String == "2" }, "\(filtered.text)")
            expectError(try await api.get("/api/ai/search?entity=product"), 400, "bad_request", "q is missing")
            expectError(try await api.get("/api/ai/search?q=lamp"), 400, "bad_request", "entity is missing")
            expectError(try await api.get("/api/ai/search?entity=nosuch&q=lamp"), 404, "not_found")
            expectError(try await api.get("/api/ai/search?entity=product&q=lamp&k=0"), 400, "bad_request", "k must be")
            expectError(try await api.get("/api/ai/search?entity=product&q=lamp&k=many"), 400, "bad_request")
            coverage.hit("/api/ai/documents/{entity}/{id}")
            let document = try await api.get("/api/ai/documents/product/2")
            #expect(document.status == 200 && (document.json["content"] as? String)?.contains("quiet desk lamp number 2") == true, "\(document.text)")
            #expect((document.json["metadata"] as? [String: Any])?["price"] as? String == "3.00")
            expectError(try await api.get("/api/ai/documents/product/99999"), 404, "not_found")
            expectError(try await api.get("/api/ai/documents/nosuch/1"), 404, "not_found")

            // Dead letters.
            coverage.hit("/api/dead-letters")
            #expect((try await api.get("/api/dead-letters").json["dead_letters"] as? [Any])?.isEmpty == true)
            coverage.hit("/api/dead-letters/retry")
            let retried = try await api.post("/api/dead-letters/retry")
            #expect(retried.status == 200 && retried.json["jobs"] as? [Any] != nil, "\(retried.text)")
            expectError(try await api.post("/api/dead-letters/retry", #"{"entity": 5}"#), 400, "bad_request")
            expectError(try await api.post("/api/dead-letters/retry", #"{"ids": ["1"]}"#), 400, "bad_request", "needs 'entity'")
            expectError(try await api.get("/api/dead-letters?entity=nosuch"), 404, "not_found")

            // Events: the first update carries status and jobs.
            coverage.hit("/api/events")
            let first = try await api.firstEvent()
            #expect(first["status"] is [String: Any] && first["jobs"] is [Any], "\(first)")

            // Metrics and the page.
            coverage.hit("/metrics")
            let metrics = try await api.get("/metrics")
            #expect(metrics.status == 200 && metrics.text.contains("tidemark_changes_total"))
            coverage.hit("/")
            let page = try await api.get("/")
            #expect(page.status == 200 && page.text.contains("<title>Tidemark</title>") && page.headers["content-type"]?.hasPrefix("text/html") == true)

            // Unknown paths and methods: JSON 404s.
            expectError(try await api.get("/api/nosuch"), 404, "not_found", "no such path")
            expectError(try await api.call("DELETE", "/api/jobs"), 404, "not_found")
        }
        let documented = try Self.documentedPaths()
        #expect(documented.count >= 20, "Docs/openapi.yaml lists its paths: \(documented)")
        let hit = coverage.paths.withLock { $0 }
        for path in documented where !hit.contains(path) {
            Issue.record("documented path \(path) is not exercised by this test")
        }
        for path in hit.sorted() where !documented.contains(path) {
            Issue.record("\(path) answers but is not in Docs/openapi.yaml")
        }
    }

    /// Off loopback (127.0.0.2) every call but the probes and the page shell needs the token;
    /// on loopback with a token, reads are open and changes need it.
    @Test(arguments: LiveServer.first)
    func tokensOffAndOnLoopback(server: LiveServer) async throws {
        let token = "test-token-" + UUID().uuidString
        try await withAPI(on: server, host: "127.0.0.2", token: token) { api in
            #expect(api.server.configuration.isExposed)
            #expect(try await api.get("/healthz").status == 200)
            #expect(try await api.get("/").status == 200)
            for (method, path) in [("GET", "/api/status"), ("GET", "/api/jobs"), ("POST", "/api/ai/bulk-sync/index/product"), ("GET", "/metrics"), ("GET", "/api/events")] {
                expectError(try await api.call(method, path), 401, "unauthorized", "Bearer")
                expectError(try await api.call(method, path, token: "wrong-\(token)"), 401, "unauthorized", "wrong")
                expectError(try await api.call(method, path, headers: ["Authorization": "Basic \(token)"]), 401, "unauthorized", "Bearer <token>")
                expectError(try await api.call(method, path, token: String(token.dropLast())), 401, "unauthorized")
            }
            let status = try await api.call("GET", "/api/status", token: token)
            #expect(status.status == 200, "\(status.text)")
            let queued = try await api.call("POST", "/api/ai/bulk-sync/index/product", token: token)
            #expect(queued.status == 202, "\(queued.text)")
            #expect(try await api.call("GET", "/api/ai/search?entity=product&q=lamp", token: token).status == 200)
            // A 401 never echoes the token.
            #expect(!(try await api.call("GET", "/api/status", token: "wrong-\(token)")).text.contains(token))
        }
        try await withAPI(on: server, token: token) { api in
            #expect(!api.server.configuration.isExposed)
            #expect(try await api.get("/api/status").status == 200)
            #expect(try await api.get("/api/jobs").status == 200)
            expectError(try await api.post("/api/ai/bulk-sync/index/product"), 401, "unauthorized", "state-changing")
            expectError(try await api.post("/api/jobs/job-x/pause", token: "nope-nope-nope-nope"), 401, "unauthorized")
            #expect(try await api.post("/api/ai/bulk-sync/index/product", token: token).status == 202)
        }
    }

    @Test func tokensCompareInConstantTimeShape() {
        let expected = Array("0123456789abcdef".utf8)
        #expect(ConstantTime.equals(Array("0123456789abcdef".utf8), expected))
        #expect(!ConstantTime.equals(Array("0123456789abcdeF".utf8), expected))
        #expect(!ConstantTime.equals(Array("0123456789abcdef0".utf8), expected))
        #expect(!ConstantTime.equals([], expected))
    }
}

extension APIHarness {
    /// Deletes documents from the agent's SQLite index file, as another program could.
    func deleteDocumentsBehindTheAgent(_ entity: String, ids: [String]) async throws {
        guard case .sqlite(let path) = agent.configuration.index else {
            Issue.record("the API tests keep their index in SQLite")
            return
        }
        #expect(try IndexFile(path: path).deleteDocuments(entity, ids: ids) == ids.count)
    }

    /// Reads `/api/events` until its first `update` event; returns its data.
    func firstEvent(token: String? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: baseURL + "/api/events")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        #expect(response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
        var text = ""
        for try await buffer in response.body {
            text += String(buffer: buffer)
            if let range = text.range(of: "event: update\ndata: "), let end = text[range.upperBound...].range(of: "\n\n") {
                let data = Data(text[range.upperBound..<end.lowerBound].utf8)
                return (try JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            }
        }
        return [:]
    }
}
