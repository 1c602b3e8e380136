import Hummingbird

/// Who may call what. Decided by where the server listens and whether a token is configured:
///
/// | listening on | token configured | reads (GET, HEAD) | state-changing calls |
/// |---|---|---|---|
/// | loopback | no | open | open |
/// | loopback | yes | open | token required |
/// | any other address | yes (mandatory: the agent refuses to start without) | token required | token required |
///
/// `/healthz`, `/readyz` and the admin page's static shell (`/`) are always open: probes carry no
/// credentials, and the page asks for the token before it calls anything. The token is compared in
/// constant time (for its length) and never logged.
struct AccessPolicy<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?
    let exposed: Bool

    static var openPaths: Set<String> { ["/healthz", "/readyz", "/"] }

    init(token: String?, exposed: Bool) {
        self.token = token.map { Array($0.utf8) }
        self.exposed = exposed
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let reading = request.method == .get || request.method == .head
        let needsToken = !Self.openPaths.contains(request.uri.path) && (exposed || (!reading && token != nil))
        if needsToken {
            guard let token else {
                throw ServerError(.unauthorized, "this server needs an API token, and none is configured")
            }
            guard let header = request.headers[.authorization] else {
                throw ServerError(.unauthorized, reading
                    ? "this server is reachable from other machines: send Authorization: Bearer <token> (the token of api.token_env or api.token_file)"
                    : "state-changing calls need Authorization: Bearer <token> (the token of api.token_env or api.token_file)")
            }
            let prefix = "bearer "
            guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix else {
                throw ServerError(.unauthorized, "the Authorization header must be 'Bearer <token>'")
            }
            let given = Array(header.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces).utf8)
            guard ConstantTime.equals(given, token) else {
                throw ServerError(.unauthorized, "the bearer token is wrong")
            }
        }
        return try await next(request, context)
    }
}
