import Embedding
import Foundation
import Logging
import Synchronization
import TestEmbeddingServer
import Testing

/// ``OpenAIEmbedder`` against a real local provider (``TestEmbeddingServer``): shapes, request
/// sizing, retries, isolation of rejected inputs, health, secrets, shutdown.
@Suite(.timeLimit(.minutes(1)))
struct OpenAIEmbedderTests {
    @Test func vectorsComeInInputOrderWithCountsAndUsage() async throws {
        var server = TestEmbeddingServer.Configuration()
        server.reverseOrder = true
        try await withProvider(server) { provider, embedder in
            #expect(embedder.dimensions == 0)
            let input = texts(10)
            let vectors = try await embedder.embed(input)
            #expect(vectors == expectedVectors(input))
            #expect(embedder.dimensions == 64)
            let statistics = embedder.statistics
            #expect(statistics.requests == 1)
            #expect(statistics.inputs == 10)
            #expect(statistics.tokens == input.map(TokenEstimate.estimate).reduce(0, +))
            #expect(statistics.errors == 0)
            #expect(embedder.health.healthy)
            #expect(embedder.health.lastSuccessAt != nil)
            let record = try #require(provider.requests.first)
            #expect(record.model == "test-model")
            #expect(record.dimensions == nil)
            #expect(try await embedder.embedEach([]).isEmpty)
        }
    }

    @Test func requestsAreCutByMaxInputs() async throws {
        try await withProvider(configure: { $0.maxInputs = 7 }) { provider, embedder in
            let input = texts(50)
            let embedded1 = try await embedder.embed(input)
            #expect(embedded1 == expectedVectors(input))
            let requests = provider.requests
            #expect(requests.count == 8)
            #expect(requests.allSatisfy { $0.inputs <= 7 && $0.status == 200 })
            #expect(requests.map(\.inputs).reduce(0, +) == 50)
        }
    }

    @Test func requestsAreCutByMaxRequestTokens() async throws {
        try await withProvider(configure: { $0.maxRequestTokens = 100 }) { provider, embedder in
            let input = texts(40, tokens: 12)
            let embedded2 = try await embedder.embed(input)
            #expect(embedded2 == expectedVectors(input))
            let requests = provider.requests
            #expect(requests.allSatisfy { $0.tokens <= 100 })
            #expect(requests.count == 5)  // 8 texts of 12 tokens per request
            #expect(requests.map(\.inputs).reduce(0, +) == 40)
        }
    }

    @Test func anInputOverMaxInputTokensIsRejectedUnsent() async throws {
        try await withProvider(configure: { $0.maxInputTokens = 20 }) { provider, embedder in
            var input = texts(5)
            input[2] = String(repeating: "long ", count: 40)
            let outcomes = try await embedder.embedEach(input)
            guard case .failure(let error) = outcomes[2] else {
                Issue.record("the long text was not rejected")
                return
            }
            #expect(error.code == .rejectedInput)
            #expect(error.message.contains("max_input_tokens"))
            #expect(outcomes.enumerated().filter { $0.offset != 2 }.allSatisfy { (try? $0.element.get()) != nil })
            #expect(provider.requests.map(\.inputs).reduce(0, +) == 4)
        }
    }

    @Test func sendsDimensionsWhenConfigured() async throws {
        try await withProvider(configure: { $0.dimensions = 16 }) { provider, embedder in
            let vectors = try await embedder.embed(["a", "b"])
            #expect(vectors.allSatisfy { $0.count == 16 })
            #expect(provider.requests.first?.dimensions == 16)
            #expect(embedder.dimensions == 16)
        }
    }

    @Test func wrongDimensionsAreAnInvalidResponseNamingBothNumbers() async throws {
        try await withProvider(configure: {
            $0.dimensions = 32
            $0.sendDimensions = false
        }) { _, embedder in
            let outcomes = try await embedder.embedEach(texts(3))
            for outcome in outcomes {
                guard case .failure(let error) = outcome else {
                    Issue.record("a vector of the wrong length was accepted")
                    continue
                }
                #expect(error.code == .invalidResponse)
                #expect(error.message.contains("64") && error.message.contains("32"))
            }
            await #expect(throws: EmbeddingError.self) { try await embedder.embed(["x"]) }
            #expect(!embedder.health.healthy)
        }
    }

