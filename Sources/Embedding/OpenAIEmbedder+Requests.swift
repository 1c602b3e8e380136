import AsyncHTTPClient
import Foundation
import Logging

/// Sending requests: admission, retries, isolation of rejected inputs, checking answers.
extension OpenAIEmbedder {
    /// A request body that tells when the client starts writing it, i.e. when the request goes out
    /// (after a new connection, if one was needed, is up): the budget windows count it from then.
    private struct SendingBody: Sequence, Sendable {
        let bytes: [UInt8]
        let onSend: @Sendable () -> Void

        func makeIterator() -> IndexingIterator<[UInt8]> {
            onSend()
            return bytes.makeIterator()
        }
    }

    private struct RequestBody: Encodable {
        var model: String
        var input: [String]
        var encodingFormat = "float"
        var dimensions: Int?

        enum CodingKeys: String, CodingKey {
            case model, input, dimensions
            case encodingFormat = "encoding_format"
        }
    }

    /// The outcomes of one request's texts, retrying until the provider answers (or attempts run
    /// out), halving the request when the provider rejects it.
    func perform(_ batch: RequestPlan.Batch) async throws -> [Result<[Float], EmbeddingError>] {
        var failures = 0
        let estimate = batch.totalTokens
        while true {
            try Task.checkCancellation()
            let permit = try await gate.acquire(tokens: estimate)
            state.withLock { $0.status.sent(retry: failures > 0) }
            let outcome: ProviderOutcome
            do {
                outcome = try await exchange(batch.texts, permit: permit)
            } catch {
                gate.release(permit, tokens: nil, succeeded: nil)
                throw error
            }
            switch outcome {
            case .vectors(let vectors, let tokens):
                gate.release(permit, tokens: tokens, succeeded: true)
                do {
                    try acceptDimensions(of: vectors)
                } catch {
                    warn(kind: "invalid answer", message: error.message, status: nil, rateLimited: false)
                    return Array(repeating: .failure(error), count: batch.count)
                }
                let recovered = state.withLock { $0.status.succeeded(inputs: batch.count, tokens: tokens ?? estimate) }
                if let recovered { noticeRecovery(after: recovered) }
                return vectors.map { .success($0) }

            case .rejected(let status, let message):
                gate.release(permit, tokens: nil, succeeded: true)
                let recovered = state.withLock { $0.status.rejected() }
                if let recovered { noticeRecovery(after: recovered) }
                guard batch.count > 1 else {
                    logger.debug("provider rejected an input", metadata: [
                        "embedder.model": "\(configuration.model)", "http.status": "\(status)", "error.message": "\(message)",
                    ])
                    return [.failure(EmbeddingError(.rejectedInput, message))]
                }
                // Only this request is split; the other requests of the call keep their results.
                let (first, second) = batch.halves()
                async let firstResults = perform(first)
                let secondResults = try await perform(second)
                return try await firstResults + secondResults

            case .invalid(let error):
                gate.release(permit, tokens: nil, succeeded: true)
                warn(kind: "invalid answer", message: error.message, status: nil, rateLimited: false)
                return Array(repeating: .failure(error), count: batch.count)

            case .transient(let kind, let message, let wait, let rateLimited):
                gate.release(permit, tokens: nil, succeeded: false)
                failures += 1
                warn(kind: kind, message: message, status: nil, rateLimited: rateLimited)
                guard retry.allowsAnother(after: failures) else {
                    let error = EmbeddingError(.unavailable, "\(message) (gave up after \(failures) attempts, embedder.max_attempts)")
                    return Array(repeating: .failure(error), count: batch.count)
                }
                if let wait {
                    // The provider's wait holds for every request, not only this one.
                    gate.pause(until: .now + wait)
                    try await Task.sleep(for: wait)
                } else {
                    try await Task.sleep(for: retry.backoff(after: failures))
                }

            case .misconfigured(let kind, let message):
                gate.release(permit, tokens: nil, succeeded: false)
                failures += 1
                warn(kind: kind, message: message, status: nil, rateLimited: false)
                guard retry.allowsAnother(after: failures) else {
                    let error = EmbeddingError(.configuration, "\(message) (gave up after \(failures) attempts, embedder.max_attempts)")
                    return Array(repeating: .failure(error), count: batch.count)
                }
                try await Task.sleep(for: retry.backoff(after: failures))
            }
        }
    }

