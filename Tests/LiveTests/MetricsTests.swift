import Foundation
import Testing

/// `/metrics` is Prometheus text, and its counters move while a workload runs.
@Suite struct MetricsTests {
    /// Parses the text exposition format: `# HELP`/`# TYPE` lines and samples `name{labels} value`.
    /// Records an issue for every line that is neither. Returns each sample's value by its series.
    static func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Double] {
        var samples: [String: Double] = [:]
        var types: [String: String] = [:]
        let sample = #/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( [0-9]+)?$/#
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) } else { Issue.record("bad TYPE line: \(line)", sourceLocation: sourceLocation) }
                continue
            }
            if line.hasPrefix("#") { continue }
            guard let match = try? sample.wholeMatch(in: String(line)) else {
                Issue.record("not a Prometheus sample: \(line)", sourceLocation: sourceLocation)
                continue
            }
            let series = String(line[..<line.lastIndex(of: " ")!])
            samples[series] = Double(String(match.output.5)) ?? .nan
        }
        #expect(types["tidemark_changes_total"] == "counter", "TYPE of tidemark_changes_total: \(types)", sourceLocation: sourceLocation)
        return samples
    }

    @Test(arguments: LiveServer.first)
    func countersMoveWhileAWorkloadRuns(server: LiveServer) async throws {
        try await withAPI(on: server, rows: 100) { api in
            try await api.waitUntilReady()
            let before = Self.parse(try await api.get("/metrics").text)
            let upsertSeries = #"tidemark_changes_total{operation="upsert",entity="product"}"#
            let initial = before[upsertSeries] ?? 0
            #expect(initial >= 100, "the initial load counted: \(before.keys.sorted())")
            for round in 0..<5 {
                try await api.database.exec("""
                    INSERT INTO products SELECT g, 'new ' || g, 'fresh text', 1, 1 FROM generate_series(\(1000 + round * 100), \(1099 + round * 100)) g;
                    UPDATE products SET description = description || ' again' WHERE id <= 10;
                    DELETE FROM products WHERE id = \(20 + round);
                    """)
            }
            let target = try await api.database.currentLSN()
            try await waitForCheckpoint(api.store, target)
            try await Task.sleep(for: .milliseconds(500))  // a sampling interval for the gauges
            let after = Self.parse(try await api.get("/metrics").text)
            // 500 inserts at least (updates of one key in one batch are coalesced into one upsert).
            #expect((after[upsertSeries] ?? 0) >= initial + 500, "upserts counted: \(after[upsertSeries] ?? 0) after \(initial)")
            #expect((after[#"tidemark_changes_total{operation="delete",entity="product"}"#] ?? 0) >= 5)
            #expect((after["tidemark_batch_size_count"] ?? 0) > (before["tidemark_batch_size_count"] ?? 0))
            #expect((after["tidemark_apply_duration_seconds_count"] ?? 0) > (before["tidemark_apply_duration_seconds_count"] ?? 0))
            #expect((after["tidemark_commit_to_searchable_seconds_count"] ?? 0) >= 5)
            #expect(after[#"tidemark_documents{entity="product"}"#] == 595, "documents: \(after[#"tidemark_documents{entity="product"}"#] ?? -1)")
            #expect(after["tidemark_replication_lag_bytes"] != nil && after["tidemark_wal_retained_bytes"] != nil)
            #expect(after["tidemark_slot_active"] == 1)
            #expect(after["tidemark_embedder_healthy"] == 1)
            #expect(after[#"tidemark_drift_documents{entity="product"}"#] == 0)
            #expect(after[#"tidemark_backfill_progress_ratio{entity="product"}"#] == 1)
            #expect(after["tidemark_embedding_requests_total"] != nil, "the embedder's counters are exported")
        }
    }
}