    @Test func serverErrorsAreRetried() async throws {
        try await withProvider { provider, embedder in
            provider.failNext(3, status: 500)
            let input = texts(4)
            let embedded3 = try await embedder.embed(input)
            #expect(embedded3 == expectedVectors(input))
            let statistics = embedder.statistics
            #expect(statistics.errors == 3)
            #expect(statistics.retries == 3)
            #expect(statistics.requests == 4)
            #expect(provider.requests.map(\.status) == [500, 500, 500, 200])
            #expect(embedder.health.healthy)
        }
    }

    @Test func aRequestThatTimesOutIsRetried() async throws {
        var server = TestEmbeddingServer.Configuration()
        // The first request is held for a minute; every later one is answered at once.
        server.latencyOfRequest = { $0 == 0 ? .seconds(60) : .zero }
        try await withProvider(server, configure: { $0.timeout = .seconds(2) }) { provider, embedder in
            let started = ContinuousClock.now
            let vectors = try await embedder.embed(["slow"])
            #expect(vectors == expectedVectors(["slow"]))
            // Answered by a retry, not by waiting out the held first request. On a loaded machine a
            // retry may time out too, so the count is not pinned; each retry is one more request.
            #expect(ContinuousClock.now - started < .seconds(45))
            let retries = embedder.statistics.retries
            #expect(retries >= 1)
            #expect(provider.requests.count == retries + 1)
        }
    }

    @Test func boundedAttemptsSurfaceAsUnavailable() async throws {
        try await withProvider(configure: { $0.maxAttempts = 2 }) { provider, embedder in
            provider.failNext(5, status: 503)
            let outcomes = try await embedder.embedEach(["a", "b"])
            for outcome in outcomes {
                guard case .failure(let error) = outcome else {
                    Issue.record("expected a failure after two attempts")
                    continue
                }
                #expect(error.code == .unavailable)
                #expect(error.message.contains("max_attempts"))
            }
            #expect(provider.requests.count == 2)
        }
    }

    @Test func retryAfterIsHonouredByTheNextRequest() async throws {
        try await withProvider { provider, embedder in
            provider.rateLimitNext(1, retryAfter: "2")
            let input = texts(3)
            let embedded4 = try await embedder.embed(input)
            #expect(embedded4 == expectedVectors(input))
            let requests = provider.requests
            try #require(requests.count == 2)
            #expect(requests[0].status == 429)
            let answered = try #require(requests[0].answeredAt)
            #expect(requests[1].arrivedAt - answered >= .seconds(2))
            // Not much later either (the backoff of an error without Retry-After would be far
            // shorter; a loaded machine adds its delay).
            #expect(requests[1].arrivedAt - answered < .seconds(6))
            #expect(embedder.statistics.rateLimited == 1)
            #expect(embedder.statistics.retries == 1)
        }
    }

