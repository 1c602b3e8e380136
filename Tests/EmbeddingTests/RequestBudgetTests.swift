import Foundation
import Testing

@testable import Embedding

/// The pure parts: budget windows, retry waits, redaction, request packing, estimates.
struct RequestBudgetTests {
    @Test func windowsAreScaledToAboutASecondAtTheFullRate() {
        let requests = RequestBudget.Window(perMinute: 3_000, largest: 1)
        #expect(requests.limit == 50)
        #expect(requests.length == .seconds(1))
        let odd = RequestBudget.Window(perMinute: 100, largest: 1)
        #expect(odd.limit == 2)
        #expect(odd.length == .milliseconds(1_200))
        let slow = RequestBudget.Window(perMinute: 10, largest: 1)
        #expect(slow.limit == 1 && slow.length == .seconds(6))
        // A window holds at least the largest input: 40 000 TPM with inputs of up to 8192 tokens.
        let tokens = RequestBudget.Window(perMinute: 40_000, largest: 8_192)
        #expect(tokens.limit == 8_192)
        #expect(abs(tokens.length.secondsValue - 12.288) < 0.001)
    }

    @Test func theBudgetNeverAdmitsMoreThanTheWindowAllows() {
        var budget = RequestBudget(configuration: .init(requestsPerMinute: 600, tokensPerMinute: nil, concurrency: 100, maxInputTokens: 10))
        let start = ContinuousClock.now
        var admitted: [ContinuousClock.Instant] = []
        var now = start
        var ticket = budget.enqueue(tokens: 1)
        while now < start + .seconds(5) {
            let (poll, _) = budget.poll(ticket, now: now)
            switch poll {
            case .admitted(let permit):
                admitted.append(now)
                _ = budget.sent(permit, at: now)
                _ = budget.release(permit, tokens: nil, succeeded: true, at: now)
                ticket = budget.enqueue(tokens: 1)
            case .sleep(let until):
                #expect(until > now)
                now = until
            case .suspend:
                Issue.record("the head was suspended with slots free")
                return
            }
        }
        // 10 per second over 5 s, never 11 in one second.
        #expect(admitted.count >= 50 && admitted.count <= 60)
        for (index, instant) in admitted.enumerated() {
            #expect(admitted[index...].prefix { $0 < instant + .seconds(1) }.count <= 10)
        }
    }

    @Test func onlyTheHeadIsAdmittedAndConcurrencyHolds() {
        var budget = RequestBudget(configuration: .init(requestsPerMinute: nil, tokensPerMinute: nil, concurrency: 1, maxInputTokens: 10))
        let now = ContinuousClock.now
        let first = budget.enqueue(tokens: 1)
        let second = budget.enqueue(tokens: 1)
        #expect(budget.poll(second, now: now).0 == .suspend)
        guard case .admitted(let permit) = budget.poll(first, now: now).0 else {
            Issue.record("the head was not admitted")
            return
        }
        #expect(budget.poll(second, now: now).0 == .suspend)
        _ = budget.release(permit, tokens: nil, succeeded: true, at: now)
        if case .admitted = budget.poll(second, now: now).0 {} else { Issue.record("the next was not admitted after release") }
    }

    @Test func aFailingProviderIsProbedOneRequestAtATime() {
        var budget = RequestBudget(configuration: .init(requestsPerMinute: nil, tokensPerMinute: nil, concurrency: 4, maxInputTokens: 10))
        let now = ContinuousClock.now
        let first = budget.enqueue(tokens: 1)
        guard case .admitted(let permit) = budget.poll(first, now: now).0 else { return }
        _ = budget.release(permit, tokens: nil, succeeded: false, at: now)
        let second = budget.enqueue(tokens: 1)
        let third = budget.enqueue(tokens: 1)
        guard case .admitted(let probe) = budget.poll(second, now: now).0 else {
            Issue.record("no probe admitted")
            return
        }
        #expect(budget.poll(third, now: now).0 == .suspend)
        _ = budget.release(probe, tokens: nil, succeeded: true, at: now)
        if case .admitted = budget.poll(third, now: now).0 {} else { Issue.record("full concurrency did not return") }
    }