    /// One HTTP exchange. Throws only `CancellationError` (or `unavailable` after shutdown);
    /// everything else is an outcome.
    func exchange(_ texts: [String], permit: RequestBudget.Permit) async throws -> ProviderOutcome {
        let body: Data
        do {
            let sent = configuration.sendDimensions ?? (configuration.dimensions != nil)
            body = try JSONEncoder().encode(RequestBody(model: configuration.model, input: texts, dimensions: sent ? configuration.dimensions : nil))
        } catch {
            return .invalid(EmbeddingError(.rejectedInput, "the texts cannot be encoded as JSON: \(error)"))
        }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let gate = gate
        request.body = .bytes(SendingBody(bytes: Array(body), onSend: { gate.sent(permit) }), length: .known(Int64(body.count)))
        let limit = (1 << 20) + texts.count * (dimensions > 0 ? dimensions : 4_096) * 32
        do {
            let response = try await client.execute(request, timeout: .milliseconds(max(1, Int64(configuration.timeout.seconds * 1_000))))
            var received = Data()
            for try await chunk in response.body {
                received.append(contentsOf: chunk.readableBytesView)
                if received.count > limit {
                    return .invalid(EmbeddingError(.invalidResponse, "the provider's answer exceeds \(limit) bytes for \(texts.count) inputs"))
                }
            }
            return ProviderOutcome.answer(
                status: Int(response.status.code), header: { response.headers.first(name: $0) }, body: received,
                inputs: texts.count, endpoint: endpointDescription, retry: retry, redaction: redaction)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            if let error = error as? HTTPClientError, error == .alreadyShutdown {
                throw EmbeddingError(.unavailable, "the embedder was shut down while a call was running")
            }
            return failure(error)
        }
    }

    private func failure(_ error: any Error) -> ProviderOutcome {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout || error == .writeTimeout {
                return .transient(kind: "timeout", message: "the provider at \(endpointDescription) did not answer within \(configuration.timeout) (embedder.timeout)", wait: nil, rateLimited: false)
            }
            if error == .connectTimeout {
                return .transient(kind: "connection", message: "cannot connect to \(endpointDescription): timed out", wait: nil, rateLimited: false)
            }
        }
        let text = redaction.apply("\(error)")
        return .transient(kind: "connection", message: "cannot reach the provider at \(endpointDescription): \(text)", wait: nil, rateLimited: false)
    }

    /// Checks the vectors' length against the configured or learnt dimensions; learns it from the
    /// first answer when none was configured.
    private func acceptDimensions(of vectors: [[Float]]) throws(EmbeddingError) {
        guard let length = vectors.first?.count else { return }
        let configured = configuration.dimensions
        let known: Int? = state.withLock { state in
            if let dimensions = state.dimensions { return dimensions }
            state.dimensions = length
            return nil
        }
        guard let known, known != length else { return }
        if let configured, configured == known {
            throw EmbeddingError(.invalidResponse, "the provider answered vectors of \(length) dimensions, but embedder.dimensions is \(configured): set embedder.dimensions to \(length), or send_dimensions: true if \(configuration.model) can shorten its vectors")
        }
        throw EmbeddingError(.invalidResponse, "the provider answered vectors of \(length) dimensions, but its first answer had \(known) (did the model behind \(endpointDescription) change?)")
    }

    private func warn(kind: String, message: String, status: Int?, rateLimited: Bool) {
        let safe = redaction.apply(message)
        let warning = state.withLock { $0.status.failed(kind: kind, message: safe, rateLimited: rateLimited) }
        var metadata: Logger.Metadata = [
            "embedder.model": "\(configuration.model)", "embedder.url": "\(endpointDescription)",
            "embedder.failure": "\(kind)", "error.message": "\(safe)",
        ]
        if let status { metadata["http.status"] = "\(status)" }
        guard let warning else {
            logger.debug("embedding request failed; retrying", metadata: metadata)
            return
        }
        if warning.unlogged > 0 { metadata["embedder.failures.unlogged"] = "\(warning.unlogged)" }
        logger.warning(
            warning.changed ? "embedding provider failing; requests wait and retry" : "embedding provider still failing; requests wait and retry",
            metadata: metadata)
    }

    private func noticeRecovery(after failures: Int) {
        logger.notice("embedding provider answering again", metadata: [
            "embedder.model": "\(configuration.model)", "embedder.url": "\(endpointDescription)",
            "embedder.failures": "\(failures)",
        ])
    }
}