    @Test func retryAfterMillisecondsAndResetHeadersAreHonoured() async throws {
        try await withProvider { provider, embedder in
            provider.rateLimitNext(1, headers: ["retry-after-ms": "700"])
            _ = try await embedder.embed(["a"])
            provider.rateLimitNext(1, headers: ["x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "0.8s"])
            _ = try await embedder.embed(["b"])
            let requests = provider.requests
            try #require(requests.count == 4)
            #expect(requests[1].arrivedAt - (requests[0].answeredAt ?? requests[0].arrivedAt) >= .milliseconds(700))
            #expect(requests[3].arrivedAt - (requests[2].answeredAt ?? requests[2].arrivedAt) >= .milliseconds(800))
        }
    }

    @Test func aPoisonedInputFailsAloneAndTheOthersKeepTheirVectors() async throws {
        var server = TestEmbeddingServer.Configuration()
        server.poisonMarker = "POISON"
        try await withProvider(server, configure: { $0.maxInputs = 25 }) { provider, embedder in
            var input = texts(100)
            input[37] = "this row is POISON for the provider"
            let outcomes = try await embedder.embedEach(input)
            #expect(outcomes.count == 100)
            for (index, outcome) in outcomes.enumerated() {
                switch outcome {
                case .success:
                    #expect(index != 37)
                case .failure(let error):
                    #expect(index == 37)
                    #expect(error.code == .rejectedInput)
                    #expect(error.message.contains("HTTP 400") && error.message.contains("$.input"))
                }
            }
            // The requests without the poisoned text were sent once; only its request was halved.
            let requests = provider.requests
            #expect(requests.count <= 4 + 2 * 5)
            #expect(requests.filter { $0.status == 400 }.count == 5)  // 25, 13, 6, 3 and 1 inputs
            // The 99 vectors are those of each text embedded alone.
            for (index, outcome) in outcomes.enumerated() where index != 37 {
                let alone = try await embedder.embed([input[index]])
                #expect((try? outcome.get()) == alone.first)
            }
            await #expect(throws: EmbeddingError.self) { try await embedder.embed(input) }
            #expect(embedder.health.healthy)
        }
    }

    @Test func malformedAnswersAreClearErrors() async throws {
        try await withProvider { provider, embedder in
            provider.answerNext([
                (200, "<html><body>Welcome to the captive portal</body></html>", "text/html"),
                (200, "", "application/json"),
                (200, "{\"data\": [{\"index\": 0, \"embedding\": [0.1, 0.2", "application/json"),
                (200, "{\"data\": []}", "application/json"),
            ])
            var messages: [String] = []
            for _ in 0..<4 {
                let outcome = try #require(try await embedder.embedEach(["a"]).first)
                guard case .failure(let error) = outcome else {
                    Issue.record("a malformed answer was accepted")
                    continue
                }
                #expect(error.code == .invalidResponse)
                messages.append(error.message)
            }
            #expect(messages[0].contains("captive portal"))
            #expect(messages[1].contains("empty body"))
            #expect(messages[3].contains("0 vectors for 1 inputs"))
            // An HTML error page of a gateway is a provider failure: retried.
            provider.answerNext([(502, "<html><h1>502 Bad Gateway</h1></html>", "text/html")])
            let embedded5 = try await embedder.embed(["b"])
            #expect(embedded5 == expectedVectors(["b"]))
        }
    }

    @Test func aRejectedKeyIsReportedInHealthAndRetriedUntilCancelled() async throws {
        let capture = LogCapture()
        var server = TestEmbeddingServer.Configuration()
        server.apiKey = "sk-right-key-0123456789"
        let key = "sk-wrong-key-abcdefghijklmnop"
        try await withProvider(server, logger: capture.logger, configure: { $0.apiKey = key }) { provider, embedder in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await embedder.embedEach(["a"]) }
                let deadline = ContinuousClock.now + .seconds(10)
                while embedder.health.healthy || provider.requests.count < 3, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                let health = embedder.health
                #expect(!health.healthy)
                let message = try #require(health.lastError)
                #expect(message.contains("401"))
                #expect(message.contains("api_key_env"))
                #expect(!message.contains(key) && !message.contains(String(key.prefix(8))) && !message.contains(String(key.suffix(4))))
                group.cancelAll()
                await #expect(throws: CancellationError.self) { try await group.next() }
            }
            #expect(provider.requests.allSatisfy { $0.status == 401 })
        }
        let warnings = capture.lines.filter { $0.hasPrefix("warning") }
        #expect(warnings.count == 1)  // once per change of state, then at most once a minute
        #expect(warnings.first?.contains("HTTP 401") == true)
    }

    @Test func theKeyNeverAppearsInErrorsOrLogs() async throws {
        let capture = LogCapture()
        var server = TestEmbeddingServer.Configuration()
        server.apiKey = "sk-right-key-0123456789"
        let key = "sk-proj-SECRETKEY-abcdefghijklmnopqrstuvwxyz"
        try await withProvider(server, logger: capture.logger, configure: {
            $0.apiKey = key
            $0.maxAttempts = 2
        }) { provider, embedder in
            let outcomes = try await embedder.embedEach(["a"])
            var descriptions = outcomes.compactMap { outcome -> String? in
                if case .failure(let error) = outcome { return "\(error) \(error.message)" }
                return nil
            }
            #expect(descriptions.count == 1)
            descriptions.append(embedder.health.lastError ?? "")
            provider.failNext(1, status: 500, body: "{\"error\": {\"message\": \"upstream said \(key) is bad\"}}")
            provider.configure { $0.apiKey = nil }
            _ = try await embedder.embedEach(["b"])
            do {
                _ = try await embedder.embed([String(repeating: "y", count: 100_000)])
            } catch {
                descriptions.append("\(error)")
            }
            for text in descriptions + capture.lines {
                #expect(!text.contains(key))
                #expect(!text.contains("SECRETKEY"))
                #expect(!text.contains("sk-proj"))
                #expect(!text.contains("wxyz"))
            }
            #expect(capture.lines.contains { $0.contains("[redacted]") })
        }
    }

