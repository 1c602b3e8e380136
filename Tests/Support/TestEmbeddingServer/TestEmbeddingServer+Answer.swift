import Embedding
import Foundation
import Hummingbird

/// Answering one `POST /v1/embeddings`.
extension TestEmbeddingServer {
    private enum Decision {
        case script(status: Int, body: String, contentType: String)
        case fail(status: Int, body: String, headers: [(String, String)])
        case embed(Configuration)
    }

    func answer(_ request: inout Request) async -> Response {
        let arrived = ContinuousClock.now
        let bytes: Data
        do {
            let buffer = try await request.collectBody(upTo: 256 << 20)
            bytes = Data(buffer.readableBytesView)
        } catch {
            bytes = Data()
        }
        let body = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any]
        let model = body?["model"] as? String
        let inputs: [String]? = (body?["input"] as? [String]) ?? (body?["input"] as? String).map { [$0] }
        let dimensions = body?["dimensions"] as? Int
        let tokens = inputs?.reduce(0) { $0 + TokenEstimate.estimate($1) } ?? 0
        let headers = request.headers

        let (sequence, decision) = state.withLock { state -> (Int, Decision) in
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            state.log.append(Record(
                sequence: sequence, arrivedAt: arrived, inputs: inputs?.count ?? 0, tokens: tokens, status: 0,
                model: model, dimensions: dimensions, inFlight: state.inFlight))
            return (sequence, Self.decide(&state, headers: headers, now: arrived))
        }
        var status = 500
        defer {
            let answered = ContinuousClock.now
            state.withLock { state in
                state.inFlight -= 1
                if let index = state.log.lastIndex(where: { $0.sequence == sequence }) {
                    state.log[index].status = status
                    state.log[index].answeredAt = answered
                }
            }
        }
        switch decision {
        case .script(let code, let text, let contentType):
            status = code
            return Self.response(code, text, contentType: contentType)
        case .fail(let code, let text, let extra):
            status = code
            return Self.response(code, text, headers: extra)
        case .embed(let configuration):
            let latency = configuration.latencyOfRequest?(sequence) ?? configuration.latency
            if latency > .zero {
                do {
                    try await Task.sleep(for: latency)
                } catch {
                    status = 503
                    return Self.response(503, Self.error("server stopping"))
                }
            }
            guard let model, !model.isEmpty else {
                status = 400
                return Self.response(400, Self.error("you must provide a model parameter"))
            }
            guard let inputs, !inputs.isEmpty else {
                status = 400
                return Self.response(400, Self.error("'$.input' is invalid. Please check the API reference"))
            }
            if let marker = configuration.poisonMarker, inputs.contains(where: { $0.contains(marker) }) {
                status = 400
                return Self.response(400, Self.error("'$.input' is invalid: an input contains \(marker)"))
            }
            if let limit = configuration.maxInputs, inputs.count > limit {
                status = 400
                return Self.response(400, Self.error("too many inputs: \(inputs.count); at most \(limit) per request"))
            }
            if let limit = configuration.maxInputTokens, let longest = inputs.map(TokenEstimate.estimate).max(), longest > limit {
                status = 400
                return Self.response(400, Self.error("This model's maximum context length is \(limit) tokens, however you requested \(longest) tokens"))
            }
            status = 200
            return Self.response(200, Self.embeddings(inputs, model: model, dimensions: dimensions ?? configuration.dimensions, configuration: configuration, tokens: tokens))
        }
    }

    private static func decide(_ state: inout State, headers: HTTPFields, now: ContinuousClock.Instant) -> Decision {
        let configuration = state.configuration
        if let key = configuration.apiKey {
            let sent = headers.value(configuration.apiKeyHeader) ?? ""
            let presented = configuration.apiKeyHeader.lowercased() == "authorization"
                ? (sent.hasPrefix("Bearer ") ? String(sent.dropFirst(7)) : "") : sent
            if presented != key {
                let masked = presented.count > 8 ? "\(presented.prefix(3))*****\(presented.suffix(4))" : "***"
                return .fail(status: 401, body: error("Incorrect API key provided: \(masked). You can find your API key in your account settings.", code: "invalid_api_key"), headers: [])
            }
        }
        if !state.faults.scripted.isEmpty {
            let next = state.faults.scripted.removeFirst()
            return .script(status: next.status, body: next.body, contentType: next.contentType)
        }
        if let until = state.faults.unavailableUntil, now < until {
            return .fail(status: 503, body: error("The server is overloaded or not ready yet."), headers: [])
        }
        if state.faults.rateLimitCount > 0 || state.faults.rateLimitUntil.map({ now < $0 }) ?? false {
            state.faults.rateLimitCount = max(0, state.faults.rateLimitCount - 1)
            return .fail(status: 429, body: error("Rate limit reached for requests", code: "rate_limit_exceeded"), headers: state.faults.rateLimitHeaders)
        }
        if state.faults.failCount > 0 {
            state.faults.failCount -= 1
            return .fail(status: state.faults.failStatus, body: state.faults.failBody ?? error("The server had an error while processing your request."), headers: [])
        }
        return .embed(configuration)
    }

    private static func embeddings(_ inputs: [String], model: String, dimensions: Int, configuration: Configuration, tokens: Int) -> String {
        var text = "{\"object\":\"list\",\"data\":["
        text.reserveCapacity(inputs.count * dimensions * 11 + 200)
        let order = configuration.reverseOrder ? Array(inputs.indices.reversed()) : Array(inputs.indices)
        for (position, index) in order.enumerated() {
            if position > 0 { text += "," }
            text += "{\"object\":\"embedding\",\"index\":\(index),\"embedding\":["
            let vector = vector(for: inputs[index], model: model, dimensions: dimensions)
            for (offset, value) in vector.enumerated() {
                if offset > 0 { text += "," }
                text += value.description
            }
            text += "]}"
        }
        text += "],\"model\":\"\(model)\""
        if configuration.reportUsage { text += ",\"usage\":{\"prompt_tokens\":\(tokens),\"total_tokens\":\(tokens)}" }
        text += "}"
        return text
    }

    static func error(_ message: String, code: String? = nil) -> String {
        let code: Any = code ?? NSNull()
        let object: [String: Any] = ["error": ["message": message, "type": "invalid_request_error", "code": code] as [String: Any]]
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private static func response(_ status: Int, _ body: String, contentType: String = "application/json", headers extra: [(String, String)] = []) -> Response {
        var headers = HTTPFields()
        headers.set("content-type", contentType)
        for (name, value) in extra { headers.set(name, value) }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension HTTPFields {
    /// Sets a header given by its text name (ignored when the name is not a valid header name).
    fileprivate mutating func set(_ name: String, _ value: String) {
        guard let fieldName = Element.Name(name) else { return }
        self[fieldName] = value
    }

    /// The value of a header given by its text name.
    fileprivate func value(_ name: String) -> String? {
        guard let fieldName = Element.Name(name) else { return nil }
        return self[fieldName]
    }
}
