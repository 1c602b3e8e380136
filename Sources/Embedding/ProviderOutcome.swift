import Foundation

/// What one request to the provider came to, and so what happens next.
enum ProviderOutcome: Sendable {
    /// Vectors in input order, and the provider's token count if it gave one.
    case vectors([[Float]], tokens: Int?)
    /// The provider refused the request's inputs (HTTP 400, 413, 422): split the request, or, for a
    /// single input, that input is rejected.
    case rejected(status: Int, message: String)
    /// Worth sending again: rate limited (429), provider error (5xx, 408), timeout, connection
    /// failure. `wait`: how long the provider asked to wait, if it did.
    case transient(kind: String, message: String, wait: Duration?, rateLimited: Bool)
    /// The provider refuses the key, the URL or the model (401, 403, 404, other 4xx, redirects):
    /// a person must fix the configuration; the request is sent again (with backoff) meanwhile.
    case misconfigured(kind: String, message: String)
    /// The answer cannot be used (not JSON, wrong count or dimensions).
    case invalid(EmbeddingError)

    /// Classifies an HTTP answer. `header` looks up a header by lowercase name; `endpoint` names the
    /// URL in messages; `redaction` removes the key from anything the provider echoed.
    static func answer(
        status: Int, header: (String) -> String?, body: Data, inputs: Int, endpoint: String,
        retry: RetryPolicy, redaction: SecretRedaction
    ) -> ProviderOutcome {
        switch status {
        case 200..<300:
            let response: EmbeddingsResponse
            do {
                response = try JSONDecoder().decode(EmbeddingsResponse.self, from: body)
            } catch {
                let what = body.isEmpty ? "an empty body" : "a body that is not an embeddings answer (\(snippet(body, redaction: redaction)))"
                return .invalid(EmbeddingError(.invalidResponse, "the provider at \(endpoint) answered HTTP \(status) with \(what); is embedder.url an OpenAI-compatible API?"))
            }
            do {
                let vectors = try response.vectors(count: inputs)
                return .vectors(vectors, tokens: response.usage?.totalTokens ?? response.usage?.promptTokens)
            } catch {
                return .invalid(error)
            }
        case 400, 413, 422:
            return .rejected(status: status, message: "the provider rejected the request (HTTP \(status)): \(message(body, redaction: redaction))")
        case 429:
            let wait = retry.providerWait(header)
            return .transient(kind: "HTTP 429", message: "the provider rate limits this key (HTTP 429): \(message(body, redaction: redaction))", wait: wait, rateLimited: true)
        case 408, 500..<600:
            let wait = retry.providerWait(header)
            return .transient(kind: "HTTP \(status / 100)xx", message: "the provider failed (HTTP \(status)): \(message(body, redaction: redaction))", wait: wait, rateLimited: false)
        case 401:
            return .misconfigured(kind: "HTTP 401", message: "the provider refused the API key (HTTP 401): \(message(body, redaction: redaction)); check the key named by embedder.api_key_env or embedder.api_key_file")
        case 403:
            return .misconfigured(kind: "HTTP 403", message: "the provider forbids this key the model or endpoint (HTTP 403): \(message(body, redaction: redaction)); check the key's project, permissions and region")
        case 404:
            return .misconfigured(kind: "HTTP 404", message: "the provider has no such endpoint or model (HTTP 404) at \(endpoint): \(message(body, redaction: redaction)); check embedder.url (up to and including the version, e.g. …/v1) and embedder.model")
        case 300..<400:
            let location = header("location").map { " to \(redaction.apply($0))" } ?? ""
            return .misconfigured(kind: "HTTP \(status)", message: "the provider at \(endpoint) redirects (HTTP \(status))\(location); set embedder.url to the final address")
        default:
            return .misconfigured(kind: "HTTP \(status)", message: "the provider at \(endpoint) answered HTTP \(status): \(message(body, redaction: redaction)); check embedder.url")
        }
    }

    /// The provider's own error message from an error body: OpenAI's `{"error": {"message": …}}`,
    /// text-embeddings-inference's `{"error": "…"}`, vLLM's `{"message": …}`, FastAPI's
    /// `{"detail": …}`; else the start of the body as text.
    static func message(_ body: Data, redaction: SecretRedaction) -> String {
        guard !body.isEmpty else { return "(empty body)" }
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
            var parts: [String] = []
            if let error = object["error"] as? [String: Any] {
                if let message = error["message"] as? String { parts.append(message) }
                if let code = error["code"] as? String, !code.isEmpty { parts.append("(\(code))") }
            } else if let error = object["error"] as? String {
                parts.append(error)
            }
            if parts.isEmpty, let message = object["message"] as? String { parts.append(message) }
            if parts.isEmpty, let detail = object["detail"] {
                parts.append(detail as? String ?? "\(detail)")
            }
            if !parts.isEmpty { return redaction.apply(clip(parts.joined(separator: " "))) }
        }
        return snippet(body, redaction: redaction)
    }

    /// The body as a short line of text (tags of an HTML error page removed).
    static func snippet(_ body: Data, redaction: SecretRedaction) -> String {
        var text = String(decoding: body.prefix(4_096), as: UTF8.self)
        if text.contains("<") {
            text = text.replacingOccurrences(of: "<[^>]*>", with: " ", options: .regularExpression)
        }
        text = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return redaction.apply(clip(text.isEmpty ? "(no text)" : text))
    }

    private static func clip(_ text: String) -> String {
        text.count <= 300 ? text : String(text.prefix(300)) + "…"
    }
}