    @Test func cancellationStopsACallWaitingOutAnOutagePromptly() async throws {
        try await withProvider(configure: { $0.maxBackoff = .seconds(30) }) { provider, embedder in
            await provider.stop()
            let cancelledAt = Mutex<ContinuousClock.Instant?>(nil)
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await embedder.embedEach(texts(10)) }
                try await Task.sleep(for: .seconds(2))
                cancelledAt.withLock { $0 = .now }
                group.cancelAll()
                await #expect(throws: CancellationError.self) { try await group.next() }
            }
            let stopped = ContinuousClock.now - (cancelledAt.withLock { $0 } ?? started)
            #expect(stopped < .milliseconds(500))
            #expect(!embedder.health.healthy)
            #expect(embedder.health.lastError?.contains("cannot reach") == true)
        }
    }

    @Test func aCallDuringATenSecondOutageCompletesWhenTheProviderIsBack() async throws {
        try await withProvider(configure: {
            $0.maxBackoff = .seconds(1)
            $0.maxInputs = 10
        }) { provider, embedder in
            _ = try await embedder.embed(["warm up"])
            await provider.stop()
            let input = texts(100)
            enum Event: Sendable {
                case back(ContinuousClock.Instant)
                case finished(ContinuousClock.Instant, [Result<[Float], EmbeddingError>])
            }
            var backAt: ContinuousClock.Instant?
            var finishedAt: ContinuousClock.Instant?
            try await withThrowingTaskGroup(of: Event.self) { group in
                group.addTask {
                    let outcomes = try await embedder.embedEach(input)
                    return .finished(.now, outcomes)
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(10))
                    #expect(!embedder.health.healthy)
                    let back = ContinuousClock.now
                    try await provider.restart()
                    return .back(back)
                }
                for try await event in group {
                    switch event {
                    case .back(let instant):
                        backAt = instant
                    case .finished(let instant, let outcomes):
                        finishedAt = instant
                        #expect(outcomes.count == 100)
                        #expect(outcomes.compactMap { try? $0.get() } == expectedVectors(input))
                    }
                }
            }
            let back = try #require(backAt)
            let finished = try #require(finishedAt)
            #expect(finished > back)
            #expect(finished - back < .seconds(3))
            #expect(embedder.health.healthy)
            #expect(embedder.statistics.inputs == 101)
        }
    }

    @Test func azureStyleKeyHeaderAndQuery() async throws {
        var server = TestEmbeddingServer.Configuration()
        server.apiKey = "azure-key-123456"
        server.apiKeyHeader = "api-key"
        let provider = try await TestEmbeddingServer.start(server)
        var configuration = OpenAIEmbedder.Configuration(url: provider.baseURL + "?api-version=2024-02-01", model: "test-model")
        configuration.apiKey = "azure-key-123456"
        configuration.apiKeyHeader = "api-key"
        let embedder = try OpenAIEmbedder(configuration: configuration, logger: quietLogger)
        let vectors = try? await embedder.embed(["a"])
        await embedder.shutdown()
        await provider.stop()
        #expect(vectors == expectedVectors(["a"]))
    }

    @Test func configurationMistakesAreRefusedWithTheFix() throws {
        func refusal(_ change: (inout OpenAIEmbedder.Configuration) -> Void) -> String? {
            var configuration = OpenAIEmbedder.Configuration(url: "http://127.0.0.1:1/v1", model: "m")
            change(&configuration)
            do {
                let embedder = try OpenAIEmbedder(configuration: configuration, logger: quietLogger)
                _ = embedder
                return nil
            } catch let error as EmbeddingError {
                #expect(error.code == .configuration)
                return error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal { $0.url = "ftp://example.com" }?.contains("http") == true)
        #expect(refusal { $0.concurrency = 0 }?.contains("concurrency") == true)
        #expect(refusal { $0.sendDimensions = true }?.contains("dimensions") == true)
        #expect(refusal { $0.url = "https://api.openai.com/v1" }?.contains("api_key_env") == true)
        #expect(refusal { $0.maxInputs = 0 }?.contains("max_inputs") == true)
        // An embedder dropped without shutdown() does not trap (its client shuts down behind it).
        #expect(refusal { _ in } == nil)
    }

    @Test func aShutDownEmbedderRefusesCalls() async throws {
        let provider = try await TestEmbeddingServer.start()
        let embedder = try OpenAIEmbedder(configuration: .init(url: provider.baseURL, model: "test-model"), logger: quietLogger)
        _ = try await embedder.embed(["a"])
        await embedder.shutdown()
        await embedder.shutdown()
        await #expect(throws: EmbeddingError.self) { try await embedder.embedEach(["a"]) }
        await provider.stop()
    }
}
