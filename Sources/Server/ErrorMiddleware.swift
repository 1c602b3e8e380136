import Hummingbird
import Indexing
import Logging
import Sync

/// Renders every error of a request as `{"error": {"code", "message"}}` with the right status:
/// ``ServerError`` as it is, Hummingbird's own errors (no route, body too large) by their status,
/// ``SyncError``s of the shared job logic by their code, anything else as a logged 500.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let failure = Self.serverError(error, path: request.uri.path, method: request.method)
            if failure.status.code >= 500 && failure.code != .notImplemented && failure.code != .unavailable {
                logger.error("request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            }
            return JSONBody.error(failure)
        }
    }

    static func serverError(_ error: any Error, path: String, method: HTTPRequest.Method) -> ServerError {
        switch error {
        case let error as ServerError:
            return error
        case let error as SyncError:
            switch error.code {
            case .notFound: return ServerError(.notFound, error.message)
            case .conflict: return ServerError(.conflict, error.message)
            case .invalidRequest, .configuration: return ServerError(.badRequest, error.message)
            default: return ServerError(.internalError, error.message, underlying: error)
            }
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                return ServerError(.notFound, "no such path: \(method) \(path); the API is described in Docs/openapi.yaml")
            case .methodNotAllowed:
                return ServerError(.methodNotAllowed, "\(method) is not allowed on \(path)")
            case .contentTooLarge:
                return ServerError(.contentTooLarge, "the request body is larger than \(JSONBody.maximumBodyBytes) bytes")
            case .badRequest:
                return ServerError(.badRequest, error.body ?? "the request is malformed")
            default:
                return ServerError(error.status.code >= 500 ? .internalError : .badRequest, error.body ?? "\(error.status)")
            }
        default:
            return ServerError(.internalError, "the request failed: \(error)", underlying: error)
        }
    }
}