    @Test func retryAfterForms() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryPolicy.retryAfter("2", now: now) == .seconds(2))
        #expect(RetryPolicy.retryAfter("1.5", now: now) == .milliseconds(1_500))
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        let date = formatter.string(from: now.addingTimeInterval(30))
        let parsed = RetryPolicy.retryAfter(date, now: now)
        #expect(parsed.map { abs($0.secondsValue - 30) < 1 } == true)
        #expect(RetryPolicy.retryAfter("soon", now: now) == nil)
        #expect(RetryPolicy.goDuration("6m0s") == .seconds(360))
        #expect(RetryPolicy.goDuration("20ms") == .milliseconds(20))
        #expect(RetryPolicy.goDuration("1h2m3.5s") == .milliseconds(3_723_500))
        #expect(RetryPolicy.goDuration("abc") == nil)
        let policy = RetryPolicy(initialBackoff: .milliseconds(500), maxBackoff: .seconds(30), maxAttempts: nil)
        let headers = ["retry-after-ms": "250"]
        #expect(policy.providerWait({ headers[$0] }) == .milliseconds(250))
        let reset = ["x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.5s", "x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "9s"]
        #expect(policy.providerWait({ reset[$0] }) == .milliseconds(1_500))
        #expect(policy.providerWait({ _ in nil }) == nil)
        #expect(policy.providerWait({ $0 == "retry-after" ? "99999" : nil }) == .seconds(3_600))
    }

    @Test func backoffIsFullJitterUnderTheCap() {
        let policy = RetryPolicy(initialBackoff: .milliseconds(100), maxBackoff: .seconds(1), maxAttempts: 3)
        for failures in 1...20 {
            let wait = policy.backoff(after: failures)
            let cap = min(0.1 * pow(2, Double(failures - 1)), 1.0)
            #expect(wait >= .zero && wait.secondsValue <= cap + 1e-9)
        }
        #expect(policy.allowsAnother(after: 2))
        #expect(!policy.allowsAnother(after: 3))
    }

    @Test func redactionRemovesTheKeyAndItsEchoes() {
        let redaction = SecretRedaction("sk-proj-abcdefghijklmnopqrstuvwxyz")
        #expect(redaction.apply("key sk-proj-abcdefghijklmnopqrstuvwxyz is bad") == "key [redacted] is bad")
        #expect(redaction.apply("Incorrect API key provided: sk-pro*****wxyz.") == "Incorrect API key provided: [redacted]")
        #expect(redaction.apply("Bearer sk-proj-abcdefgh") == "Bearer [redacted]")
        #expect(redaction.apply("model not found") == "model not found")
        #expect(SecretRedaction(nil).apply("nothing to hide") == "nothing to hide")
    }

    @Test func requestsArePackedInOrderWithinLimits() {
        let input = (0..<10).map { String(repeating: "a", count: 4 * ($0 + 1)) }  // 1…10 tokens
        let plan = RequestPlan(input, tokenCount: TokenEstimate.estimate, maxInputs: 3, maxRequestTokens: 12, maxInputTokens: 9)
        #expect(plan.oversized.map(\.position) == [9])
        #expect(plan.batches.flatMap(\.positions) == Array(0..<9))
        #expect(plan.batches.allSatisfy { $0.count <= 3 && $0.totalTokens <= 12 })
        let (first, second) = plan.batches[0].halves()
        #expect(first.positions + second.positions == plan.batches[0].positions)
    }

    @Test func estimatesNameTheirLimit() {
        var configuration = OpenAIEmbedder.Configuration(url: "https://api.openai.com/v1", model: "text-embedding-3-small")
        configuration.requestsPerMinute = 3_000
        configuration.tokensPerMinute = 1_000_000
        configuration.pricePerMillionTokens = 0.02
        configuration.concurrency = 8
        // 1M rows of 50 tokens: 50M tokens → 50 minutes at 1M TPM.
        let estimate = EmbeddingEstimate(rows: 1_000_000, tokens: 50_000_000, configuration: configuration)
        #expect(estimate.limit == .tokensPerMinute)
        #expect(abs(estimate.duration.secondsValue - 3_000) < 1)
        #expect(estimate.inputsPerRequest == 333)  // 16 667 tokens per request fit the one-second token window
        #expect(estimate.requests == 3_004)
        #expect(abs((estimate.cost ?? 0) - 1.0) < 1e-9)
        configuration.tokensPerMinute = nil
        configuration.concurrency = 1
        let slow = EmbeddingEstimate(rows: 10_000, tokens: 100_000, configuration: configuration, assumedLatency: .seconds(1))
        #expect(slow.limit == .concurrency)
        #expect(slow.requests == 5)
        #expect(EmbeddingEstimate.chunks(ofTokens: 100, maxTokens: 512, overlapTokens: 64) == (1, 100))
        let chunked = EmbeddingEstimate.chunks(ofTokens: 1_000, maxTokens: 512, overlapTokens: 64)
        #expect(chunked.count == 3 && chunked.tokens == 1_128)
    }
}
