import Foundation
import Hummingbird
import NIOCore

/// Encoding of responses and decoding of request bodies, in one place so that every answer is
/// JSON with snake_case keys and every malformed body is a ``ServerError`` `bad_request` that says
/// what was expected.
enum JSONBody {
    /// Largest request body read. Bigger ones answer 413.
    static let maximumBodyBytes = 1 << 20

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// `value` as a JSON response.
    static func response<Value: Encodable>(_ value: Value, status: HTTPResponse.Status = .ok) throws -> Response {
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw ServerError(.internalError, "cannot encode the response: \(error)", underlying: error)
        }
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The error document `{"error": {"code", "message"}}`.
    static func error(_ error: ServerError) -> Response {
        let object = ["error": ["code": error.code.rawValue, "message": error.message]]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data(#"{"error":{"code":"internal_error","message":"cannot encode the error"}}"#.utf8)
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"]
        if error.code == .unauthorized { headers[.wwwAuthenticate] = #"Bearer realm="tidemark""# }
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The request body as a JSON object; an empty body is `nil` (every body of this API is optional).
    static func object(_ request: Request) async throws -> [String: Any]? {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumBodyBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ServerError(.contentTooLarge, "the request body is larger than \(maximumBodyBytes) bytes")
        } catch is NIOTooManyBytesError {
            throw ServerError(.contentTooLarge, "the request body is larger than \(maximumBodyBytes) bytes")
        } catch {
            throw ServerError(.badRequest, "the request body could not be read: \(error)")
        }
        let bytes = Data(buffer.readableBytesView)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return nil }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])
        } catch {
            throw ServerError(.badRequest, "the request body is not valid JSON; send an object such as {\"ids\": [\"42\"]}")
        }
        guard let object = parsed as? [String: Any] else {
            throw ServerError(.badRequest, "the request body must be a JSON object, such as {\"ids\": [\"42\"]}")
        }
        return object
    }

    /// Refuses keys other than `allowed`.
    static func checkKeys(_ object: [String: Any], allowed: Set<String>) throws {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            let expected = allowed.isEmpty ? "this call takes no body fields" : "allowed: \(allowed.sorted().joined(separator: ", "))"
            throw ServerError(.badRequest, "unknown field '\(unknown)' in the request body; \(expected)")
        }
    }

    /// A list of document ids: strings, or whole numbers (the key's text).
    static func ids(_ value: Any?, field: String) throws -> [String]? {
        guard let value, !(value is NSNull) else { return nil }
        guard let items = value as? [Any] else { throw ServerError(.badRequest, "'\(field)' must be an array of document ids (strings)") }
        var ids: [String] = []
        for (index, item) in items.enumerated() {
            if let text = item as? String, !text.isEmpty, text.utf8.count <= 4096 {
                ids.append(text)
            } else if let number = item as? NSNumber, String(cString: number.objCType) != "c", number.doubleValue == number.doubleValue.rounded(),
                abs(number.doubleValue) < 1e15
            {
                ids.append(String(number.int64Value))
            } else {
                throw ServerError(.badRequest, "'\(field)[\(index)]' must be a non-empty document id (a string of at most 4096 bytes)")
            }
        }
        guard !ids.isEmpty else { throw ServerError(.badRequest, "'\(field)' is empty; omit it to index every row") }
        guard ids.count <= 100_000 else { throw ServerError(.badRequest, "'\(field)' has \(ids.count) ids; send at most 100000 per call") }
        return ids
    }
}
